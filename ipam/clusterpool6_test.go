package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"

	api "github.com/docker/go-plugins-helpers/ipam"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/errdefs"
)

// dualStackOn makes a dual-stack cluster network on each host as dockerd
// does (the IPv4 pool and its gateway, then the IPv6 pool and its
// gateway): the first host gives both subnets, the others leave them to
// the cluster. It returns the IPv6 pool IDs.
func dualStackOn(t *testing.T, hosts []*Allocator, subnet4, subnet6 string) []string {
	t.Helper()
	clusterNetworkOn(t, hosts, subnet4)
	var pools []string
	for i, a := range hosts {
		want := subnet6
		if i > 0 {
			want = ""
		}
		res, err := a.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: want, V6: true, Options: map[string]string{OptCluster: "blue"}})
		if err != nil {
			t.Fatalf("host%d IPv6 RequestPool: %v", i+1, err)
		}
		if res.Pool != subnet6 {
			t.Errorf("host%d IPv6 pool %s, want the cluster's %s", i+1, res.Pool, subnet6)
		}
		pools = append(pools, res.PoolID)
		gw := mustAddr(t, a, res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
		if want := netip.MustParsePrefix(subnet6).Addr().Next().String() + "/64"; gw != want {
			t.Errorf("host%d IPv6 gateway %s, want %s on every host", i+1, gw, want)
		}
	}
	return pools
}

// A dual-stack cluster network: every host has the first host's IPv6
// subnet and gateway, hosts allocating at once never hand out an IPv6
// address twice, and a /64's blocks are never enumerated (an allocation
// that walked them would not end).
func TestClusterDualStackNoAddressTwice(t *testing.T) {
	t.Parallel()
	h, _ := clusterHosts(t, 3)
	pools := dualStackOn(t, h, "10.40.0.0/24", "fd00:40::/64")
	for i, a := range h {
		cn, ok := a.ClusterOf(LocalSpace, netip.MustParsePrefix("fd00:40::/64"))
		if !ok || cn.Name != "blue" || cn.VNI == 0 || cn.Gateway != netip.MustParseAddr("fd00:40::1") {
			t.Errorf("host%d ClusterOf(IPv6 subnet) = %+v, %v", i+1, cn, ok)
		}
		v4, _ := a.ClusterOf(LocalSpace, netip.MustParsePrefix("10.40.0.0/24"))
		if v4.VNI != cn.VNI {
			t.Errorf("host%d: IPv6 pool's VNI %d, IPv4 pool's %d", i+1, cn.VNI, v4.VNI)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i, a := range h {
		wg.Go(func() {
			for k := range 40 {
				res, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: pools[i], Options: map[string]string{OptMACAddress: fmt.Sprintf("02:00:00:00:%02x:%02x", i, k)}})
				if err != nil {
					if errdefs.IsConflict(err) { // lost every try to the others: Docker asks again
						continue
					}
					t.Errorf("host%d: %v", i+1, err)
					return
				}
				mu.Lock()
				seen[res.Address]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) < 100 {
		t.Errorf("only %d addresses handed out of 120 asked", len(seen))
	}
	for addr, n := range seen {
		p := netip.MustParsePrefix(addr)
		if n > 1 || !p.Addr().Is6() || p.Bits() != 64 || !netip.MustParsePrefix("fd00:40::/64").Contains(p.Addr()) {
			t.Errorf("%s handed out %d times", addr, n)
		}
	}
	claims, err := h[0].cluster.(*cluster.Client).Claims("blue")
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != len(seen) {
		t.Errorf("%d claims in the cluster for %d addresses", len(claims), len(seen))
	}
}

// What is refused, with what to change: another IPv6 subnet than the
// cluster's, and an IPv6-only network where the cluster's has IPv4.
func TestClusterIPv6PoolErrors(t *testing.T) {
	t.Parallel()
	h, _ := clusterHosts(t, 2)
	dualStackOn(t, h[:1], "10.40.0.0/24", "fd00:40::/64")
	req := func(subnet, name string) error {
		_, err := h[1].RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: subnet, V6: true, Options: map[string]string{OptCluster: name}})
		return err
	}
	res0, err := h[1].RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Options: map[string]string{OptCluster: "blue"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := req("fd00:41::/64", "blue"); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "--subnet fd00:40::/64") {
		t.Errorf("another IPv6 subnet: %v", err)
	}
	if err := h[1].ReleasePool(&api.ReleasePoolRequest{PoolID: res0.PoolID}); err != nil {
		t.Fatal(err)
	}
	if err := req("fd00:40::/64", "blue"); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "not IPv6-only") {
		t.Errorf("an IPv6-only host (no IPv4 pool) on a dual-stack network: %v", err)
	}
	res, err := h[1].RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.43.0.0/24", Options: map[string]string{OptCluster: "green"}})
	if err != nil {
		t.Fatal(err)
	}
	mustAddr(t, h[1], res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
	_ = res
}

// --ipv6 without an IPv6 subnet: a /64 of the cluster's default IPv6 pool,
// chosen once (the first host's flag; here none, so a random ULA /48),
// the same on every host; networks made so never share one.
func TestClusterDefaultIPv6Subnet(t *testing.T) {
	t.Parallel()
	h, _ := clusterHosts(t, 2)
	subnets := map[string]string{}
	for name, subnet := range map[string]string{"blue": "10.40.0.0/24", "green": "10.41.0.0/24"} {
		for i, a := range h {
			res, err := a.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: subnet, Options: map[string]string{OptCluster: name}})
			if err != nil {
				t.Fatal(err)
			}
			mustAddr(t, a, res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
			res6, err := a.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, V6: true, Options: map[string]string{OptCluster: name}})
			if err != nil {
				t.Fatalf("host%d %s: %v", i+1, name, err)
			}
			p := netip.MustParsePrefix(res6.Pool)
			if p.Bits() != 64 || !p.Addr().Is6() || p.Addr().As16()[0] != 0xfd {
				t.Errorf("host%d %s: default IPv6 subnet %s, want a ULA /64", i+1, name, p)
			}
			if have, ok := subnets[name]; ok && have != res6.Pool {
				t.Errorf("%s: host1 has %s, host%d %s", name, have, i+1, res6.Pool)
			}
			subnets[name] = res6.Pool
			gw := mustAddr(t, a, res6.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
			if want := p.Addr().Next().String() + "/64"; gw != want {
				t.Errorf("host%d %s: IPv6 gateway %s, want %s", i+1, name, gw, want)
			}
		}
	}
	b, g := netip.MustParsePrefix(subnets["blue"]), netip.MustParsePrefix(subnets["green"])
	if b.Overlaps(g) || netip.PrefixFrom(b.Addr(), 48).Masked() != netip.PrefixFrom(g.Addr(), 48).Masked() {
		t.Errorf("blue %s and green %s: want two /64s of one /48", b, g)
	}
}

