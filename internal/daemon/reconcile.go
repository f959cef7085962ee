package daemon

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/internal/metrics"
	"github.com/mynet/mynet/internal/status"
)

// Triggers of a reconcile, as health and metrics name them.
const (
	triggerStart  = "start"
	triggerTimer  = "timer"
	triggerSignal = "signal"
	triggerAPI    = "api"
	triggerLink   = "link_event"
)

// linkSettle is how long a link event waits for more before the reconcile
// it triggers: deleting a bridge sends one event for it and one per port.
const linkSettle = 20 * time.Millisecond

// reconciler runs the driver's Reconcile for every trigger and remembers
// the last result.
type reconciler struct {
	reconcile func() (driver.Report, error)
	metrics   *metrics.Metrics
	log       *logrus.Entry
	kicks     chan string // pending event-triggered run; capacity 1, so events coalesce

	mu     sync.Mutex // guards result
	result status.ReconcileHealth
}

func newReconciler(fn func() (driver.Report, error), m *metrics.Metrics, log *logrus.Entry) *reconciler {
	return &reconciler{reconcile: fn, metrics: m, log: log, kicks: make(chan string, 1)}
}

// run reconciles now and records the result.
func (r *reconciler) run(trigger string) (driver.Report, error) {
	rep, err := r.reconcile()
	r.record(trigger, rep, err)
	return rep, err
}

// record keeps a result (the start's comes from Restore).
func (r *reconciler) record(trigger string, rep driver.Report, err error) {
	res := status.ReconcileHealth{Time: time.Now(), Trigger: trigger, OK: err == nil}
	repairs := rep.Repairs()
	for _, n := range repairs {
		res.Repaired += n
	}
	if err != nil {
		res.Error = err.Error()
		r.log.WithError(err).WithField("trigger", trigger).Warn("reconcile failed; will retry")
	}
	r.metrics.ObserveReconcile(trigger, err, repairs)
	r.mu.Lock()
	r.result = res
	r.mu.Unlock()
}

func (r *reconciler) last() status.ReconcileHealth {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.result
}

// kick asks the loop for a run soon; kicks while one is pending merge.
func (r *reconciler) kick(trigger string) {
	select {
	case r.kicks <- trigger:
	default:
	}
}

// loop reconciles every interval, on SIGHUP and on kicks, so that an
// `iptables -F`, a dockerd restart that put its rules above mynet's, or a
// deleted bridge is repaired without a restart.
func (r *reconciler) loop(ctx context.Context, every time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		trigger := triggerTimer
		select {
		case <-ctx.Done():
			return
		case <-hup:
			trigger = triggerSignal
			r.log.Info("SIGHUP: reconciling now")
		case trigger = <-r.kicks:
			time.Sleep(linkSettle)
			select { // events during the wait are covered by this run
			case <-r.kicks:
			default:
			}
		case <-tick:
		}
		_, _ = r.run(trigger)
	}
}
