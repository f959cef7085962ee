package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/mynet/mynet/internal/metrics"
)

// serveMetrics listens on cfg.MetricsAddr; a failure to listen is the
// daemon's failure to start (the operator asked for metrics).
func (d *Daemon) serveMetrics(served chan<- error) (*http.Server, error) {
	ml, err := net.Listen("tcp", d.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ml); !errors.Is(err, http.ErrServerClosed) {
			served <- fmt.Errorf("metrics: %w", err)
		}
	}()
	d.log.WithField("addr", ml.Addr().String()).Info("serving metrics on /metrics")
	return srv, nil
}

// snapshot is what the metrics' gauges show.
func (d *Daemon) snapshot() metrics.Snapshot {
	s := metrics.Snapshot{Networks: len(d.drv.Networks()), RefusedRecords: d.drv.RefusedRecords()}
	for _, ep := range d.drv.Endpoints() {
		s.Endpoints++
		s.PublishedPorts += len(ep.Ports)
	}
	if d.tunnel != nil {
		s.WireGuardPeers = d.tunnel.metrics()
	}
	for _, p := range d.alloc.Pools() {
		s.Pools = append(s.Pools, metrics.Pool{ID: p.ID, Allocated: p.Allocated, Size: p.Size})
	}
	return s
}