// After etcd lost its data, the hosts claim their IPv6 addresses again
// and the network's IPv6 subnet is settled again; an address held on one
// host is never handed out on another, whatever order the hosts come back
// in (a seeded random order of re-registration and requests).
func TestClusterIPv6ClaimsSurviveADataLoss(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	h, mem := clusterHosts(t, 3)
	pools := dualStackOn(t, h, "10.40.0.0/24", "fd00:40::/64")
	held := map[string]int{}
	for i, a := range h {
		for k := range 5 {
			held[mustAddr(t, a, pools[i], "", map[string]string{OptMACAddress: fmt.Sprintf("02:00:00:00:%02x:%02x", i, k)})] = i
		}
	}
	mem.DeletePrefix()
	order := r.Perm(len(h))
	for _, i := range order {
		c := h[i].cluster.(*cluster.Client)
		if _, _, err := c.Register(t.Context(), c.Lease()); err != nil {
			t.Fatal(err)
		}
		h[i].ClusterRegistered(nil, true)
	}
	for _, a := range h {
		a.RetryReclaims()
	}
	spec, ok, err := h[0].cluster.LookupNetwork("blue")
	if err != nil || !ok || spec.Subnet6 != netip.MustParsePrefix("fd00:40::/64") {
		t.Fatalf("the network's IPv6 subnet after the loss: %+v, %v, %v", spec, ok, err)
	}
	claims, err := h[0].cluster.(*cluster.Client).Claims("blue")
	if err != nil {
		t.Fatal(err)
	}
	for addr, i := range held {
		ip := netip.MustParsePrefix(addr).Addr()
		if claims[ip].Node != fmt.Sprintf("host%d", i+1) {
			t.Errorf("%s of host%d claimed by %q after the loss", ip, i+1, claims[ip].Node)
		}
	}
	// New addresses, from hosts in a random order, past the hold-off's
	// own blocks: none is one already held.
	for range 30 {
		i := r.IntN(len(h))
		res, err := h[i].RequestAddress(&api.RequestAddressRequest{PoolID: pools[i], Options: map[string]string{OptMACAddress: fmt.Sprintf("02:00:00:01:%02x:%02x", i, r.IntN(256))}})
		if err != nil {
			continue // a hold-off or a lost race: Docker asks again
		}
		if j, ok := held[res.Address]; ok && j != i {
			t.Fatalf("%s handed out on host%d, held on host%d", res.Address, i+1, j+1)
		}
		held[res.Address] = i
	}
}

