package multihost

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/test/mhtest"
)

// etcd frozen or killed: traffic between hosts keeps flowing, a new cluster
// endpoint fails within about 5 s with a clear error, local networks work,
// and everything recovers by itself when etcd is back. The TTL is longer
// than the outage, as the default 15 s is: a one-member etcd that resumes
// after a freeze longer than the TTL expires every lease (a restarted one
// extends them), and the hosts then re-register and re-publish.
func TestEtcdDown(t *testing.T) {
	w := mhtest.NewWorld(t, 2, "--cluster-ttl", "30s")
	a, b := w.Hosts[0].CreateNetwork("blue", "10.40.0.0/16"), w.Hosts[1].CreateNetwork("blue", "")
	ca, cb := a.Run(""), b.Run("")
	mhtest.Eventually(t, "cross-host ping", func() error { return ca.Ping(cb.IP.Addr(), 0) })
	for _, down := range []struct {
		name        string
		fail, recov func()
	}{
		{"frozen", w.Etcd.Stop, w.Etcd.Resume},
		{"killed", w.Etcd.Kill, w.Etcd.Restart},
	} {
		down.fail()
		if err := ca.Ping(cb.IP.Addr(), 0); err != nil {
			t.Errorf("etcd %s: traffic between hosts stopped: %v", down.name, err)
		}
		start := time.Now()
		_, err := a.TryRun("")
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("etcd %s: a new cluster endpoint: %v, want a clear 'unreachable' error", down.name, err)
		}
		if took > 12*time.Second {
			t.Errorf("etcd %s: the failing call took %v, far past the 5 s bound", down.name, took)
		}
		// A local network on the same host does not wait on etcd.
		local := w.Hosts[0].Call("/IpamDriver.RequestPool", map[string]any{"AddressSpace": "LocalDefault", "Pool": fmt.Sprintf("10.60.%d.0/24", len(down.name))})
		w.Hosts[0].Call("/IpamDriver.ReleasePool", map[string]any{"PoolID": local["PoolID"]})
		down.recov()
		var c *mhtest.ClusterNet = a
		var again *mhtest.Container
		if !mhtest.WaitFor(20*time.Second, func() bool { var err error; again, err = c.TryRun(""); return err == nil }) {
			t.Fatalf("etcd %s and back: cluster endpoints still fail", down.name)
		}
		mhtest.Eventually(t, down.name+": the new endpoint is reached from the other host", func() error { return cb.Ping(again.IP.Addr(), 0) })
	}
}

// A daemon killed for less than the TTL: traffic keeps flowing and its
// peers keep its entries. For longer: the peers drop them, and take them
// back when it restarts and re-publishes from its state.
func TestDaemonDownShortAndLong(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	a, b := w.Hosts[0].CreateNetwork("blue", "10.40.0.0/16"), w.Hosts[1].CreateNetwork("blue", "")
	ca, cb := a.Run(""), b.Run("")
	mhtest.Eventually(t, "cross-host ping", func() error { return ca.Ping(cb.IP.Addr(), 0) })
	want := cb.IP.Addr().String()
	if !strings.Contains(a.Remotes(), want) {
		t.Fatalf("host1 does not know %s:\n%s", want, a.Remotes())
	}
	// Short: 1 s, within the 3 s TTL.
	w.Hosts[1].Kill()
	time.Sleep(time.Second)
	if !strings.Contains(a.Remotes(), want) {
		t.Error("a peer down for less than the TTL was dropped")
	}
	if err := ca.Ping(cb.IP.Addr(), 0); err != nil {
		t.Errorf("with host2's daemon down, traffic stopped: %v", err)
	}
	w.Hosts[1].Restart()
	time.Sleep(4 * time.Second) // past the TTL: the reused lease must be alive
	if !strings.Contains(a.Remotes(), want) {
		t.Errorf("after a restart within the TTL host1 lost %s:\n%s", want, a.Remotes())
	}
	// Long: past the TTL host2 is not alive for host1 any more, but host1
	// keeps its endpoints, and traffic with its containers (whose kernel
	// state outlives the daemon) flows.
	w.Hosts[1].Kill()
	mhtest.Eventually(t, "host2 shown not alive on host1 past its TTL", func() error { return peerAlive(w.Hosts[0], "host2", false) })
	if !strings.Contains(a.Remotes(), want) {
		t.Errorf("host2 silent past its TTL: host1 dropped %s", want)
	}
	if err := ca.Ping(cb.IP.Addr(), 0); err != nil {
		t.Errorf("host2's daemon down past its TTL: traffic stopped: %v", err)
	}
	w.Hosts[1].Restart()
	mhtest.Eventually(t, "host2 alive again", func() error { return peerAlive(w.Hosts[0], "host2", true) })
	if !strings.Contains(a.Remotes(), want) {
		t.Errorf("host2 back, but host1 lost %s:\n%s", want, a.Remotes())
	}
	mhtest.Eventually(t, "traffic after host2 came back", func() error { return ca.Ping(cb.IP.Addr(), 0) })
}

