package multihost

import (
	"fmt"
	"testing"
	"time"

	"github.com/mynet/mynet/test/mhtest"
)

// With a 3-member etcd, losing one member (killed, then cut off the
// network) changes nothing a user sees: traffic flows, new containers on
// either host start within the usual time and reach each other, a new
// cluster network is made, the daemons stay healthy. The member each
// daemon names first is the one lost: the client must move to the others.
func TestEtcdMemberLost(t *testing.T) {
	w := mhtest.NewWorldWith(t, mhtest.WorldOptions{Hosts: 2, EtcdMembers: 3}, "--cluster-ttl", "10s")
	a, b := w.Hosts[0].CreateNetwork("blue", "10.40.0.0/16"), w.Hosts[1].CreateNetwork("blue", "")
	ca, cb := a.Run(""), b.Run("")
	mhtest.Eventually(t, "cross-host ping", func() error { return ca.Ping(cb.IP.Addr(), 0) })
	for i, fault := range []struct {
		name       string
		fail, heal func()
	}{
		{"member 1 killed", w.Members[0].Kill, func() { w.Members[0].Restart(); w.Members[0].WaitHealthy() }},
		{"member 1 cut off", func() { w.Partition("etcd1") }, func() { w.Heal("etcd1"); w.Members[0].WaitHealthy() }},
		{"member 2 cut off", func() { w.Partition("etcd2") }, func() { w.Heal("etcd2"); w.Members[1].WaitHealthy() }},
	} {
		fault.fail()
		if err := ca.Ping(cb.IP.Addr(), 0); err != nil {
			t.Errorf("%s: traffic between hosts stopped: %v", fault.name, err)
		}
		// Containers start on both hosts and reach each other. The first
		// calls sent to a member just cut off wait for it up to half the
		// call timeout before they go to another: a container may take a
		// few seconds longer, never near Docker's 30 s.
		for round := range 3 {
			var made [2]*mhtest.Container
			for i, n := range []*mhtest.ClusterNet{a, b} {
				start := time.Now()
				c, err := n.TryRun("")
				if err != nil {
					t.Fatalf("%s, round %d: a new container on %s: %v\n%s", fault.name, round, n.Host.Name, err, mhtest.Tail(n.Host.Log(), 20000))
				}
				if took := time.Since(start); took > 8*time.Second {
					t.Errorf("%s, round %d: a container on %s took %v to start", fault.name, round, n.Host.Name, took)
				}
				made[i] = c
			}
			na, nb := made[0], made[1]
			mhtest.Eventually(t, fault.name+": new containers reach each other across hosts", func() error {
				if err := na.Ping(nb.IP.Addr(), 0); err != nil {
					return err
				}
				return nb.Ping(na.IP.Addr(), 0)
			})
		}
		// A new cluster network, made on one host, joined on the other.
		name := fmt.Sprintf("green%d", i)
		w.Hosts[0].CreateNetwork(name, fmt.Sprintf("10.%d.0.0/16", 50+i))
		w.Hosts[1].CreateNetwork(name, "")
		for _, h := range w.Hosts {
			if hl := h.Call("/mynet.Health", map[string]any{}); hl["status"] != "ok" {
				t.Errorf("%s: %s unhealthy: %v", fault.name, h.Name, hl["problems"])
			}
		}
		fault.heal()
	}
}
