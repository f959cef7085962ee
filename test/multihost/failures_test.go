package multihost

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// etcd frozen or killed: traffic between hosts keeps flowing, a new cluster
// endpoint fails within about 5 s with a clear error, local networks work,
// and everything recovers by itself when etcd is back.
func TestEtcdDown(t *testing.T) {
	w := newWorld(t, 2)
	a, b := w.hosts[0].createNetwork("blue", "10.40.0.0/16"), w.hosts[1].createNetwork("blue", "")
	ca, cb := a.run(""), b.run("")
	eventually(t, "cross-host ping", func() error { return ca.ping(cb.ip.Addr(), 0) })
	for _, down := range []struct {
		name        string
		fail, recov func()
	}{
		{"frozen", w.etcd.Stop, w.etcd.Resume},
		{"killed", w.etcd.Kill, w.etcd.Restart},
	} {
		down.fail()
		if err := ca.ping(cb.ip.Addr(), 0); err != nil {
			t.Errorf("etcd %s: traffic between hosts stopped: %v", down.name, err)
		}
		start := time.Now()
		_, err := a.tryRun("")
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("etcd %s: a new cluster endpoint: %v, want a clear 'unreachable' error", down.name, err)
		}
		if took > 12*time.Second {
			t.Errorf("etcd %s: the failing call took %v, far past the 5 s bound", down.name, took)
		}
		// A local network on the same host does not wait on etcd.
		local := w.hosts[0].call("/IpamDriver.RequestPool", map[string]any{"AddressSpace": "LocalDefault", "Pool": fmt.Sprintf("10.60.%d.0/24", len(down.name))})
		w.hosts[0].call("/IpamDriver.ReleasePool", map[string]any{"PoolID": local["PoolID"]})
		down.recov()
		var c *clusterNet = a
		var again *container
		if !waitFor(20*time.Second, func() bool { var err error; again, err = c.tryRun(""); return err == nil }) {
			t.Fatalf("etcd %s and back: cluster endpoints still fail", down.name)
		}
		eventually(t, down.name+": the new endpoint is reached from the other host", func() error { return cb.ping(again.ip.Addr(), 0) })
	}
}

// A daemon killed for less than the TTL: traffic keeps flowing and its
// peers keep its entries. For longer: the peers drop them, and take them
// back when it restarts and re-publishes from its state.
func TestDaemonDownShortAndLong(t *testing.T) {
	w := newWorld(t, 2)
	a, b := w.hosts[0].createNetwork("blue", "10.40.0.0/16"), w.hosts[1].createNetwork("blue", "")
	ca, cb := a.run(""), b.run("")
	eventually(t, "cross-host ping", func() error { return ca.ping(cb.ip.Addr(), 0) })
	want := cb.ip.Addr().String()
	if !strings.Contains(a.remotes(), want) {
		t.Fatalf("host1 does not know %s:\n%s", want, a.remotes())
	}
	// Short: 1 s, within the 3 s TTL.
	w.hosts[1].kill()
	time.Sleep(time.Second)
	if !strings.Contains(a.remotes(), want) {
		t.Error("a peer down for less than the TTL was dropped")
	}
	if err := ca.ping(cb.ip.Addr(), 0); err != nil {
		t.Errorf("with host2's daemon down, traffic stopped: %v", err)
	}
	w.hosts[1].restart()
	time.Sleep(4 * time.Second) // past the TTL: the reused lease must be alive
	if !strings.Contains(a.remotes(), want) {
		t.Errorf("after a restart within the TTL host1 lost %s:\n%s", want, a.remotes())
	}
	// Long: past the TTL the peers drop the host's endpoints.
	w.hosts[1].kill()
	if !waitFor(10*time.Second, func() bool { return !strings.Contains(a.remotes(), want) }) {
		t.Errorf("host2 silent past its TTL, but host1 still has %s", want)
	}
	w.hosts[1].restart()
	if !waitFor(10*time.Second, func() bool { return strings.Contains(a.remotes(), want) }) {
		t.Errorf("host2 back, but host1 did not re-learn %s:\n%s", want, a.remotes())
	}
	eventually(t, "traffic after host2 came back", func() error { return ca.ping(cb.ip.Addr(), 0) })
}

