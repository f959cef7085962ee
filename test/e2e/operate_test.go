package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/plugin"
)

// What an operator sees: health, metrics and mynet status, and what they
// say when the kernel is damaged under a running Docker.

// healthNow asks /mynet.Health on mynet's socket.
func healthNow(t *testing.T) (int, map[string]any) {
	t.Helper()
	code, raw, err := plugin.NewClient(socketPath, 10*time.Second).Post("/mynet.Health", []byte("{}"))
	if err != nil {
		t.Fatalf("/mynet.Health: %v", err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("/mynet.Health answered %q", raw)
	}
	return code, out
}

// scrapeMetric reads one sample from mynet's /metrics (0 when absent).
func scrapeMetric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	res, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if match {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// statusArgs are the flags for `mynet status` against the daemon under
// test. The managed plugin's socket is found without --socket when it is
// the only mynet socket on the host (a user's own mynet would be found
// first, and the tests never talk to it).
func statusArgs() []string {
	others, _ := filepath.Glob("/run/docker/plugins/*/mynet.sock")
	_, err := os.Stat("/run/docker/plugins/mynet.sock")
	if pluginMode && len(others) == 1 && os.IsNotExist(err) {
		return []string{"status", "--state-dir", daemon.stateDir()}
	}
	return []string{"status", "--socket", socketPath, "--state-dir", daemon.stateDir()}
}

// TestHealthMetricsAndStatus: a healthy daemon says so in /mynet.Health and
// `mynet status`, and the metrics count what dockerd asked.
func TestHealthMetricsAndStatus(t *testing.T) {
	n := prefix + "ops"
	before := scrapeMetric(t, "mynet_calls_total", `call="NetworkDriver.CreateNetwork"`, `code="200"`)
	createNetwork(t, n, "-d", driverName, "--ipam-driver", driverName, "--subnet", "10.232.0.0/24")
	runContainer(t, prefix+"ops1", n, "sleep", "600")

	code, h := healthNow(t)
	if code != 200 || h["status"] != "ok" {
		t.Fatalf("health %d %v", code, h)
	}
	if ipt, _ := h["iptables"].(map[string]any); ipt["reachable"] != true || ipt["base_installed"] != true {
		t.Errorf("health's iptables %v, want reachable with mynet's chains", ipt)
	}
	if sf, _ := h["state_file"].(map[string]any); sf["writable"] != true {
		t.Errorf("health's state file %v, want writable", sf)
	}
	if got := scrapeMetric(t, "mynet_calls_total", `call="NetworkDriver.CreateNetwork"`, `code="200"`); got != before+1 {
		t.Errorf("CreateNetwork calls counted %v, want %v", got, before+1)
	}
	if scrapeMetric(t, "mynet_networks") < 1 || scrapeMetric(t, "mynet_endpoints") < 1 {
		t.Error("the networks and endpoints gauges do not count the network and its container")
	}
	if scrapeMetric(t, "mynet_call_duration_seconds_count", `call="NetworkDriver.Join"`) < 1 {
		t.Error("no Join latency observed")
	}

	out, err := exec.Command(mynetBin, statusArgs()...).CombinedOutput()
	if err != nil {
		t.Fatalf("mynet %v: %v\n%s", statusArgs(), err, out)
	}
	for _, want := range []string{"health: ok", "state file", "iptables", "last reconcile", "mn-"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("mynet status lacks %q:\n%s", want, out)
		}
	}
}

// TestDeletedBridgeRepairedByEvent: `ip link del` of a network's bridge is
// repaired through the link event (counted in the metrics), not only by the
// timer, and the container's traffic comes back.
func TestDeletedBridgeRepairedByEvent(t *testing.T) {
	makeOutside(t)
	n := prefix + "event"
	id := createNetwork(t, n, "-d", driverName, "--subnet", "10.233.0.0/24")
	runContainer(t, prefix+"ev1", n, "sleep", "600")
	bridge := "mn-" + id[:12]
	events := scrapeMetric(t, "mynet_reconcile_runs_total", `trigger="link_event"`, `result="ok"`)
	ip(t, "link", "del", bridge)
	eventually(t, "outside reachable after the bridge was deleted", func() error { return pingOK(prefix+"ev1", outsideIP) })
	if got := scrapeMetric(t, "mynet_reconcile_runs_total", `trigger="link_event"`, `result="ok"`); got <= events {
		t.Errorf("link-event reconciles %v, want more than %v: the deletion did not trigger a repair", got, events)
	}
	if scrapeMetric(t, "mynet_reconcile_repairs_total", `kind="bridge_restored"`) < 1 {
		t.Error("no bridge_restored repair counted")
	}
}

// TestUnrepairableBridgeMakesHealthFail: a link that is no bridge under the
// bridge's name cannot be repaired; health answers 503 naming the network
// until the impostor goes, and then the bridge and the container's veth on
// it are back.
func TestUnrepairableBridgeMakesHealthFail(t *testing.T) {
	makeOutside(t)
	n := prefix + "sick"
	id := createNetwork(t, n, "-d", driverName, "--subnet", "10.234.0.0/24")
	runContainer(t, prefix+"sick1", n, "sleep", "600")
	bridge, old := "mn-"+id[:12], "me2eold0"
	// Renames send no deletion event; the impostor is a veth pair, as the
	// test hosts have no dummy driver.
	ip(t, "link", "add", "me2eimp0", "type", "veth", "peer", "name", "me2eimp1")
	t.Cleanup(func() {
		for _, l := range []string{"me2eimp0", old} {
			_ = exec.Command("ip", "link", "del", l).Run() // gone already when the test passed
		}
	})
	// The swap in one ip process: with two, mynet's periodic reconcile
	// (every 2 s here) could rebuild the bridge in between (a CI run's
	// rename of the impostor then failed: "File exists").
	swap := exec.Command("ip", "-batch", "-")
	swap.Stdin = strings.NewReader(fmt.Sprintf("link set %s down\nlink set %s name %s\nlink set me2eimp0 name %s\n", bridge, bridge, old, bridge))
	if out, err := swap.CombinedOutput(); err != nil {
		t.Fatalf("swap the bridge for the impostor: %v: %s", err, out)
	}
	_ = daemon.reconcile() // it answers with the failure
	eventually(t, "health reports the network", func() error {
		code, h := healthNow(t)
		if msg, _ := h["Err"].(string); code != 503 || !strings.Contains(msg, id[:12]) {
			return fmt.Errorf("health %d %v, want 503 naming %s", code, h, id[:12])
		}
		return nil
	})
	ip(t, "link", "del", bridge) // the impostor (and its peer)
	eventually(t, "health ok again", func() error {
		if code, h := healthNow(t); code != 200 {
			return fmt.Errorf("health %d %v", code, h)
		}
		return nil
	})
	eventually(t, "outside reachable on the rebuilt bridge", func() error { return pingOK(prefix+"sick1", outsideIP) })
	_ = exec.Command("ip", "link", "del", old).Run()
}