// An entry deleted by hand is repaired by reconcile; etcd's data wiped:
// the hosts register and re-publish, and traffic and new endpoints work.
func TestRepairsAndWipe(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	a, b := w.Hosts[0].CreateNetwork("blue", "10.40.0.0/16"), w.Hosts[1].CreateNetwork("blue", "")
	ca, cb := a.Run(""), b.Run("")
	mhtest.Eventually(t, "cross-host ping", func() error { return ca.Ping(cb.IP.Addr(), 0) })
	dev := "mnv" + a.ID[:12]
	if out, err := exec.Command("ip", "-n", w.Hosts[0].NS, "neigh", "del", cb.IP.Addr().String(), "dev", dev).CombinedOutput(); err != nil {
		t.Fatalf("ip neigh del: %v %s", err, out)
	}
	out := w.Hosts[0].Call("/mynet.Reconcile", map[string]any{})
	if peers, _ := out["peers_reprogrammed"].([]any); len(peers) != 1 {
		t.Errorf("reconcile report %v, want the entry reprogrammed", out)
	}
	if !strings.Contains(a.Remotes(), cb.IP.Addr().String()) {
		t.Errorf("entry not repaired:\n%s", a.Remotes())
	}
	// etcd loses its data.
	w.Etcd.Wipe()
	w.Etcd.Restart()
	var c2 *mhtest.Container
	if !mhtest.WaitFor(30*time.Second, func() bool { var err error; c2, err = b.TryRun(""); return err == nil }) {
		t.Fatal("after etcd was wiped, a new endpoint still fails")
	}
	mhtest.Eventually(t, "old endpoints reached after the wipe", func() error { return ca.Ping(cb.IP.Addr(), 0) })
	mhtest.Eventually(t, "a new endpoint reached after the wipe", func() error { return ca.Ping(c2.IP.Addr(), 0) })
}

// Two cluster networks are isolated from each other and from a local
// network; taking everything down leaves no link or rule on the hosts.
func TestIsolationAndTeardown(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	blue := []*mhtest.ClusterNet{w.Hosts[0].CreateNetwork("blue", "10.40.0.0/16"), w.Hosts[1].CreateNetwork("blue", "")}
	red := []*mhtest.ClusterNet{w.Hosts[0].CreateNetwork("red", "10.41.0.0/16"), w.Hosts[1].CreateNetwork("red", "")}
	b1, b2 := blue[0].Run(""), blue[1].Run("")
	r2 := red[1].Run("")
	mhtest.Eventually(t, "blue across hosts", func() error { return b1.Ping(b2.IP.Addr(), 0) })
	if err := b1.Ping(r2.IP.Addr(), 0); err == nil {
		t.Error("a blue container reached a red one on another host")
	}
	for _, c := range []*mhtest.Container{b1, b2, r2} {
		c.Remove()
	}
	for _, n := range append(blue, red...) {
		n.Host.Call("/NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": n.ID})
		n.Host.Call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": n.PoolID, "Address": strings.Split(n.GW, "/")[0]})
		n.Host.Call("/IpamDriver.ReleasePool", map[string]any{"PoolID": n.PoolID})
	}
	for _, h := range w.Hosts {
		ok := mhtest.WaitFor(5*time.Second, func() bool {
			out, _ := exec.Command("ip", "-n", h.NS, "-o", "link").Output()
			return !strings.Contains(string(out), ": mn")
		})
		if !ok {
			out, _ := exec.Command("ip", "-n", h.NS, "-o", "link").Output()
			t.Errorf("%s: links left:\n%s", h.Name, out)
		}
		// The shared rules stay with the daemon; a network's go with it,
		// and the VXLAN guard with the last cluster network (at the next
		// upkeep, within 2 s).
		var left []string
		mhtest.WaitFor(5*time.Second, func() bool {
			left = nil
			rules, _ := exec.Command("ip", "netns", "exec", h.NS, "iptables-save").Output()
			for _, l := range strings.Split(string(rules), "\n") {
				if strings.Contains(l, `"mynet:`) && !strings.Contains(l, `"mynet:base"`) {
					left = append(left, l)
				}
			}
			return len(left) == 0
		})
		for _, l := range left {
			t.Errorf("%s: tagged rule left: %s", h.Name, l)
		}
	}
	// No key is left in etcd either: the cluster network can be made again
	// with another subnet, which etcd refuses while its config (kept until
	// the last claimed address is gone) remains.
	again := w.Hosts[1].CreateNetwork("blue", "10.47.0.0/16")
	if again.GW != "10.47.0.1/16" {
		t.Errorf("blue re-created with gateway %s, want 10.47.0.1/16: the old config is still in etcd", again.GW)
	}
}

