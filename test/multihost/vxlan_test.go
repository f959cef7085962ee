package multihost

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/test/mhtest"
)

// mynetPort is the VXLAN port of a network made now: mynet's own, not
// Docker overlay's 4789.
var mynetPort = strconv.Itoa(cluster.DefaultVXLANPort)

// vxlanID is the VNI of a VXLAN device in a host's namespace.
func vxlanID(t *testing.T, ns, dev string) string {
	t.Helper()
	f := strings.Fields(mhtest.Run(t, "ip", "-n", ns, "-d", "link", "show", dev))
	for i := range f[:len(f)-1] {
		if f[i] == "vxlan" && f[i+1] == "id" {
			return f[i+2]
		}
	}
	t.Fatalf("no VNI in ip -d link show %s", dev)
	return ""
}

// What a crash leaves behind: a VXLAN device of an earlier network with the
// cluster network's VNI (the kernel refuses a second device with that VNI)
// is removed when the daemon starts again, and the network then comes up;
// its own device, replaced by hand with a wrong VNI, is put right by the
// next reconcile, and traffic returns.
func TestLeftoverVXLANDevicesAfterACrash(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	a := w.Hosts[0].CreateNetwork("blue", "10.40.0.0/16")
	vni := vxlanID(t, w.Hosts[0].NS, "mnv"+a.ID[:12])
	h2 := w.Hosts[1]
	h2.Kill()
	mhtest.Run(t, "ip", "-n", h2.NS, "link", "add", "mnvdead00000000", "type", "vxlan", "id", vni,
		"local", h2.Addr, "dstport", mynetPort, "nolearning")
	h2.Restart()
	if out, _ := exec.Command("ip", "-n", h2.NS, "link", "show", "mnvdead00000000").CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("the leftover device with the cluster's VNI is still there: %s", out)
	}
	b := h2.CreateNetwork("blue", "")
	ca, cb := a.Run(""), b.Run("")
	mhtest.Eventually(t, "cross-host ping after the leftover went", func() error { return ca.Ping(cb.IP.Addr(), 0) })

	dev := "mnv" + b.ID[:12]
	mhtest.Run(t, "ip", "-n", h2.NS, "link", "del", dev)
	mhtest.Run(t, "ip", "-n", h2.NS, "link", "add", dev, "type", "vxlan", "id", "999", "local", h2.Addr, "dstport", mynetPort)
	h2.Call("/mynet.Reconcile", map[string]any{})
	if got := vxlanID(t, h2.NS, dev); got != vni {
		t.Errorf("after reconcile the device has VNI %s, want %s", got, vni)
	}
	mhtest.Eventually(t, "cross-host ping after the device was repaired", func() error { return ca.Ping(cb.IP.Addr(), 0) })
}

