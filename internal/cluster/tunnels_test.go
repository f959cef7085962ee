package cluster

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func tunnelHosts(t *testing.T, mem *Memory, n int, pool netip.Prefix) []*Client {
	t.Helper()
	var out []*Client
	for i := range n {
		out = append(out, NewWithStore(mem, Config{Node: fmt.Sprintf("host%d", i+1),
			Advertise:  netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 11)}),
			SubnetPool: netip.MustParsePrefix("10.0.0.0/8"), SubnetSize: 24, TunnelPool: pool, CallTimeout: time.Second}))
	}
	register(t, out...)
	return out
}

func TestTunnelAddressesAreTheHostsOwn(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := tunnelHosts(t, mem, 3, netip.Prefix{})
	// A cluster network's subnet first: the pool must not overlap it.
	if _, err := h[0].EnsureNetwork("blue", netip.MustParsePrefix("10.0.0.0/24"), netip.Addr{}, 0); err != nil {
		t.Fatal(err)
	}
	pool, err := h[1].TunnelPool()
	if err != nil || pool.Bits() != tunnelPoolSize || pool.Overlaps(netip.MustParsePrefix("10.0.0.0/24")) {
		t.Fatalf("tunnel pool %s, %v: want a /%d of the default pool that no network uses", pool, err, tunnelPoolSize)
	}
	seen := map[netip.Addr]string{}
	for _, c := range h {
		got, err := c.ClaimTunnel(netip.Addr{})
		if err != nil || got.Bits() != pool.Bits() || !pool.Contains(got.Addr()) || got.Addr() == pool.Addr() {
			t.Fatalf("%s: %s, %v", c.Node(), got, err)
		}
		if other, ok := seen[got.Addr()]; ok {
			t.Fatalf("%s and %s both got %s", other, c.Node(), got)
		}
		seen[got.Addr()] = c.Node()
		// Claimed again (each start, after a loss of etcd's data): the same.
		if again, err := c.ClaimTunnel(got.Addr()); err != nil || again != got {
			t.Errorf("%s again: %s, %v; want %s", c.Node(), again, err, got)
		}
		// Its save lost: the address it holds, not another.
		if again, err := c.ClaimTunnel(netip.Addr{}); err != nil || again != got {
			t.Errorf("%s without its saved address: %s, %v; want %s", c.Node(), again, err, got)
		}
	}
	// Another host's address is not given to a host that names it.
	first, _ := h[0].ClaimTunnel(netip.Addr{})
	if got, err := h[1].ClaimTunnel(first.Addr()); err != nil || got.Addr() == first.Addr() {
		t.Errorf("host2 asking for host1's %s: %s, %v", first, got, err)
	}
	claims, err := h[2].TunnelClaims()
	if err != nil || claims[first.Addr()] != "host1" {
		t.Errorf("claims %v, %v", claims, err)
	}
	// A later host with another --cluster-tunnel-pool is refused with the
	// cluster's.
	other := NewWithStore(mem, Config{Node: "host9", Advertise: netip.MustParseAddr("198.18.0.99"),
		TunnelPool: netip.MustParsePrefix("172.31.0.0/24"), CallTimeout: time.Second})
	if _, err := other.TunnelPool(); !IsConflict(err) {
		t.Errorf("another tunnel pool: %v, want a conflict naming %s", err, pool)
	}
	// A forgotten host's tunnel address goes with it.
	h[0].Close()
	if _, err := h[2].Forget("host1", true); err != nil {
		t.Fatal(err)
	}
	if claims, _ := h[2].TunnelClaims(); claims[first.Addr()] != "" {
		t.Errorf("host1's tunnel address still claimed after forget: %v", claims)
	}
}

func TestTunnelPoolGiven(t *testing.T) {
	t.Parallel()
	want := netip.MustParsePrefix("172.31.0.0/24")
	h := tunnelHosts(t, NewMemory(), 1, want)
	if got, err := h[0].TunnelPool(); err != nil || got != want {
		t.Errorf("pool %s, %v; want the flag's %s", got, err, want)
	}
}

// etcd lost a host's claim (its record is back: the host registered
// again): no other host takes that address before the host claims it
// again.
func TestTunnelAddressOfALiveHostIsNotTaken(t *testing.T) {
	t.Parallel()
	h := tunnelHosts(t, NewMemory(), 3, netip.MustParsePrefix("172.31.0.0/30")) // two addresses
	first, err := h[0].ClaimTunnel(netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h[0].SetWireGuard(WireGuardInfo{Key: "k1", Port: 4800, Tunnel: first.Addr()}); err != nil {
		t.Fatal(err)
	}
	if err := h[0].ReleaseTunnel(first.Addr()); err != nil {
		t.Fatal(err)
	}
	second, err := h[1].ClaimTunnel(netip.Addr{})
	if err != nil || second.Addr() == first.Addr() {
		t.Fatalf("host2: %s, %v: host1's address while host1 lives", second, err)
	}
	if got, err := h[2].ClaimTunnel(netip.Addr{}); !IsConflict(err) {
		t.Errorf("host3 with the pool's two addresses held or in use: %s, %v; want none left", got, err)
	}
	if again, err := h[0].ClaimTunnel(first.Addr()); err != nil || again != first {
		t.Errorf("host1 claiming its own again: %s, %v", again, err)
	}
}
