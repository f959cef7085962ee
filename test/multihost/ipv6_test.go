package multihost

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/test/mhtest"
)

// A dual-stack cluster network on three hosts, its IPv6 subnet given on
// the first only: every host has the same IPv6 gateway, every container
// reaches every other over IPv4 and IPv6 (the VXLAN proxy answers their
// neighbour solicitations), and no IPv6 address is handed out twice; a
// container's two records share one forwarding entry, which goes with the
// last of them.
func TestDualStackAcrossThreeHosts(t *testing.T) {
	w := mhtest.NewWorld(t, 3)
	var nets []*mhtest.ClusterNet
	for i, h := range w.Hosts {
		subnet, subnet6 := "10.60.0.0/24", "fd00:60::/64"
		if i > 0 {
			subnet, subnet6 = "", "" // the cluster's
		}
		n := h.CreateDualStack("ds", subnet, subnet6)
		if n.GW6 != "fd00:60::1/64" {
			t.Errorf("%s: IPv6 gateway %s, want the cluster's fd00:60::1/64", h.Name, n.GW6)
		}
		// The shared gateway is usable at once on every host: no
		// duplicate detection (nodad), never tentative.
		if out := mhtest.Run(t, "ip", "-n", h.NS, "-6", "addr", "show", "dev", "mn-"+n.ID[:12], "to", "fd00:60::1"); !strings.Contains(out, "fd00:60::1/64") || strings.Contains(out, "tentative") || strings.Contains(out, "dadfailed") {
			t.Errorf("%s: the bridge's IPv6 gateway:\n%s", h.Name, out)
		}
		nets = append(nets, n)
	}
	var cs []*mhtest.Container
	seen := map[netip.Addr]bool{}
	for _, n := range nets {
		for range 2 {
			c := n.Run("")
			if !c.IP6.IsValid() || seen[c.IP6.Addr()] {
				t.Fatalf("%s: IPv6 address %v (twice, or none)", n.Host.Name, c.IP6)
			}
			seen[c.IP6.Addr()] = true
			cs = append(cs, c)
		}
	}
	for _, a := range cs {
		for _, b := range cs {
			if a.Net.Host == b.Net.Host {
				continue
			}
			mhtest.Eventually(t, fmt.Sprintf("%s -> %s over IPv6", a.IP6, b.IP6), func() error { return a.Ping(b.IP6.Addr(), 0) })
			if err := a.Ping(b.IP.Addr(), 0); err != nil {
				t.Errorf("over IPv4: %v", err)
			}
		}
	}
	// The proxy answers neighbour solicitations from the VXLAN device's
	// entries: the container learnt a remote address at the remote MAC.
	a, b := cs[0], cs[2]
	if out := mhtest.Run(t, "ip", "-n", a.NS, "-6", "neigh", "show", b.IP6.Addr().String()); !strings.Contains(out, b.MAC) {
		t.Errorf("%s's neighbour entry of %s: %q, want %s", a.NS, b.IP6.Addr(), out, b.MAC)
	}
	// A container removed: both its records go, the fdb entry they shared
	// with them (after the first, it stays for the second), and the other
	// containers of its host are still reached over both families.
	c3 := cs[2]
	mhtest.Eventually(t, "a's host has b's two entries", func() error {
		out := mhtest.Run(t, "ip", "-n", a.Net.Host.NS, "neigh", "show", "dev", "mnv"+a.Net.ID[:12], "nud", "permanent")
		if !strings.Contains(out, c3.IP.Addr().String()) || !strings.Contains(out, c3.IP6.Addr().String()) {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
	c3.Remove()
	mhtest.Eventually(t, "b's entries gone from a's host", func() error {
		out := mhtest.Run(t, "ip", "-n", a.Net.Host.NS, "neigh", "show", "dev", "mnv"+a.Net.ID[:12], "nud", "permanent")
		if strings.Contains(out, c3.IP.Addr().String()+" ") || strings.Contains(out, c3.IP6.Addr().String()+" ") {
			return fmt.Errorf("%s", out)
		}
		fdb, _ := exec.Command("ip", "netns", "exec", a.Net.Host.NS, "bridge", "fdb", "show", "dev", "mnv"+a.Net.ID[:12]).Output()
		if strings.Contains(string(fdb), c3.MAC+" dst") {
			return fmt.Errorf("its fdb entry is still there: %s", fdb)
		}
		return nil
	})
	d := cs[3] // the other container on the same host as c3
	if err := a.Ping(d.IP6.Addr(), 0); err != nil {
		t.Errorf("after a neighbour's removal: %v", err)
	}
	if err := a.Ping(d.IP.Addr(), 0); err != nil {
		t.Errorf("after a neighbour's removal: %v", err)
	}
	// d's IPv6 address moves to a new container on host3 (another MAC):
	// a, which talked to it, has it at the old MAC, and is told the new
	// one by an unsolicited neighbour advertisement, not after its entry
	// goes stale (tens of seconds).
	moved := d.IP6.Addr()
	d.Remove()
	e := nets[2].RunAt("", moved.String())
	if e.IP6.Addr() != moved {
		t.Fatalf("the moved container has %v, want %v", e.IP6, moved)
	}
	took := mhtest.Eventually(t, "a has the moved address at its new MAC", func() error {
		out := mhtest.Run(t, "ip", "-n", a.NS, "-6", "neigh", "show", moved.String())
		if !strings.Contains(out, e.MAC) {
			return fmt.Errorf("%q, want %s", out, e.MAC)
		}
		return nil
	})
	t.Logf("the moved address's new MAC reached a's neighbour cache in %v", took)
	if err := a.Ping(moved, 0); err != nil {
		t.Errorf("the moved address: %v", err)
	}
}

// An IPv6-only cluster network (--ipv6, enable_ipv4=false) on three
// hosts, its subnet given on the first only: every container reaches
// every other over IPv6, no bridge or container has an IPv4 address on
// it; a host restarted reaches them again from its saved peers.
func TestIPv6OnlyAcrossThreeHosts(t *testing.T) {
	w := mhtest.NewWorld(t, 3)
	var nets []*mhtest.ClusterNet
	for i, h := range w.Hosts {
		subnet6 := "fd00:61::/64"
		if i > 0 {
			subnet6 = ""
		}
		n := h.CreateIPv6Only("six", subnet6)
		if n.GW6 != "fd00:61::1/64" {
			t.Errorf("%s: IPv6 gateway %s, want fd00:61::1/64", h.Name, n.GW6)
		}
		if out := mhtest.Run(t, "ip", "-n", h.NS, "-4", "addr", "show", "dev", "mn-"+n.ID[:12]); strings.Contains(out, "inet ") {
			t.Errorf("%s: an IPv4 address on an IPv6-only network's bridge:\n%s", h.Name, out)
		}
		nets = append(nets, n)
	}
	var cs []*mhtest.Container
	for _, n := range nets {
		c := n.Run("")
		if c.IP.IsValid() || !c.IP6.IsValid() {
			t.Fatalf("%s: addresses %v and %v, want IPv6 only", n.Host.Name, c.IP, c.IP6)
		}
		cs = append(cs, c)
	}
	all := func(what string) {
		t.Helper()
		for _, a := range cs {
			for _, b := range cs {
				if a != b {
					mhtest.Eventually(t, fmt.Sprintf("%s: %s -> %s", what, a.IP6, b.IP6), func() error { return a.Ping(b.IP6.Addr(), 0) })
				}
			}
		}
	}
	all("IPv6-only")
	w.Hosts[1].Restart()
	all("after host2's restart")
}

// An IPv6 underlay: hosts advertise IPv6 addresses. A dual-stack network's
// VXLAN runs over IPv6 (the device's source, the peers' fdb entries), its
// MTU is the underlay's less VXLAN over IPv6's 70 bytes (a DF ping at the
// boundary passes, one byte more does not), both families cross, and the
// members' guard is in ip6tables against an IPv6 set.
func TestIPv6Underlay(t *testing.T) {
	w := mhtest.NewWorldWith(t, mhtest.WorldOptions{Hosts: 2, Underlay6: true})
	a := w.Hosts[0].CreateDualStack("u6", "10.62.0.0/24", "fd00:62::/64")
	b := w.Hosts[1].CreateDualStack("u6", "", "")
	ca, cb := a.Run(""), b.Run("")
	mhtest.Eventually(t, "IPv4 across an IPv6 underlay", func() error { return ca.Ping(cb.IP.Addr(), 0) })
	mhtest.Eventually(t, "IPv6 across an IPv6 underlay", func() error { return ca.Ping(cb.IP6.Addr(), 0) })
	h1, h2 := w.Hosts[0], w.Hosts[1]
	dev := "mnv" + a.ID[:12]
	if out := mhtest.Run(t, "ip", "-n", h1.NS, "-d", "link", "show", dev); !strings.Contains(out, "local "+h1.Addr) || !strings.Contains(out, "mtu 1430") {
		t.Errorf("the VXLAN device:\n%s", out)
	}
	fdb, _ := exec.Command("ip", "netns", "exec", h1.NS, "bridge", "fdb", "show", "dev", dev).Output()
	if !strings.Contains(string(fdb), cb.MAC+" dst "+h2.Addr) {
		t.Errorf("no fdb entry of %s to %s:\n%s", cb.MAC, h2.Addr, fdb)
	}
	if err := ca.Ping(cb.IP.Addr(), 1430-28); err != nil {
		t.Errorf("a DF ping at the MTU: %v", err)
	}
	if err := ca.Ping(cb.IP.Addr(), 1430-28+1); err == nil {
		t.Error("a DF ping one byte over the MTU passed")
	}
	mhtest.Eventually(t, "the VXLAN guard in ip6tables", func() error {
		out := mhtest.Run(t, "ip", "netns", "exec", h1.NS, "ip6tables", "-S", "INPUT")
		if !strings.Contains(out, "mynet-vteps6") || !strings.Contains(out, h1.Addr) {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
}

// Outbound IPv6 from a dual-stack cluster network, as from a local one:
// masqueraded behind the host (NAT66). The "outside" is a namespace of
// the test's behind host1, with no route back to the network's subnet:
// only a reply to the host's own address comes back.
func TestClusterIPv6Outbound(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	h1 := w.Hosts[0]
	n := h1.CreateDualStack("out6", "10.64.0.0/24", "fd00:64::/64")
	w.Hosts[1].CreateDualStack("out6", "", "")
	c := n.Run("")
	out := fmt.Sprintf("mnmh6out%d", os.Getpid()%100000)
	mhtest.Run(t, "ip", "netns", "add", out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", out).Run() })
	mhtest.Run(t, "ip", "-n", h1.NS, "link", "add", "o6", "type", "veth", "peer", "name", "eth0", "netns", out)
	mhtest.Run(t, "ip", "-n", h1.NS, "addr", "add", "fd00:99::1/64", "dev", "o6", "nodad")
	mhtest.Run(t, "ip", "-n", h1.NS, "link", "set", "o6", "up")
	mhtest.Run(t, "ip", "-n", out, "addr", "add", "fd00:99::2/64", "dev", "eth0", "nodad")
	mhtest.Run(t, "ip", "-n", out, "link", "set", "eth0", "up")
	took := mhtest.Eventually(t, "the container reaches the outside over IPv6", func() error { return c.Ping(netip.MustParseAddr("fd00:99::2"), 0) })
	t.Logf("reached the outside after %v", took.Round(time.Millisecond))
	if routes := mhtest.Run(t, "ip", "-n", out, "-6", "route", "show"); strings.Contains(routes, "fd00:64") || strings.Contains(routes, "default") {
		t.Fatalf("the outside has a route back to the network: %s", routes)
	}
}
