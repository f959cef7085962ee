package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// poolHosts are hosts with the default cluster pool, /24s of 10.0.0.0/8.
func poolHosts(t *testing.T, mem *Memory, first, n int) []*Client {
	t.Helper()
	var out []*Client
	for i := first; i < first+n; i++ {
		c := NewWithStore(mem, Config{Node: fmt.Sprintf("host%d", i+1), Advertise: netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 11)}),
			CallTimeout: time.Second, SubnetPool: netip.MustParsePrefix("10.0.0.0/8"), SubnetSize: 24})
		out = append(out, c)
	}
	register(t, out...)
	return out
}

func TestDefaultSubnets(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := poolHosts(t, mem, 0, 2)
	ensure := func(c *Client, name string, subnet string) NetworkSpec {
		t.Helper()
		var p netip.Prefix
		if subnet != "" {
			p = netip.MustParsePrefix(subnet)
		}
		spec, err := c.EnsureNetwork(name, p, netip.Addr{}, 0)
		if err != nil {
			t.Fatalf("ensure %s: %v", name, err)
		}
		return spec
	}
	if s := ensure(h[0], "a", ""); s.Subnet.String() != "10.0.0.0/24" || s.Gateway.String() != "10.0.0.1" {
		t.Fatalf("first default network: %+v", s)
	}
	// The same network from another host without a subnet: the cluster's.
	if s := ensure(h[1], "a", ""); s.Subnet.String() != "10.0.0.0/24" {
		t.Fatalf("a again from host2: %+v", s)
	}
	// A host's routes and a user's subnet are skipped.
	if err := h[1].PublishRoutes([]netip.Prefix{netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("172.17.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	ensure(h[0], "user", "10.0.2.0/23")
	if s := ensure(h[0], "b", ""); s.Subnet.String() != "10.0.4.0/24" {
		t.Fatalf("b: %+v, want 10.0.4.0/24 (10.0.1 is host2's route, 10.0.2-3 a user's network)", s)
	}
	// Networks created at once from many hosts get distinct subnets; one
	// created at once from many hosts gets one.
	many := poolHosts(t, mem, 2, 6)
	got := make([]NetworkSpec, len(many)*2)
	var wg sync.WaitGroup
	for i, c := range many {
		wg.Go(func() {
			var err error
			if got[2*i], err = c.EnsureNetwork(fmt.Sprintf("n%d", i), netip.Prefix{}, netip.Addr{}, 0); err != nil {
				t.Error(err)
			}
			if got[2*i+1], err = c.EnsureNetwork("shared", netip.Prefix{}, netip.Addr{}, 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	seen := map[netip.Prefix]string{}
	for i := range many {
		s := got[2*i].Subnet
		if o, dup := seen[s]; dup {
			t.Errorf("n%d and %s both got %s", i, o, s)
		}
		seen[s] = fmt.Sprintf("n%d", i)
		if got[2*i+1] != got[1] {
			t.Errorf("hosts disagree on shared: %+v vs %+v", got[2*i+1], got[1])
		}
	}
	if _, dup := seen[got[1].Subnet]; dup {
		t.Errorf("shared has another network's subnet %s", got[1].Subnet)
	}
	claims, _, _ := mem.kv.list(context.Background(), Prefix+"subnets/")
	if want := 2 + len(many) + 1; len(claims) != want {
		t.Errorf("%d subnet claims, want %d (a, b, n0-n5, shared): losers of a race give theirs back", len(claims), want)
	}
	// The network's removal gives the subnet back (no host joined it).
	if deleted, err := h[0].LeaveNetwork("a"); err != nil || !deleted {
		t.Fatalf("leave a: %v %v", deleted, err)
	}
	if s := ensure(h[0], "c", ""); s.Subnet.String() != "10.0.0.0/24" {
		t.Errorf("c: %+v, want a's 10.0.0.0/24 back", s)
	}
}

func TestNoDefaultPoolAsksForASubnet(t *testing.T) {
	t.Parallel()
	h := hosts(t, NewMemory(), 1)
	if _, err := h[0].EnsureNetwork("a", netip.Prefix{}, netip.Addr{}, 0); !IsConflict(err) {
		t.Fatalf("no pool, no subnet: %v, want a conflict that asks for --subnet", err)
	}
}

// A host that creates a network another host is creating takes the other's
// pick, not a subnet of its own.
func TestDefaultSubnetOfARaceIsShared(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := poolHosts(t, mem, 0, 2)
	ctx := context.Background()
	picked, err := h[0].pickSubnet(ctx, "x") // host1's pick, its config not yet made
	if err != nil {
		t.Fatal(err)
	}
	spec, err := h[1].EnsureNetwork("x", netip.Prefix{}, netip.Addr{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Subnet != picked {
		t.Fatalf("host2 made x with %s; host1 had picked %s", spec.Subnet, picked)
	}
	if spec, err := h[0].EnsureNetwork("x", netip.Prefix{}, netip.Addr{}, 0); err != nil || spec.Subnet != picked {
		t.Fatalf("host1's create after host2's: %+v %v", spec, err)
	}
}

// The default IPv6 pool is chosen once, by the first host that needs it:
// a host whose flag names another gets the cluster's; /64s are handed out
// in order, skipping a network's explicit IPv6 subnet, never one twice,
// and a network racing from two hosts gets one; its pick goes with it.
func TestDefaultIPv6Subnets(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := poolHosts(t, mem, 0, 2)
	h[0].cfg.SubnetPool6 = netip.MustParsePrefix("fd00:aa::/48")
	h[1].cfg.SubnetPool6 = netip.MustParsePrefix("fd00:bb::/48")
	for i, name := range []string{"a", "b", "c"} {
		if _, err := h[0].EnsureNetwork(name, netip.MustParsePrefix(fmt.Sprintf("10.9.%d.0/24", i)), netip.Addr{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h[1].SettleSubnet6("a", netip.MustParsePrefix("fd00:aa::/64"), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if p, err := h[0].DefaultPool6(); err != nil || p.Base.String() != "fd00:aa::/48" {
		t.Fatalf("host1 chooses the pool: %+v, %v", p, err)
	}
	var wg sync.WaitGroup
	got := make([]NetworkSpec, 2)
	for i := range h {
		wg.Go(func() {
			var err error
			if got[i], err = h[i].SettleSubnet6("b", netip.Prefix{}, netip.Addr{}); err != nil {
				t.Errorf("host%d: %v", i+1, err)
			}
		})
	}
	wg.Wait()
	if got[0].Subnet6 != got[1].Subnet6 || got[0].Subnet6.String() != "fd00:aa:0:1::/64" || got[0].Gateway6.String() != "fd00:aa:0:1::1" {
		t.Fatalf("b from two hosts at once: %+v, %+v; want fd00:aa:0:1::/64 (the cluster's pool is host1's, whose first /64 is a's)", got[0], got[1])
	}
	if p, err := h[1].DefaultPool6(); err != nil || p.Base.String() != "fd00:aa::/48" || p.Size != 64 {
		t.Errorf("the cluster's pool from host2: %+v, %v", p, err)
	}
	c, err := h[1].SettleSubnet6("c", netip.Prefix{}, netip.Addr{})
	if err != nil || c.Subnet6.String() != "fd00:aa:0:2::/64" {
		t.Errorf("c: %+v, %v", c, err)
	}
	// b goes: its /64 is free for the next network.
	for _, x := range h {
		if _, err := x.LeaveNetwork("b"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h[0].EnsureNetwork("d", netip.MustParsePrefix("10.9.9.0/24"), netip.Addr{}, 0); err != nil {
		t.Fatal(err)
	}
	if d, err := h[0].SettleSubnet6("d", netip.Prefix{}, netip.Addr{}); err != nil || d.Subnet6.String() != "fd00:aa:0:1::/64" {
		t.Errorf("d after b went: %+v, %v", d, err)
	}
	if u := RandomULA(); u.Bits() != 48 || u.Addr().As16()[0] != 0xfd || u == RandomULA() {
		t.Errorf("RandomULA: %s", u)
	}
}
