package ipam

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	api "github.com/docker/go-plugins-helpers/ipam"

	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/store"
)

func newTestAllocator(t *testing.T, s store.Store, routes ...string) *Allocator {
	t.Helper()
	cfg := Config{Store: s}
	if routes != nil {
		cfg.HostRoutes = func() ([]netip.Prefix, error) {
			var out []netip.Prefix
			for _, r := range routes {
				out = append(out, netip.MustParsePrefix(r))
			}
			return out, nil
		}
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustPool(t *testing.T, a *Allocator, req api.RequestPoolRequest) *api.RequestPoolResponse {
	t.Helper()
	res, err := a.RequestPool(&req)
	if err != nil {
		t.Fatalf("RequestPool(%+v): %v", req, err)
	}
	return res
}

// createNetworkPool does what dockerd does for a network: a pool, then
// its gateway.
func createNetworkPool(t *testing.T, a *Allocator, req api.RequestPoolRequest) *api.RequestPoolResponse {
	t.Helper()
	res := mustPool(t, a, req)
	mustAddr(t, a, res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
	return res
}

func mustAddr(t *testing.T, a *Allocator, poolID, addr string, opts map[string]string) string {
	t.Helper()
	res, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: poolID, Address: addr, Options: opts})
	if err != nil {
		t.Fatalf("RequestAddress(%s, %q): %v", poolID, addr, err)
	}
	return res.Address
}

func TestRequestPoolExplicitAndDefault(t *testing.T) {
	t.Parallel()
	a := newTestAllocator(t, store.NewMemory(), "0.0.0.0/0", "172.17.0.0/16", "192.168.1.0/24")
	res := mustPool(t, a, api.RequestPoolRequest{Pool: "10.20.0.7/16"})
	if res.Pool != "10.20.0.0/16" || res.PoolID != "LocalDefault/10.20.0.0/16" {
		t.Errorf("explicit pool = %+v", res)
	}
	// Defaults skip routed subnets (docker0's 172.17/16) but not the default route.
	var got []string
	for range 3 {
		got = append(got, createNetworkPool(t, a, api.RequestPoolRequest{}).Pool)
	}
	want := []string{"172.18.0.0/16", "172.19.0.0/16", "172.20.0.0/16"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("default pools = %v, want %v", got, want)
	}
}

func TestRequestPoolDefaultsSkipRoutedAndExhaust(t *testing.T) {
	t.Parallel()
	a, err := New(Config{
		Store:      store.NewMemory(),
		LocalPools: []PoolSet{{netip.MustParsePrefix("192.168.0.0/22"), 24}},
		HostRoutes: func() ([]netip.Prefix, error) {
			return []netip.Prefix{netip.MustParsePrefix("192.168.1.128/25")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		got = append(got, createNetworkPool(t, a, api.RequestPoolRequest{}).Pool)
	}
	if want := "[192.168.0.0/24 192.168.2.0/24 192.168.3.0/24]"; fmt.Sprint(got) != want {
		t.Errorf("got %v, want %v", got, want)
	}
	_, err = a.RequestPool(&api.RequestPoolRequest{})
	if !errdefs.IsConflict(err) {
		t.Errorf("exhausted defaults: err = %v, want conflict", err)
	}
}

func TestRequestPoolErrors(t *testing.T) {
	t.Parallel()
	a := newTestAllocator(t, store.NewMemory())
	createNetworkPool(t, a, api.RequestPoolRequest{Pool: "10.1.0.0/16"})
	tests := []struct {
		name     string
		req      api.RequestPoolRequest
		conflict bool
	}{
		{"bad cidr", api.RequestPoolRequest{Pool: "10.1.0.0/33"}, false},
		{"garbage", api.RequestPoolRequest{Pool: "not-a-subnet"}, false},
		{"v6 flag with v4 subnet", api.RequestPoolRequest{Pool: "10.9.0.0/16", V6: true}, false},
		{"v4 flag with v6 subnet", api.RequestPoolRequest{Pool: "fd00::/64"}, false},
		{"too small", api.RequestPoolRequest{Pool: "10.9.0.0/32"}, false},
		{"range outside", api.RequestPoolRequest{Pool: "10.9.0.0/24", SubPool: "10.8.0.0/25"}, false},
		{"range wider than subnet", api.RequestPoolRequest{Pool: "10.9.0.0/24", SubPool: "10.9.0.0/23"}, false},
		{"range without subnet", api.RequestPoolRequest{SubPool: "10.9.0.0/25"}, false},
		{"v6 without subnet", api.RequestPoolRequest{V6: true}, false},
		{"unknown space", api.RequestPoolRequest{AddressSpace: "nope", Pool: "10.9.0.0/24"}, false},
		{"same subnet", api.RequestPoolRequest{Pool: "10.1.0.0/16"}, true},
		{"overlap inside", api.RequestPoolRequest{Pool: "10.1.2.0/24"}, true},
		{"overlap around", api.RequestPoolRequest{Pool: "10.0.0.0/8"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.RequestPool(&tt.req)
			if tt.conflict && !errdefs.IsConflict(err) || !tt.conflict && !errdefs.IsInvalid(err) {
				t.Errorf("err = %v (status %d), conflict wanted: %v", err, errdefs.HTTPStatus(err), tt.conflict)
			}
		})
	}
	if n := len(a.Pools()); n != 1 {
		t.Errorf("failed requests left pools behind: %d pools", n)
	}
	// The same subnet in the other address space is fine.
	mustPool(t, a, api.RequestPoolRequest{AddressSpace: GlobalSpace, Pool: "10.1.0.0/16"})
}

func TestRequestAddress(t *testing.T) {
	t.Parallel()
	a := newTestAllocator(t, store.NewMemory())
	id := mustPool(t, a, api.RequestPoolRequest{Pool: "10.5.0.0/24"}).PoolID
	gw := mustAddr(t, a, id, "", map[string]string{OptRequestAddressType: GatewayAddressType})
	if gw != "10.5.0.1/24" {
		t.Errorf("gateway = %s, want 10.5.0.1/24", gw)
	}
	if got := mustAddr(t, a, id, "", nil); got != "10.5.0.2/24" {
		t.Errorf("first address = %s", got)
	}
	if got := mustAddr(t, a, id, "10.5.0.200", nil); got != "10.5.0.200/24" {
		t.Errorf("static address = %s", got)
	}
	tests := []struct {
		addr string
		kind func(error) bool
	}{
		{"10.5.0.200", errdefs.IsConflict},
		{"10.5.0.0", errdefs.IsInvalid},
		{"10.5.0.255", errdefs.IsInvalid},
		{"10.6.0.1", errdefs.IsInvalid},
		{"bogus", errdefs.IsInvalid},
	}
	for _, tt := range tests {
		_, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: id, Address: tt.addr})
		if !tt.kind(err) {
			t.Errorf("RequestAddress(%s): err = %v", tt.addr, err)
		}
	}
	if _, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: "LocalDefault/10.99.0.0/24"}); !errdefs.IsNotFound(err) {
		t.Errorf("unknown pool: err = %v", err)
	}
	if _, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: "garbage"}); !errdefs.IsInvalid(err) {
		t.Errorf("malformed pool ID: err = %v", err)
	}
}

