package twohosts

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/poll"
)

// TestWalkthrough is Docker overlay's classic two-host walk-through, line
// by line, with mynet: a network created once is on every host, with a
// default subnet the same everywhere; containers on it reach each other
// across hosts, by address and by name; another network is isolated from
// it, names too.
func TestWalkthrough(t *testing.T) { walkthrough(t, newCluster(t, 2)) }

// TestWalkthroughManagedPlugin is the walk-through with mynet installed
// as users mostly do, the managed plugin on every host: names across
// hosts through its mount of dockerd's exec root, the sync creating
// networks with the plugin's reference though nothing told it.
func TestWalkthroughManagedPlugin(t *testing.T) {
	c := newPluginCluster(t, 2)
	for _, h := range c.hosts {
		poll.Eventually(t, h.id+"'s names across hosts and docker sync on", 10*time.Second, func() error {
			if hl := h.health(); hl.Names != "on" || !strings.HasPrefix(hl.DockerSync, "on") {
				return fmt.Errorf("names across hosts %q, docker sync %q", hl.Names, hl.DockerSync)
			}
			return nil
		})
	}
	walkthrough(t, c)
}

// TestNamesWithDockerOnNFTables: with dockerd's nftables firewall
// backend, Docker's DNAT of 127.0.0.11 in each container is a chain of
// its own at the same hook and priority iptables' nat OUTPUT had: names
// of other hosts resolve all the same, and Docker's own names stay
// Docker's answers.
func TestNamesWithDockerOnNFTables(t *testing.T) {
	c := startCluster(t, 2, &cluster{dockerd: []string{"--firewall-backend=nftables"}})
	h1, h2 := c.hosts[0], c.hosts[1]
	c.createEverywhere(h1, "ov_nft")
	h1.run("nbox1", "--network", "ov_nft")
	h2.run("nbox2", "--network", "ov_nft", "--network-alias", "web")
	ip1, ip2 := h1.ip("nbox1", "ov_nft"), h2.ip("nbox2", "ov_nft")
	poll.Eventually(t, "nbox2 resolves nbox1 (host1)", 10*time.Second, func() error {
		if out, err := h2.docker("exec", "nbox2", "nslookup", "nbox1"); err != nil || !strings.Contains(out, ip1) {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	poll.Eventually(t, "nbox1 resolves web (an alias on host2)", 10*time.Second, func() error {
		if out, err := h1.docker("exec", "nbox1", "nslookup", "web"); err != nil || !strings.Contains(out, ip2) {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if out, err := h2.docker("exec", "nbox2", "nslookup", "nbox2"); err != nil || !strings.Contains(out, ip2) {
		t.Errorf("nbox2's own name on its host: %v %s", err, out)
	}
	h2.reaches(t, "nbox2", "nbox1")
}

func walkthrough(t *testing.T, c *cluster) {
	h1, h2 := c.hosts[0], c.hosts[1]

	// host1$ docker network create ... ov_net1   (once, on one host)
	h1.must(c.net("ov_net1")...)
	t.Cleanup(func() { removeEverywhere(c, "ov_net1") })
	start := time.Now()
	// host2$ docker network ls                   (ov_net1 is there too)
	poll.Eventually(t, "host2 has ov_net1", 10*time.Second, func() error {
		if !h2.hasNetwork("ov_net1") {
			return fmt.Errorf("host2's networks: %s", h2.must("network", "ls", "--format", "{{.Name}}"))
		}
		return nil
	})
	t.Logf("ov_net1 on host2 %v after its create on host1", time.Since(start).Round(time.Millisecond))
	subnet := "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}"
	if s1, s2 := h1.must("network", "inspect", "-f", subnet, "ov_net1"), h2.must("network", "inspect", "-f", subnet, "ov_net1"); s1 != "10.0.0.0/24 10.0.0.1" || s2 != s1 {
		t.Errorf("ov_net1's subnet: host1 %q, host2 %q; want the default pool's first, 10.0.0.0/24 10.0.0.1, on both", s1, s2)
	}
	if d, want := h2.must("network", "inspect", "-f", "{{.Driver}} {{.IPAM.Driver}} {{index .IPAM.Options \"mynet.cluster\"}}", "ov_net1"), c.driver()+" "+c.driver()+" ov_net1"; d != want {
		t.Errorf("host2's ov_net1: driver, IPAM, cluster %q, want %q", d, want)
	}

	// host1$ docker run -itd --name bbox1 --network ov_net1 busybox
	// host2$ docker run -itd --name bbox2 --network ov_net1 busybox
	h1.run("bbox1", "--network", "ov_net1")
	h2.run("bbox2", "--network", "ov_net1")
	ip1 := h1.ip("bbox1", "ov_net1")
	ip2 := h2.ip("bbox2", "ov_net1")
	if ip1 == ip2 || !strings.HasPrefix(ip1, "10.0.0.") || !strings.HasPrefix(ip2, "10.0.0.") {
		t.Fatalf("addresses bbox1 %s, bbox2 %s: want two of 10.0.0.0/24", ip1, ip2)
	}
	h2.reaches(t, "bbox2", ip1)

	// host2$ docker exec bbox2 ping -c 2 bbox1   (by name, across hosts)
	poll.Eventually(t, "bbox2 pings bbox1 by name", 10*time.Second, func() error {
		out, err := h2.docker("exec", "bbox2", "ping", "-c", "2", "-W", "1", "bbox1")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, ip1) {
			return fmt.Errorf("ping bbox1 went to another address: %s", out)
		}
		return nil
	})
	if out := h2.must("exec", "bbox2", "nslookup", "bbox1"); !strings.Contains(out, ip1) {
		t.Errorf("nslookup bbox1 on host2: %s, want %s", out, ip1)
	}
	// A name of the same host stays Docker's answer; so do others.
	if out := h1.must("exec", "bbox1", "nslookup", "bbox1"); !strings.Contains(out, ip1) {
		t.Errorf("nslookup bbox1 on host1 (its own host): %s", out)
	}

	// While host2's mynet is stopped, its containers' DNS is Docker's
	// alone (the same host's names resolve); started again, names of the
	// other host do again.
	h2.stopMynet()
	if out, err := h2.docker("exec", "bbox2", "nslookup", "bbox2"); err != nil || !strings.Contains(out, ip2) {
		t.Errorf("with mynet stopped, bbox2 does not resolve its own name: %v %s", err, out)
	}
	h2.startMynet()
	poll.Eventually(t, "bbox2 resolves bbox1 after mynet's restart", 10*time.Second, func() error {
		if out, err := h2.docker("exec", "bbox2", "nslookup", "bbox1"); err != nil || !strings.Contains(out, ip1) {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	// host1$ docker network create ... ov_net2; docker run ... bbox3
	h1.must(c.net("ov_net2")...)
	t.Cleanup(func() { removeEverywhere(c, "ov_net2") })
	if s := h1.must("network", "inspect", "-f", subnet, "ov_net2"); s != "10.0.1.0/24 10.0.1.1" {
		t.Errorf("ov_net2's subnet %q, want the default pool's next, 10.0.1.0/24 10.0.1.1", s)
	}
	h1.run("bbox3", "--network", "ov_net2")
	// host1$ docker exec bbox3 ping -c 2 <bbox1's address>   (isolated)
	if out, err := h1.docker("exec", "bbox3", "ping", "-c", "2", "-W", "1", ip1); err == nil {
		t.Errorf("bbox3 on ov_net2 reaches bbox1 on ov_net1: %s", out)
	}
	if out, err := h1.docker("exec", "bbox3", "ping", "-c", "2", "-W", "1", ip2); err == nil {
		t.Errorf("bbox3 on ov_net2 reaches bbox2 (host2, ov_net1): %s", out)
	}
	// A name of another network does not resolve there.
	if out, err := h1.docker("exec", "bbox3", "nslookup", "bbox2"); err == nil || strings.Contains(out, ip2) {
		t.Errorf("bbox3 on ov_net2 resolves bbox2 of ov_net1: %v %s", err, out)
	}

	// A container that goes stops resolving on the other host.
	h1.run("bbox4", "--network", "ov_net1")
	poll.Eventually(t, "bbox2 resolves bbox4", 10*time.Second, func() error {
		if out, err := h2.docker("exec", "bbox2", "nslookup", "bbox4"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	h1.must("stop", "-t", "0", "bbox4")
	stopped := time.Now()
	poll.Eventually(t, "bbox4 stops resolving on host2", 10*time.Second, func() error {
		if out, err := h2.docker("exec", "bbox2", "nslookup", "bbox4"); err == nil {
			return fmt.Errorf("still resolves: %s", out)
		}
		return nil
	})
	t.Logf("a stopped container stopped resolving on the other host %v after docker stop returned", time.Since(stopped).Round(time.Millisecond))

	poll.Eventually(t, "host2 has ov_net2", 10*time.Second, func() error {
		if !h2.hasNetwork("ov_net2") {
			return fmt.Errorf("absent")
		}
		return nil
	})
}

// createEverywhere creates cluster network name on h, as users do (with
// the create's extra flags), and waits until every host has it; it is
// removed everywhere at the end.
func (c *cluster) createEverywhere(h *host, name string, extra ...string) {
	c.t.Helper()
	h.must(c.net(name, extra...)...)
	c.t.Cleanup(func() { removeEverywhere(c, name) })
	for _, o := range c.hosts {
		poll.Eventually(c.t, o.id+" has "+name, 10*time.Second, func() error {
			if !o.hasNetwork(name) {
				return fmt.Errorf("absent")
			}
			return nil
		})
	}
}

// removeEverywhere removes a network's containers and the network on every
// host (test cleanup; the sync does the rest).
func removeEverywhere(c *cluster, name string) {
	for _, h := range c.hosts {
		if ids, err := h.docker("ps", "-aq", "--filter", "network="+name); err == nil && ids != "" {
			_, _ = h.docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
		_, _ = h.docker("network", "rm", name)
	}
}