// Only members speak VXLAN: a machine on the underlay that is not a host of
// the cluster, sending VXLAN with the network's VNI to a host, is dropped
// there (one rule against a set of the members), while the members' traffic
// flows.
func TestVXLANFromANonMemberIsDropped(t *testing.T) {
	w, a, ca, cb := blueOnTwoHosts(t)
	h1 := w.Hosts[0]
	dropped := func() int {
		out := mhtest.Run(t, "ip", "netns", "exec", h1.NS, "iptables", "-L", "INPUT", "-v", "-x", "-n")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[2] == "DROP" && strings.Contains(l, "mynet:vxlan") && strings.Contains(l, "match-set mynet-vteps src") {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
		return -1
	}
	mhtest.Eventually(t, "the VXLAN guard on host1", func() error {
		if dropped() < 0 {
			return fmt.Errorf("no guard rule")
		}
		return nil
	})
	before := dropped()
	rogue := w.AttachNS("rogue", "198.18.0.40")
	vni := vxlanID(t, h1.NS, "mnv"+a.ID[:12])
	for _, args := range [][]string{
		{"-n", rogue, "link", "add", "vx0", "type", "vxlan", "id", vni, "remote", h1.Addr, "local", "198.18.0.40", "dstport", mynetPort},
		{"-n", rogue, "addr", "add", "10.40.250.1/16", "dev", "vx0"},
		{"-n", rogue, "link", "set", "vx0", "up"},
	} {
		mhtest.Run(t, "ip", args...)
	}
	_ = exec.Command("ip", "netns", "exec", rogue, "ping", "-c", "3", "-i", "0.2", "-W", "1", ca.IP.Addr().String()).Run()
	if got := dropped(); got < before+3 {
		t.Errorf("host1 dropped %d VXLAN packets from the non-member, want at least 3 (before: %d)", got-before, before)
	}
	if err := ca.Ping(cb.IP.Addr(), 0); err != nil {
		t.Errorf("members' traffic with the guard in place: %v", err)
	}
}

// Docker's overlay (swarm's too) speaks VXLAN on UDP 4789 with VNIs from
// 4096 up; mynet's networks use a port of their own. On a host with a
// mynet cluster network, a VXLAN device on 4789 with mynet's very VNI (one
// overlay could pick) comes up beside mynet's (on one port, the kernel
// would refuse it: that VNI exists); a machine that runs no mynet (a swarm
// node, say) talks to it through 4789, which mynet's guard leaves alone;
// and mynet's own traffic flows.
func TestDockerOverlayVXLANBesideMynet(t *testing.T) {
	w, a, ca, cb := blueOnTwoHosts(t)
	h1 := w.Hosts[0]
	dev := "mnv" + a.ID[:12]
	if out := mhtest.Run(t, "ip", "-n", h1.NS, "-d", "link", "show", dev); !strings.Contains(out, "dstport "+mynetPort) {
		t.Fatalf("mynet's VXLAN device is not on port %s:\n%s", mynetPort, out)
	}
	vni := vxlanID(t, h1.NS, dev)
	// Overlay's device, in the host's namespace (where overlay makes it).
	t.Cleanup(func() { _ = exec.Command("ip", "-n", h1.NS, "link", "del", "ovtest0").Run() })
	node := w.AttachNS("ovnode", "198.18.0.41")
	for _, args := range [][]string{
		{"-n", h1.NS, "link", "add", "ovtest0", "type", "vxlan", "id", vni, "local", h1.Addr, "dstport", "4789"},
		{"-n", h1.NS, "addr", "add", "10.77.0.1/24", "dev", "ovtest0"},
		{"-n", h1.NS, "link", "set", "ovtest0", "up"},
		{"-n", node, "link", "add", "vx0", "type", "vxlan", "id", vni, "remote", h1.Addr, "local", "198.18.0.41", "dstport", "4789"},
		{"-n", node, "addr", "add", "10.77.0.2/24", "dev", "vx0"},
		{"-n", node, "link", "set", "vx0", "up"},
	} {
		mhtest.Run(t, "ip", args...)
	}
	mhtest.Eventually(t, "the VXLAN guard on host1", func() error {
		if out := mhtest.Run(t, "ip", "netns", "exec", h1.NS, "iptables", "-S", "INPUT"); !strings.Contains(out, "--dport "+mynetPort) {
			return fmt.Errorf("no guard rule on mynet's port:\n%s", out)
		}
		return nil
	})
	if out, err := exec.Command("ip", "netns", "exec", node, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.77.0.1").CombinedOutput(); err != nil {
		t.Errorf("overlay's VXLAN from a host without mynet, beside mynet's guard: %v\n%s", err, out)
	}
	if err := ca.Ping(cb.IP.Addr(), 0); err != nil {
		t.Errorf("mynet's traffic beside overlay's device: %v", err)
	}
}

// blueOnTwoHosts is a cluster network on two hosts, a container on each,
// talking: a (host1's network) and the containers.
func blueOnTwoHosts(t *testing.T) (*mhtest.World, *mhtest.ClusterNet, *mhtest.Container, *mhtest.Container) {
	t.Helper()
	w := mhtest.NewWorld(t, 2)
	a, b := w.Hosts[0].CreateNetwork("blue", "10.40.0.0/16"), w.Hosts[1].CreateNetwork("blue", "")
	ca, cb := a.Run(""), b.Run("")
	mhtest.Eventually(t, "cross-host ping", func() error { return ca.Ping(cb.IP.Addr(), 0) })
	return w, a, ca, cb
}