func TestExhaustionNeverHandsOutNetworkOrBroadcast(t *testing.T) {
	t.Parallel()
	a := newTestAllocator(t, store.NewMemory())
	id := mustPool(t, a, api.RequestPoolRequest{Pool: "10.7.0.0/29"}).PoolID
	seen := map[string]bool{}
	for range 6 {
		seen[mustAddr(t, a, id, "", nil)] = true
	}
	for _, bad := range []string{"10.7.0.0/29", "10.7.0.7/29"} {
		if seen[bad] {
			t.Errorf("handed out %s", bad)
		}
	}
	if len(seen) != 6 {
		t.Errorf("got %d distinct addresses, want 6", len(seen))
	}
	if _, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: id}); !errdefs.IsConflict(err) {
		t.Errorf("full pool: err = %v, want conflict", err)
	}
	// A release makes exactly that address available again.
	if err := a.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: "10.7.0.4"}); err != nil {
		t.Fatal(err)
	}
	if got := mustAddr(t, a, id, "", nil); got != "10.7.0.4/29" {
		t.Errorf("after release got %s", got)
	}
}

func TestSubPoolRange(t *testing.T) {
	t.Parallel()
	a := newTestAllocator(t, store.NewMemory())
	id := mustPool(t, a, api.RequestPoolRequest{Pool: "10.8.0.0/16", SubPool: "10.8.5.0/30"}).PoolID
	if id != "LocalDefault/10.8.0.0/16/10.8.5.0/30" {
		t.Errorf("pool ID = %s", id)
	}
	// Explicit addresses may lie outside the range (--gateway, --ip), as in Docker.
	mustAddr(t, a, id, "10.8.0.1", map[string]string{OptRequestAddressType: GatewayAddressType})
	var got []string
	for range 4 {
		got = append(got, mustAddr(t, a, id, "", nil))
	}
	if want := "[10.8.5.0/16 10.8.5.1/16 10.8.5.2/16 10.8.5.3/16]"; fmt.Sprint(got) != want {
		t.Errorf("range allocation = %v, want %v", got, want)
	}
	if _, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: id}); !errdefs.IsConflict(err) {
		t.Errorf("exhausted range: err = %v", err)
	}
}