// peerAlive checks what a host's status says of another host's liveness.
func peerAlive(h *mhtest.Host, node string, alive bool) error {
	st, err := h.Try("/mynet.Status", map[string]any{})
	if err != nil {
		return err
	}
	c, _ := st["cluster"].(map[string]any)
	peers, _ := c["peers"].([]any)
	for _, p := range peers {
		if m, _ := p.(map[string]any); m["name"] == node {
			if m["alive"] == alive {
				return nil
			}
			return fmt.Errorf("%s alive: %v", node, m["alive"])
		}
	}
	return fmt.Errorf("%s not in %s's status: %v", node, h.Name, peers)
}

// One host cut off from etcd (the others are not), for longer than its
// TTL: traffic with it keeps flowing (its peers keep its endpoints, and
// show it not alive), its new cluster endpoints fail within the bound with
// a clear error, and it recovers by itself when it can reach etcd again.
func TestOneHostCutOffFromEtcd(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	a, b := w.Hosts[0].CreateNetwork("blue", "10.40.0.0/16"), w.Hosts[1].CreateNetwork("blue", "")
	ca, cb := a.Run(""), b.Run("")
	mhtest.Eventually(t, "cross-host ping", func() error { return ca.Ping(cb.IP.Addr(), 0) })
	cut := []string{"-n", w.Hosts[1].NS, "route", "add", "blackhole", "198.18.0.1/32"}
	mhtest.Run(t, "ip", cut...)
	start := time.Now()
	_, err := b.TryRun("")
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("a new endpoint on the cut-off host: %v, want a clear 'unreachable' error", err)
	}
	if took := time.Since(start); took > 12*time.Second {
		t.Errorf("the failing call took %v, far past the 5 s bound", took)
	}
	if err := ca.Ping(cb.IP.Addr(), 0); err != nil {
		t.Errorf("traffic with the cut-off host stopped: %v", err)
	}
	if _, err := a.TryRun(""); err != nil {
		t.Errorf("the host that still reaches etcd cannot add endpoints: %v", err)
	}
	// Past its TTL (3 s).
	mhtest.Eventually(t, "host2 shown not alive on host1", func() error { return peerAlive(w.Hosts[0], "host2", false) })
	if !strings.Contains(a.Remotes(), cb.IP.Addr().String()) {
		t.Errorf("host2 cut off from etcd past its TTL: host1 dropped its endpoint:\n%s", a.Remotes())
	}
	if err := ca.Ping(cb.IP.Addr(), 0); err != nil {
		t.Errorf("host2 cut off from etcd past its TTL: traffic stopped: %v", err)
	}
	mhtest.Run(t, "ip", "-n", w.Hosts[1].NS, "route", "del", "blackhole", "198.18.0.1/32")
	var again *mhtest.Container
	if !mhtest.WaitFor(20*time.Second, func() bool { var err error; again, err = b.TryRun(""); return err == nil }) {
		t.Fatal("the host did not recover after it could reach etcd again")
	}
	mhtest.Eventually(t, "its new endpoint reached from the other host", func() error { return ca.Ping(again.IP.Addr(), 0) })
}

