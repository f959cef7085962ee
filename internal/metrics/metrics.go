// Package metrics is mynet's Prometheus exposition: per-call counts and
// latencies of both plugin APIs, errors by kind, reconcile runs and repairs,
// iptables batch times, and gauges of what the daemon holds (networks,
// endpoints, published ports, pool usage) read at scrape time.
//
// It is the only importer of client_golang. The daemon serves it only when
// --metrics-addr is set; every method is safe on a nil *Metrics, so the
// other parts call it without asking whether metrics are on.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "mynet"

// Pool is one IPAM pool's usage at scrape time.
type Pool struct {
	ID        string
	Allocated uint64
	Size      uint64 // addresses the pool can hand out (0: too many to count)
}

// Snapshot is what the gauges show, read from the daemon at each scrape.
type Snapshot struct {
	Networks, Endpoints, PublishedPorts int
	Pools                               []Pool
	// RefusedRecords counts the cluster's endpoint records refused, by
	// reason (driver: records.go).
	RefusedRecords map[string]uint64
	// WireGuardPeers are the other hosts on this host's WireGuard device.
	WireGuardPeers []WireGuardPeer
}

// WireGuardPeer is what the WireGuard device has of another host.
type WireGuardPeer struct {
	Node           string
	LastHandshake  time.Time // zero: none yet
	Received, Sent int64
}

// Metrics holds mynet's collectors on a registry of its own.
type Metrics struct {
	reg       *prometheus.Registry
	calls     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	errors    *prometheus.CounterVec
	reconcile *prometheus.CounterVec
	repairs   *prometheus.CounterVec
	batches   *prometheus.HistogramVec
}

// New registers mynet's collectors, the Go runtime's and the process's, and
// a collector that calls snapshot at each scrape for the gauges.
func New(version string, snapshot func() Snapshot) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "calls_total",
			Help: "Plugin API calls answered, by call (e.g. NetworkDriver.Join) and HTTP status code.",
		}, []string{"call", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "call_duration_seconds",
			Help:    "Time to answer a plugin API call, by call.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"call"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "call_errors_total",
			Help: "Plugin API calls that failed, by call and kind (invalid, not_found, conflict, internal).",
		}, []string{"call", "kind"}),
		reconcile: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "reconcile_runs_total",
			Help: "Reconcile runs, by trigger (start, timer, signal, api, link_event) and result (ok, error).",
		}, []string{"trigger", "result"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "reconcile_repairs_total",
			Help: "Things reconcile found wrong and repaired, by kind.",
		}, []string{"kind"}),
		batches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "iptables_batch_duration_seconds",
			Help:    "Time of one iptables-save or iptables-restore run, by family and operation.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"family", "op"}),
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info", Help: "Always 1; the version label says which mynet runs.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	info.Set(1)
	m.reg.MustRegister(m.calls, m.latency, m.errors, m.reconcile, m.repairs, m.batches, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if snapshot != nil {
		m.reg.MustRegister(&stateCollector{snapshot: snapshot})
	}
	return m
}

// Handler serves the exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the collectors are on (for tests and Gather).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveCall records one answered plugin call: path without the leading
// slash, the HTTP status it answered with and, for a failure, its kind.
func (m *Metrics) ObserveCall(call string, code int, kind string, took time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(call, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(call).Observe(took.Seconds())
	if kind != "" {
		m.errors.WithLabelValues(call, kind).Inc()
	}
}

// ObserveReconcile records one reconcile run and what it repaired, as
// counts by kind.
func (m *Metrics) ObserveReconcile(trigger string, err error, repairs map[string]int) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reconcile.WithLabelValues(trigger, result).Inc()
	for kind, n := range repairs {
		if n > 0 {
			m.repairs.WithLabelValues(kind).Add(float64(n))
		}
	}
}

// ObserveBatch records one iptables-save ("save") or iptables-restore
// ("restore") run of a family ("IPv4", "IPv6").
func (m *Metrics) ObserveBatch(family, op string, took time.Duration) {
	if m == nil {
		return
	}
	m.batches.WithLabelValues(family, op).Observe(took.Seconds())
}

// stateCollector turns a Snapshot into gauges at scrape time, so the gauges
// can never drift from the daemon's state.
type stateCollector struct {
	snapshot func() Snapshot
}

var (
	descNetworks  = prometheus.NewDesc(namespace+"_networks", "Networks mynet holds.", nil, nil)
	descEndpoints = prometheus.NewDesc(namespace+"_endpoints", "Endpoints mynet holds.", nil, nil)
	descPorts     = prometheus.NewDesc(namespace+"_published_ports", "Published port mappings programmed.", nil, nil)
	descAllocated = prometheus.NewDesc(namespace+"_ipam_pool_allocated_addresses", "Addresses allocated in an IPAM pool.", []string{"pool"}, nil)
	descPoolSize  = prometheus.NewDesc(namespace+"_ipam_pool_size_addresses", "Addresses an IPAM pool can hand out (IPv4 pools and IPv6 pools up to 2^63).", []string{"pool"}, nil)
	descRefused   = prometheus.NewDesc(namespace+"_cluster_refused_records_total", "Endpoint records from the cluster store refused, by reason.", []string{"reason"}, nil)
	descHandshake = prometheus.NewDesc(namespace+"_wireguard_peer_last_handshake_seconds", "Unix time of the last WireGuard handshake with another host (0: none yet).", []string{"node"}, nil)
	descWGRx      = prometheus.NewDesc(namespace+"_wireguard_peer_received_bytes_total", "Bytes the WireGuard device received from another host.", []string{"node"}, nil)
	descWGTx      = prometheus.NewDesc(namespace+"_wireguard_peer_sent_bytes_total", "Bytes the WireGuard device sent to another host.", []string{"node"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNetworks, descEndpoints, descPorts, descAllocated, descPoolSize, descRefused, descHandshake, descWGRx, descWGTx} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	ch <- prometheus.MustNewConstMetric(descNetworks, prometheus.GaugeValue, float64(s.Networks))
	ch <- prometheus.MustNewConstMetric(descEndpoints, prometheus.GaugeValue, float64(s.Endpoints))
	ch <- prometheus.MustNewConstMetric(descPorts, prometheus.GaugeValue, float64(s.PublishedPorts))
	for _, p := range s.Pools {
		ch <- prometheus.MustNewConstMetric(descAllocated, prometheus.GaugeValue, float64(p.Allocated), p.ID)
		if p.Size > 0 {
			ch <- prometheus.MustNewConstMetric(descPoolSize, prometheus.GaugeValue, float64(p.Size), p.ID)
		}
	}
	for reason, n := range s.RefusedRecords {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(n), reason)
	}
	for _, p := range s.WireGuardPeers {
		hs := 0.0
		if !p.LastHandshake.IsZero() {
			hs = float64(p.LastHandshake.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descHandshake, prometheus.GaugeValue, hs, p.Node)
		ch <- prometheus.MustNewConstMetric(descWGRx, prometheus.CounterValue, float64(p.Received), p.Node)
		ch <- prometheus.MustNewConstMetric(descWGTx, prometheus.CounterValue, float64(p.Sent), p.Node)
	}
}