func TestIPv6Pool(t *testing.T) {
	t.Parallel()
	a := newTestAllocator(t, store.NewMemory())
	id := mustPool(t, a, api.RequestPoolRequest{Pool: "fd00:1::/64", V6: true}).PoolID
	if got := mustAddr(t, a, id, "", nil); got != "fd00:1::1/64" {
		t.Errorf("first v6 = %s", got)
	}
	if got := mustAddr(t, a, id, "fd00:1::ffff:ffff:ffff:fffe", nil); got != "fd00:1::ffff:ffff:ffff:fffe/64" {
		t.Errorf("high v6 = %s", got)
	}
	if _, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: id, Address: "fd00:1::"}); !errdefs.IsInvalid(err) {
		t.Errorf("subnet-router anycast: err = %v", err)
	}
}

func TestReleaseIsIdempotent(t *testing.T) {
	t.Parallel()
	a := newTestAllocator(t, store.NewMemory())
	id := mustPool(t, a, api.RequestPoolRequest{Pool: "10.3.0.0/24"}).PoolID
	addr := mustAddr(t, a, id, "", nil)
	for range 2 {
		if err := a.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: addr}); err != nil {
			t.Errorf("ReleaseAddress: %v", err)
		}
	}
	if err := a.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: "10.4.0.1"}); !errdefs.IsInvalid(err) {
		t.Errorf("release outside pool: err = %v", err)
	}
	for range 2 {
		if err := a.ReleasePool(&api.ReleasePoolRequest{PoolID: id}); err != nil {
			t.Errorf("ReleasePool: %v", err)
		}
	}
	if err := a.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: addr}); err != nil {
		t.Errorf("release in a released pool: %v", err)
	}
	// The subnet is free again.
	mustPool(t, a, api.RequestPoolRequest{Pool: "10.3.0.0/24"})
}

func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAllocator(t, s)
	id := mustPool(t, a, api.RequestPoolRequest{Pool: "10.0.0.0/8"}).PoolID
	before := map[string]bool{}
	for range 5000 { // spans two chunks
		before[mustAddr(t, a, id, "", nil)] = true
	}
	mustAddr(t, a, id, "10.200.0.9", nil)
	if err := a.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: "10.0.0.3"}); err != nil {
		t.Fatal(err)
	}
	s.Close() // what a kill -9 leaves: only committed transactions

	s2, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	b := newTestAllocator(t, s2)
	if got := mustAddr(t, b, id, "", nil); got != "10.0.0.3/8" {
		t.Errorf("first address after restart = %s, want the released 10.0.0.3/8", got)
	}
	next := mustAddr(t, b, id, "", nil)
	if before[next] {
		t.Errorf("address %s handed out twice across a restart", next)
	}
	if _, err := b.RequestAddress(&api.RequestAddressRequest{PoolID: id, Address: "10.200.0.9"}); !errdefs.IsConflict(err) {
		t.Errorf("static address lost across restart: err = %v", err)
	}
	if _, err := b.RequestPool(&api.RequestPoolRequest{Pool: "10.1.0.0/16"}); !errdefs.IsConflict(err) {
		t.Errorf("pool lost across restart: err = %v", err)
	}
}