// Hosts may turn bridge-nf-call-iptables off (README, Performance: it is
// most of the gap to a bare VXLAN pair); networks with icc=false still
// keep their containers apart, through their bridge's own netfilter
// option, while the others' bridged traffic no longer passes iptables.
func TestICCOffWithoutTheHostsBridgeNetfilter(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	for _, h := range w.Hosts {
		setBridgeNF(t, h.NS, "0")
	}
	noICC := map[string]string{"com.docker.network.bridge.enable_icc": "false"}
	open := []*mhtest.ClusterNet{w.Hosts[0].CreateNetwork("open", "10.43.0.0/16"), w.Hosts[1].CreateNetwork("open", "")}
	shut := []*mhtest.ClusterNet{w.Hosts[0].CreateNetworkWith("shut", "10.44.0.0/16", noICC), w.Hosts[1].CreateNetworkWith("shut", "", noICC)}
	o1, o2, o3 := open[0].Run(""), open[0].Run(""), open[1].Run("")
	s1, s2, s3 := shut[0].Run(""), shut[0].Run(""), shut[1].Run("")
	mhtest.Eventually(t, "icc on, same host", func() error { return o1.Ping(o2.IP.Addr(), 0) })
	mhtest.Eventually(t, "icc on, across hosts", func() error { return o1.Ping(o3.IP.Addr(), 0) })
	// The cluster peers are known (the open network's are), so a failed
	// ping below is the drop, not a missing FDB entry.
	mhtest.Eventually(t, "shut network's remote endpoint known", func() error {
		if !strings.Contains(shut[0].Remotes(), s3.IP.Addr().String()) {
			return fmt.Errorf("host 1 does not know %s yet: %s", s3.IP.Addr(), shut[0].Remotes())
		}
		return nil
	})
	if err := s1.Ping(s2.IP.Addr(), 0); err == nil {
		t.Error("icc=false, same host: a container reached its neighbour")
	}
	if err := s1.Ping(s3.IP.Addr(), 0); err == nil {
		t.Error("icc=false, across hosts: a container reached another")
	}
	// Each still reaches its gateway: the network itself works.
	if err := s1.Ping(netip.MustParsePrefix(shut[0].GW).Addr(), 0); err != nil {
		t.Errorf("icc=false: the gateway does not answer: %v", err)
	}
}

// A host whose watch falls behind etcd's compaction lists again and
// converges: cut off from etcd long enough for its client to drop the
// connection, it misses an endpoint added and one removed on another host;
// the history is compacted meanwhile, so when it can reach etcd again its
// watch cannot resume (ErrCompacted) and only a new list brings the
// changes: the new endpoint is reached and the removed one's entries go.
func TestWatchCompactionForcesAResync(t *testing.T) {
	w := mhtest.NewWorld(t, 2, "--cluster-ttl", "30s")
	a, b := w.Hosts[0].CreateNetwork("blue", "10.40.0.0/16"), w.Hosts[1].CreateNetwork("blue", "")
	ca, gone, cb := a.Run(""), a.Run(""), b.Run("")
	mhtest.Eventually(t, "cross-host ping", func() error { return cb.Ping(ca.IP.Addr(), 0) })
	mhtest.Eventually(t, "the soon removed endpoint known", func() error { return cb.Ping(gone.IP.Addr(), 0) })
	h := w.Hosts[1]
	// Cut off, and its connections to etcd closed (as a timeout would, in
	// time), so that its client must resume the watch on a new one.
	mhtest.Run(t, "ip", "-n", h.NS, "route", "add", "blackhole", "198.18.0.1/32")
	mhtest.Run(t, "ip", "netns", "exec", h.NS, "ss", "-K", "dst", "198.18.0.1", "dport", "=", "2379")
	added := a.Run("")
	gone.Remove()
	rev := w.Etcd.Compact()
	mhtest.Run(t, "ip", "-n", h.NS, "route", "del", "blackhole", "198.18.0.1/32")
	mhtest.Eventually(t, "the endpoint added meanwhile reached after the resync", func() error { return cb.Ping(added.IP.Addr(), 0) })
	mhtest.Eventually(t, "the removed endpoint's entries gone", func() error {
		if r := b.Remotes(); strings.Contains(r, gone.IP.Addr().String()+" ") {
			return fmt.Errorf("still there:\n%s", r)
		}
		return nil
	})
	if !strings.Contains(h.Log(), cluster.ErrCompacted.Error()) {
		t.Errorf("the watch did not end on the compaction (at revision %d); the host's log:\n%s", rev, h.Log())
	}
}

