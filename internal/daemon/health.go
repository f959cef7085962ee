package daemon

import (
	"errors"
	"strings"
	"time"

	"github.com/mynet/mynet/internal/status"
	"github.com/mynet/mynet/internal/store"
)

const bucketHealth = "health"

// Health checks what the daemon needs to do its work, now: the state file
// takes a write (one small transaction, as every call makes), the iptables
// backend answers, and the last reconcile succeeded. It is what
// /mynet.Health answers and `mynet status` prints.
func (d *Daemon) Health() status.Health {
	h := status.Health{
		Version: d.cfg.Version, Started: d.started,
		Networks: len(d.drv.Networks()), Endpoints: len(d.drv.Endpoints()),
		StateFile: status.StateFileHealth{Path: d.stateFile(), Writable: true},
		Reconcile: d.rec.last(), DockerSync: d.dockerSync(), Names: d.namesState(),
	}
	var problems []string
	probe := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	if err := d.store.Update(func(tx store.Tx) error { return tx.Put(bucketHealth, "probe", probe) }); err != nil {
		h.StateFile.Writable, h.StateFile.Error = false, err.Error()
		problems = append(problems, "state file "+h.StateFile.Path+" is not writable: "+err.Error())
	}
	fw, err := d.fw.Check()
	h.IPTables.Health, h.IPTables.Reachable = fw, err == nil
	if err != nil {
		h.IPTables.Error = err.Error()
		problems = append(problems, "iptables: "+err.Error())
	}
	for _, c := range d.alloc.ClusterConflicts() {
		problems = append(problems, c.String())
	}
	if d.tunnel != nil {
		problems = append(problems, d.tunnel.problems(time.Now())...)
	}
	if !h.Reconcile.Time.IsZero() && !h.Reconcile.OK {
		problems = append(problems, "last reconcile ("+h.Reconcile.Trigger+") failed: "+h.Reconcile.Error)
	}
	h.Status, h.Problems = "ok", problems
	if len(problems) > 0 {
		h.Status, h.Err = "unhealthy", strings.Join(problems, "; ")
	}
	return h
}

// healthErr is the error /mynet.Health answers 503 with.
func healthErr(h status.Health) error {
	if h.Status == "ok" {
		return nil
	}
	return errors.New(h.Err)
}
