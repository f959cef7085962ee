package multihost

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/mynet/mynet/test/mhtest"
)

// Three hosts, one cluster network: every container reaches every other
// across hosts, full-size packets with DF set pass (the MTU is right), and
// an address released on one host and reused on another is reached there.
func TestAllPairsAcrossThreeHosts(t *testing.T) {
	w := mhtest.NewWorld(t, 3)
	var nets []*mhtest.ClusterNet
	for i, h := range w.Hosts {
		subnet := "10.40.0.0/16"
		if i > 0 {
			subnet = "" // later hosts take the cluster's subnet
		}
		n := h.CreateNetwork("blue", subnet)
		if n.GW != "10.40.0.1/16" {
			t.Errorf("%s: gateway %s, want the cluster's 10.40.0.1/16", h.Name, n.GW)
		}
		nets = append(nets, n)
	}
	var cs []*mhtest.Container
	for _, n := range nets {
		cs = append(cs, n.Run(""), n.Run(""))
	}
	seen := map[netip.Addr]bool{}
	for _, c := range cs {
		if seen[c.IP.Addr()] {
			t.Fatalf("%s handed out twice", c.IP)
		}
		seen[c.IP.Addr()] = true
	}
	for _, a := range cs {
		for _, b := range cs {
			if a == b {
				continue
			}
			mhtest.Eventually(t, fmt.Sprintf("%s -> %s", a.IP, b.IP), func() error { return a.Ping(b.IP.Addr(), 0) })
		}
	}
	// The bridge's MTU is the underlay's (1500) minus VXLAN's 50: a 1450
	// byte packet (1422 of payload) with DF passes between hosts.
	if err := cs[0].Ping(cs[2].IP.Addr(), 1422); err != nil {
		t.Errorf("a full-size packet with DF set across hosts: %v", err)
	}
	out, _ := exec.Command("ip", "-n", w.Hosts[0].NS, "link", "show", "mn-"+nets[0].ID[:12]).Output()
	if !strings.Contains(string(out), "mtu 1450") {
		t.Errorf("bridge MTU on host1:\n%s", out)
	}

	// mynet status on host1 shows the cluster: three live hosts and the
	// four endpoints of the other two.
	out, err := exec.Command(mhtest.Binary(t), "status", "--socket", w.Hosts[0].Socket()).CombinedOutput()
	if err != nil {
		t.Fatalf("mynet status: %v\n%s", err, out)
	}
	for _, want := range []string{"CLUSTER", "node host1 (198.18.0.11)", "host2  198.18.0.12  true", "host3  198.18.0.13  true", "PEERS (other hosts' containers)", "cluster=blue"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("mynet status lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(string(out), " host2 ") + strings.Count(string(out), " host3 "); n < 4 {
		t.Errorf("mynet status lists %d remote endpoints, want 4:\n%s", n, out)
	}

	// Released on host1, reused on host2: host3 reaches the new holder.
	moved := cs[0].IP.Addr()
	cs[0].Remove()
	reused := nets[1].Run(moved.String())
	if reused.IP.Addr() != moved {
		t.Fatalf("host2 got %s, want the released %s", reused.IP, moved)
	}
	mhtest.Eventually(t, "host3 reaches the address now on host2", func() error { return cs[4].Ping(moved, 0) })
}

// 3 hosts x 50 concurrent endpoints get distinct addresses, and a race of
// three hosts for one --ip has exactly one winner.
func TestConcurrentEndpointsAcrossHosts(t *testing.T) {
	w := mhtest.NewWorld(t, 3)
	var nets []*mhtest.ClusterNet
	for _, h := range w.Hosts {
		nets = append(nets, h.CreateNetwork("green", "10.44.0.0/16"))
	}
	var mu sync.Mutex
	addrs := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for _, n := range nets {
		for range 50 {
			wg.Go(func() {
				c, err := n.TryRun("")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if prev, dup := addrs[c.IP.Addr()]; dup {
					t.Errorf("%s given to %s and %s", c.IP, prev, n.Host.Name)
				}
				addrs[c.IP.Addr()] = n.Host.Name
			})
		}
	}
	wg.Wait()
	if len(addrs) != 150 {
		t.Errorf("%d distinct addresses, want 150", len(addrs))
	}
	wins := make(chan string, 3)
	for _, n := range nets {
		wg.Go(func() {
			if _, err := n.TryRun("10.44.200.200"); err == nil {
				wins <- n.Host.Name
			} else if !strings.Contains(err.Error(), "in use on host") {
				t.Errorf("%s: the loser's error does not say who has it: %v", n.Host.Name, err)
			}
		})
	}
	wg.Wait()
	close(wins)
	if len(wins) != 1 {
		t.Errorf("%d hosts won the race for 10.44.200.200, want 1", len(wins))
	}
}