func TestBitmapNextFreeBounds(t *testing.T) {
	t.Parallel()
	b := newBitmap(lastOffset(netip.MustParsePrefix("10.0.0.0/8")))
	for off := uint64(0); off < 3*chunkBits; off++ {
		b.set(off)
	}
	tests := []struct{ lo, hi, want uint64 }{
		{0, 1 << 24, 3 * chunkBits},
		{5, 3*chunkBits + 10, 3 * chunkBits},
		{3*chunkBits + 7, 1 << 24, 3*chunkBits + 7},
	}
	for _, tt := range tests {
		got, ok := b.nextFree(tt.lo, tt.hi)
		if !ok || got != tt.want {
			t.Errorf("nextFree(%d,%d) = %d,%v want %d", tt.lo, tt.hi, got, ok, tt.want)
		}
	}
	if _, ok := b.nextFree(10, 3*chunkBits-1); ok {
		t.Error("nextFree found a free offset in a full range")
	}
	b.clear(4097)
	if got, _ := b.nextFree(0, 1<<24); got != 4097 {
		t.Errorf("after clear: %d", got)
	}
	// The top of a /64 does not overflow.
	top := newBitmap(^uint64(0))
	top.set(^uint64(0) - 1)
	if got, ok := top.nextFree(^uint64(0)-1, ^uint64(0)); !ok || got != ^uint64(0) {
		t.Errorf("top of /64: %d %v", got, ok)
	}
}

func TestRetriedRequestWithMACGetsTheSameAddress(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAllocator(t, s)
	if caps, _ := a.GetCapabilities(); !caps.RequiresMACAddress {
		t.Fatal("RequiresMACAddress is off: dockerd would not send MACs")
	}
	id := mustPool(t, a, api.RequestPoolRequest{Pool: "10.9.0.0/24"}).PoolID
	macA := map[string]string{OptMACAddress: "02:aa:00:00:00:01"}
	macB := map[string]string{OptMACAddress: "02:aa:00:00:00:02"}
	first := mustAddr(t, a, id, "", macA)
	if again := mustAddr(t, a, id, "", macA); again != first {
		t.Errorf("retry got %s, first answer was %s", again, first)
	}
	other := mustAddr(t, a, id, "", macB)
	if other == first {
		t.Errorf("another endpoint got the same address %s", other)
	}
	// A static address retried with the same MAC is not "in use".
	static := map[string]string{OptMACAddress: "02:aa:00:00:00:03"}
	mustAddr(t, a, id, "10.9.0.50", static)
	mustAddr(t, a, id, "10.9.0.50", static)
	s.Close()

	// The mapping survives a restart.
	s2, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	b := newTestAllocator(t, s2)
	if again := mustAddr(t, b, id, "", macA); again != first {
		t.Errorf("retry after restart got %s, want %s", again, first)
	}
	// Released, the address and its MAC record go; the MAC then gets the
	// lowest free address like anyone.
	if err := b.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: first}); err != nil {
		t.Fatal(err)
	}
	if n := len(b.pools[poolKey(LocalSpace, netip.MustParsePrefix("10.9.0.0/24"))].macs); n != 2 {
		t.Errorf("%d MAC records after a release, want 2", n)
	}
	if got := mustAddr(t, b, id, "", macB); got != other {
		t.Errorf("B's retry = %s, want %s", got, other)
	}
}

func TestRetriedPoolAndGatewayRequests(t *testing.T) {
	t.Parallel()
	a := newTestAllocator(t, store.NewMemory())
	first := mustPool(t, a, api.RequestPoolRequest{Pool: "10.30.0.0/24"})
	// The answer was lost and dockerd asks again: the same pool.
	if again := mustPool(t, a, api.RequestPoolRequest{Pool: "10.30.0.0/24"}); again.PoolID != first.PoolID {
		t.Errorf("retried RequestPool = %+v, want %+v", again, first)
	}
	gw := map[string]string{OptRequestAddressType: GatewayAddressType}
	g1 := mustAddr(t, a, first.PoolID, "", gw)
	if g2 := mustAddr(t, a, first.PoolID, "", gw); g2 != g1 {
		t.Errorf("retried gateway request = %s, want %s", g2, g1)
	}
	// Once an address is taken, the same subnet again is another network.
	if _, err := a.RequestPool(&api.RequestPoolRequest{Pool: "10.30.0.0/24"}); !errdefs.IsConflict(err) {
		t.Errorf("second network on a used subnet: %v", err)
	}
	// Default pools: an unused one is reused by the retry; a used one is not.
	d1 := mustPool(t, a, api.RequestPoolRequest{})
	if d2 := mustPool(t, a, api.RequestPoolRequest{}); d2.PoolID != d1.PoolID {
		t.Errorf("retried default RequestPool = %s, want %s", d2.PoolID, d1.PoolID)
	}
	mustAddr(t, a, d1.PoolID, "", gw)
	if d3 := mustPool(t, a, api.RequestPoolRequest{}); d3.PoolID == d1.PoolID {
		t.Errorf("a used default pool was handed out again: %s", d3.PoolID)
	}
}