// A second daemon under a node name a live host holds (the default is the
// hostname, so two machines of one name do this) is refused at start: the
// two would withdraw each other's records.
func TestSecondDaemonWithTheSameNodeNameIsRefused(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	a, b := w.Hosts[0].CreateNetwork("blue", "10.40.0.0/16"), w.Hosts[1].CreateNetwork("blue", "")
	ca, cb := a.Run(""), b.Run("")
	mhtest.Eventually(t, "cross-host ping", func() error { return cb.Ping(ca.IP.Addr(), 0) })
	out, running, err := w.RunDaemonAs(w.Hosts[0].Name, "198.18.0.31", 20*time.Second)
	if running || err == nil || !strings.Contains(out, "is in use by another live host") || !strings.Contains(out, "--node-name") {
		t.Fatalf("a second daemon named host1: still running %v, exit %v; want it refused naming --node-name:\n%s", running, err, mhtest.Tail(out, 2000))
	}
	// host1's records are untouched: host2 still has its endpoint, and
	// traffic flows.
	if want := ca.IP.Addr().String(); !strings.Contains(b.Remotes(), want) {
		t.Errorf("after the refused start host2 lost host1's %s:\n%s", want, b.Remotes())
	}
	if err := cb.Ping(ca.IP.Addr(), 0); err != nil {
		t.Errorf("after the refused start: %v", err)
	}
}

// etcd loses its data while both hosts have containers: no address is
// handed out twice. Each host claims its addresses again (host1's static
// request for host2's address is refused naming host2), and host1's new
// containers get none of the addresses in use, whichever host registers
// first.
func TestNoAddressTwiceAfterEtcdLostItsData(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	a, b := w.Hosts[0].CreateNetwork("blue", "10.40.0.0/24"), w.Hosts[1].CreateNetwork("blue", "")
	inUse := map[netip.Addr]string{}
	for range 3 {
		ca, cb := a.Run(""), b.Run("")
		inUse[ca.IP.Addr()], inUse[cb.IP.Addr()] = "host1", "host2"
	}
	var hostTwos []netip.Addr
	for ip, h := range inUse {
		if h == "host2" {
			hostTwos = append(hostTwos, ip)
		}
	}
	mhtest.Eventually(t, "host1 knows host2's endpoints", func() error {
		for _, ip := range hostTwos {
			if !strings.Contains(a.Remotes(), ip.String()) {
				return fmt.Errorf("not %s yet", ip)
			}
		}
		return nil
	})
	w.Etcd.Wipe()
	w.Etcd.Restart()
	// host1's first request after the wipe: none of the addresses in use.
	var c *mhtest.Container
	if !mhtest.WaitFor(30*time.Second, func() bool { var err error; c, err = a.TryRun(""); return err == nil }) {
		t.Fatal("after etcd was wiped, host1's new endpoint still fails")
	}
	for i := range 4 {
		if i > 0 {
			c = a.Run("")
		}
		if h, taken := inUse[c.IP.Addr()]; taken {
			t.Fatalf("after the wipe host1 handed out %s, which %s's container has", c.IP.Addr(), h)
		}
		inUse[c.IP.Addr()] = "host1"
	}
	// host2 claimed its addresses again.
	mhtest.Eventually(t, "host2's addresses claimed again", func() error {
		_, err := a.TryRun(hostTwos[0].String())
		if err == nil {
			return fmt.Errorf("host1 got host2's %s", hostTwos[0])
		}
		if !strings.Contains(err.Error(), "host2") {
			return fmt.Errorf("refused, but not naming host2: %v", err)
		}
		return nil
	})
	for _, h := range w.Hosts {
		if hl := h.Call("/mynet.Health", map[string]any{}); hl["status"] != "ok" {
			t.Errorf("%s health after the wipe: %v", h.Name, hl)
		}
	}
}