// An entry deleted by hand is repaired by reconcile; etcd's data wiped:
// the hosts register and re-publish, and traffic and new endpoints work.
func TestRepairsAndWipe(t *testing.T) {
	w := newWorld(t, 2)
	a, b := w.hosts[0].createNetwork("blue", "10.40.0.0/16"), w.hosts[1].createNetwork("blue", "")
	ca, cb := a.run(""), b.run("")
	eventually(t, "cross-host ping", func() error { return ca.ping(cb.ip.Addr(), 0) })
	dev := "mnv" + a.id[:12]
	if out, err := exec.Command("ip", "-n", w.hosts[0].ns, "neigh", "del", cb.ip.Addr().String(), "dev", dev).CombinedOutput(); err != nil {
		t.Fatalf("ip neigh del: %v %s", err, out)
	}
	out := w.hosts[0].call("/mynet.Reconcile", map[string]any{})
	if peers, _ := out["peers_reprogrammed"].([]any); len(peers) != 1 {
		t.Errorf("reconcile report %v, want the entry reprogrammed", out)
	}
	if !strings.Contains(a.remotes(), cb.ip.Addr().String()) {
		t.Errorf("entry not repaired:\n%s", a.remotes())
	}
	// etcd loses its data.
	w.etcd.Wipe()
	w.etcd.Restart()
	var c2 *container
	if !waitFor(30*time.Second, func() bool { var err error; c2, err = b.tryRun(""); return err == nil }) {
		t.Fatal("after etcd was wiped, a new endpoint still fails")
	}
	eventually(t, "old endpoints reached after the wipe", func() error { return ca.ping(cb.ip.Addr(), 0) })
	eventually(t, "a new endpoint reached after the wipe", func() error { return ca.ping(c2.ip.Addr(), 0) })
}

// Two cluster networks are isolated from each other and from a local
// network; taking everything down leaves no link or rule on the hosts.
func TestIsolationAndTeardown(t *testing.T) {
	w := newWorld(t, 2)
	blue := []*clusterNet{w.hosts[0].createNetwork("blue", "10.40.0.0/16"), w.hosts[1].createNetwork("blue", "")}
	red := []*clusterNet{w.hosts[0].createNetwork("red", "10.41.0.0/16"), w.hosts[1].createNetwork("red", "")}
	b1, b2 := blue[0].run(""), blue[1].run("")
	r2 := red[1].run("")
	eventually(t, "blue across hosts", func() error { return b1.ping(b2.ip.Addr(), 0) })
	if err := b1.ping(r2.ip.Addr(), 0); err == nil {
		t.Error("a blue container reached a red one on another host")
	}
	for _, c := range []*container{b1, b2, r2} {
		c.remove()
	}
	for _, n := range append(blue, red...) {
		n.h.call("/NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": n.id})
		n.h.call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": n.poolID, "Address": strings.Split(n.gw, "/")[0]})
		n.h.call("/IpamDriver.ReleasePool", map[string]any{"PoolID": n.poolID})
	}
	for _, h := range w.hosts {
		ok := waitFor(5*time.Second, func() bool {
			out, _ := exec.Command("ip", "-n", h.ns, "-o", "link").Output()
			return !strings.Contains(string(out), ": mn")
		})
		if !ok {
			out, _ := exec.Command("ip", "-n", h.ns, "-o", "link").Output()
			t.Errorf("%s: links left:\n%s", h.name, out)
		}
		rules, _ := exec.Command("ip", "netns", "exec", h.ns, "iptables-save").Output()
		if strings.Contains(string(rules), "mynet:") {
			t.Errorf("%s: tagged rules left", h.name)
		}
	}
}