// --ip-range on a cluster network: every host hands out addresses inside
// it only (a static address may be anywhere in the subnet, as Docker's),
// never one twice; an IPv6 range likewise.
func TestClusterIPRange(t *testing.T) {
	t.Parallel()
	h, _ := clusterHosts(t, 2)
	var pools, pools6 []string
	for _, a := range h {
		res, err := a.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.40.0.0/24", SubPool: "10.40.0.128/26", Options: map[string]string{OptCluster: "blue"}})
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, res.PoolID)
		mustAddr(t, a, res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
		res6, err := a.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "fd00:40::/64", SubPool: "fd00:40::100/120", V6: true, Options: map[string]string{OptCluster: "blue"}})
		if err != nil {
			t.Fatal(err)
		}
		pools6 = append(pools6, res6.PoolID)
		mustAddr(t, a, res6.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
	}
	rng, rng6 := netip.MustParsePrefix("10.40.0.128/26"), netip.MustParsePrefix("fd00:40::100/120")
	seen := map[string]bool{}
	for k := range 40 {
		i := k % 2
		mac := fmt.Sprintf("02:00:00:00:%02x:%02x", i, k)
		for _, want := range []struct {
			pool string
			rng  netip.Prefix
		}{{pools[i], rng}, {pools6[i], rng6}} {
			addr := mustAddr(t, h[i], want.pool, "", map[string]string{OptMACAddress: mac})
			if p := netip.MustParsePrefix(addr); !want.rng.Contains(p.Addr()) || seen[addr] {
				t.Fatalf("host%d handed out %s (outside %s, or twice)", i+1, addr, want.rng)
			}
			seen[addr] = true
		}
	}
	if got := mustAddr(t, h[1], pools[1], "10.40.0.7", nil); got != "10.40.0.7/24" {
		t.Errorf("a static address outside the range: %s", got)
	}
}

// An IPv6-only cluster network (--ipv6, enable_ipv4=false: Docker asks
// for no IPv4 pool): made by its IPv6 pool, the same on every host,
// addresses never twice, made again after etcd lost its data; an IPv4
// pool of it is refused with what to change; without a subnet, one of the
// default IPv6 pool.
func TestClusterIPv6OnlyNetwork(t *testing.T) {
	t.Parallel()
	h, mem := clusterHosts(t, 3)
	only6 := func(a *Allocator, name, subnet string) (string, string) {
		t.Helper()
		res, err := a.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: subnet, V6: true, Options: map[string]string{OptCluster: name}})
		if err != nil {
			t.Fatal(err)
		}
		return res.PoolID, mustAddr(t, a, res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
	}
	p1, gw1 := only6(h[0], "six", "fd00:50::/64")
	p2, gw2 := only6(h[1], "six", "")
	if gw1 != "fd00:50::1/64" || gw2 != gw1 {
		t.Errorf("gateways %s and %s, want fd00:50::1/64 on both", gw1, gw2)
	}
	cn, ok := h[1].ClusterOf(LocalSpace, netip.MustParsePrefix("fd00:50::/64"))
	if !ok || cn.Name != "six" || cn.VNI == 0 {
		t.Errorf("ClusterOf = %+v, %v", cn, ok)
	}
	seen := map[string]bool{}
	for k := range 20 {
		for i, pool := range []string{p1, p2} {
			addr := mustAddr(t, h[i], pool, "", map[string]string{OptMACAddress: fmt.Sprintf("02:00:00:00:%02x:%02x", i, k)})
			if seen[addr] {
				t.Fatalf("%s handed out twice", addr)
			}
			seen[addr] = true
		}
	}
	_, err := h[2].RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.50.0.0/24", Options: map[string]string{OptCluster: "six"}})
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "IPv6-only") {
		t.Errorf("an IPv4 pool of an IPv6-only network: %v", err)
	}
	_, gw := only6(h[2], "seven", "")
	if p := netip.MustParsePrefix(gw); p.Bits() != 64 || p.Addr().As16()[0] != 0xfd {
		t.Errorf("an IPv6-only network without subnet: gateway %s, want in a ULA /64", gw)
	}
	mem.DeletePrefix()
	for _, a := range h[:2] {
		c := a.cluster.(*cluster.Client)
		if _, _, err := c.Register(t.Context(), c.Lease()); err != nil {
			t.Fatal(err)
		}
		a.ClusterRegistered(nil, true)
	}
	spec, ok, err := h[0].cluster.LookupNetwork("six")
	if err != nil || !ok || spec.Subnet.IsValid() || spec.Subnet6.String() != "fd00:50::/64" || spec.VNI != cn.VNI {
		t.Errorf("six after etcd lost its data: %+v, %v, %v", spec, ok, err)
	}
	claims, err := h[0].cluster.(*cluster.Client).Claims("six")
	if err != nil || len(claims) != len(seen) {
		t.Errorf("%d claims after the loss for %d addresses (%v)", len(claims), len(seen), err)
	}
}
