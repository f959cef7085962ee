package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestExposition(t *testing.T) {
	t.Parallel()
	snap := Snapshot{Networks: 2, Endpoints: 3, PublishedPorts: 1,
		Pools: []Pool{{ID: "LocalDefault/10.0.0.0/24", Allocated: 4, Size: 254}, {ID: "LocalDefault/fd00::/64", Allocated: 1}}}
	m := New("v9", func() Snapshot { return snap })
	m.ObserveCall("NetworkDriver.Join", 200, "", 3*time.Millisecond)
	m.ObserveCall("NetworkDriver.Join", 404, "not_found", time.Millisecond)
	m.ObserveReconcile("timer", nil, map[string]int{"bridge_restored": 2, "orphan_link": 0})
	m.ObserveReconcile("link_event", errors.New("boom"), nil)
	m.ObserveBatch("IPv4", "restore", 5*time.Millisecond)
	text := scrape(t, m)
	for _, want := range []string{
		`mynet_calls_total{call="NetworkDriver.Join",code="200"} 1`,
		`mynet_calls_total{call="NetworkDriver.Join",code="404"} 1`,
		`mynet_call_errors_total{call="NetworkDriver.Join",kind="not_found"} 1`,
		`mynet_call_duration_seconds_count{call="NetworkDriver.Join"} 2`,
		`mynet_call_duration_seconds_bucket{call="NetworkDriver.Join",le="0.0025"} 1`,
		`mynet_reconcile_runs_total{result="ok",trigger="timer"} 1`,
		`mynet_reconcile_runs_total{result="error",trigger="link_event"} 1`,
		`mynet_reconcile_repairs_total{kind="bridge_restored"} 2`,
		`mynet_iptables_batch_duration_seconds_count{family="IPv4",op="restore"} 1`,
		`mynet_networks 2`,
		`mynet_endpoints 3`,
		`mynet_published_ports 1`,
		`mynet_ipam_pool_allocated_addresses{pool="LocalDefault/10.0.0.0/24"} 4`,
		`mynet_ipam_pool_size_addresses{pool="LocalDefault/10.0.0.0/24"} 254`,
		`mynet_build_info{version="v9"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if strings.Contains(text, `kind="orphan_link"`) {
		t.Error("a repair kind with count 0 was exported")
	}
	if strings.Contains(text, `mynet_ipam_pool_size_addresses{pool="LocalDefault/fd00::/64"}`) {
		t.Error("a pool of unknown size got a size gauge")
	}
	// Gauges follow the state at each scrape.
	snap.Networks = 5
	if !strings.Contains(scrape(t, m), "mynet_networks 5") {
		t.Error("the networks gauge did not follow the state")
	}
}

// Parts call the metrics whether or not they are on.
func TestNilMetricsIsOff(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.ObserveCall("x", 200, "", time.Second)
	m.ObserveReconcile("timer", nil, nil)
	m.ObserveBatch("IPv4", "save", time.Second)
}
