package twohosts

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/poll"
)

// TestIPv6AcrossHosts is the walk-through over IPv6 on Engine 29: a
// dual-stack cluster network created once (both subnets on host1) is on
// both hosts with both subnets; containers on it reach each other across
// hosts by name over IPv6 (`ping -6`, mynet answering AAAA for the other
// host's container) and over IPv4; then an IPv6-only network
// (enable_ipv4=false, as Engine 28 and later spell it) likewise, with no
// IPv4 address in its containers.
func TestIPv6AcrossHosts(t *testing.T) {
	c := newCluster(t, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	c.createEverywhere(h1, "ov6", "--ipv6", "--subnet", "10.62.0.0/24", "--subnet", "fd00:62::/64")
	subnets := "{{.EnableIPv6}}{{range .IPAM.Config}} {{.Subnet}}{{end}}"
	if s := h2.must("network", "inspect", "-f", subnets, "ov6"); s != "true 10.62.0.0/24 fd00:62::/64" {
		t.Errorf("host2's ov6: %q, want IPv6 on with both subnets", s)
	}
	h1.run("v6box1", "--network", "ov6")
	h2.run("v6box2", "--network", "ov6")
	ip6 := func(h *host, name, network string) string {
		t.Helper()
		return h.must("inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").GlobalIPv6Address}}", name)
	}
	a6 := ip6(h1, "v6box1", "ov6")
	if !strings.HasPrefix(a6, "fd00:62::") {
		t.Fatalf("v6box1's IPv6 address %q, want one of fd00:62::/64", a6)
	}
	pingByName(t, h2, "v6box2", "v6box1", a6)
	h2.reaches(t, "v6box2", h1.ip("v6box1", "ov6"))

	c.createEverywhere(h1, "ov6only", "--ipv6", "-o", "com.docker.network.enable_ipv4=false", "--subnet", "fd00:63::/64")
	if s := h2.must("network", "inspect", "-f", subnets+" {{.EnableIPv4}}", "ov6only"); s != "true fd00:63::/64 false" {
		t.Errorf("host2's ov6only: %q, want IPv6-only with fd00:63::/64", s)
	}
	h1.run("v6box3", "--network", "ov6only")
	h2.run("v6box4", "--network", "ov6only")
	if v4 := h1.ip("v6box3", "ov6only"); v4 != "" {
		t.Errorf("v6box3 has IPv4 address %q on an IPv6-only network", v4)
	}
	pingByName(t, h2, "v6box4", "v6box3", ip6(h1, "v6box3", "ov6only"))
}

// pingByName waits until container on h pings name over IPv6 at addr.
func pingByName(t *testing.T, h *host, container, name, addr string) {
	t.Helper()
	poll.Eventually(t, container+" pings "+name+" over IPv6 by name", 10*time.Second, func() error {
		out, err := h.docker("exec", container, "ping", "-6", "-c", "2", "-W", "1", name)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, addr) {
			return fmt.Errorf("ping -6 %s went to another address than %s: %s", name, addr, out)
		}
		return nil
	})
}
