package ipam

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/ipam"

	"github.com/mynet/mynet/internal/cluster"
)

// After etcd lost its data (deleted under running hosts): a host claims
// its addresses and their blocks again; for holdOff it hands out addresses
// of its own blocks only, so a host with none waits rather than take an
// address whose holder has not claimed it again; addresses the driver
// says are in use elsewhere are never handed out.
func TestAfterADataLossOwnBlocksOnlyAndInUseRespected(t *testing.T) {
	t.Parallel()
	h, mem := clusterHosts(t, 2)
	pools := clusterNetworkOn(t, h, "10.40.0.0/24")
	held := mustAddr(t, h[0], pools[0], "", map[string]string{OptMACAddress: "02:00:00:00:00:01"})
	mem.DeletePrefix()
	for _, a := range h {
		if _, _, err := a.cluster.(*cluster.Client).Register(t.Context(), a.cluster.(*cluster.Client).Lease()); err != nil {
			t.Fatal(err)
		}
	}
	// host2 first: it holds nothing, so it has no block of its own.
	h[1].ClusterRegistered(nil, true)
	_, err := h[1].RequestAddress(&api.RequestAddressRequest{PoolID: pools[1], Options: map[string]string{OptMACAddress: "02:00:00:00:00:02"}})
	if err == nil || !strings.Contains(err.Error(), "etcd lost its data") {
		t.Fatalf("host2 during the hold-off: %v, want a wait", err)
	}
	// host1 claims its address and its block again.
	h[0].ClusterRegistered(nil, true)
	view, err := h[0].cluster.AllocationOf("blue")
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParsePrefix(held).Addr()
	if view.Claims[ip].Node != "host1" {
		t.Errorf("host1's %s not claimed again: %v", ip, view.Claims)
	}
	affine := false
	for first, host := range view.Blocks {
		if host == "host1" && first.Less(ip.Next()) {
			affine = true
		}
	}
	if !affine {
		t.Errorf("host1's block not claimed again: %v", view.Blocks)
	}
	// host1 hands out from its own block during the hold-off, skipping
	// what the driver knows in use elsewhere (a vanished peer's address).
	next := netip.MustParsePrefix(held).Addr().Next()
	h[0].SetInUse(fixedInUse{"blue": {next}})
	h[0].ClusterRegistered(nil, true) // a pool reads the in-use list when it lists the claims
	got := mustAddr(t, h[0], pools[0], "", map[string]string{OptMACAddress: "02:00:00:00:00:03"})
	if got == held || netip.MustParsePrefix(got).Addr() == next {
		t.Errorf("host1 handed out %s (held %s, in use elsewhere %s)", got, held, next)
	}
}

// fixedInUse is an InUse of fixed addresses.
type fixedInUse map[string][]netip.Addr

func (f fixedInUse) Addrs(cluster string) []netip.Addr { return f[cluster] }

func (f fixedInUse) Has(cluster string, addr netip.Addr) bool {
	return slices.Contains(f[cluster], addr)
}

// Before a host notices that etcd lost its data (a new, empty etcd: no
// claim anywhere), an address the driver says another host's container
// has is still never handed out: it is asked before every claim, not
// only when the pool reads the cluster's claims.
func TestInUseAskedBeforeEveryClaim(t *testing.T) {
	t.Parallel()
	h, _ := clusterHosts(t, 1)
	pools := clusterNetworkOn(t, h, "10.41.0.0/24")
	first := mustAddr(t, h[0], pools[0], "", map[string]string{OptMACAddress: "02:00:00:00:00:01"})
	next := netip.MustParsePrefix(first).Addr().Next()
	h[0].SetInUse(fixedInUse{"blue": {next}}) // no list of the claims since
	got := mustAddr(t, h[0], pools[0], "", map[string]string{OptMACAddress: "02:00:00:00:00:02"})
	if a := netip.MustParsePrefix(got).Addr(); a == next || got == first {
		t.Errorf("handed out %s (first %s, in use elsewhere %s)", got, first, next)
	}
}

// etcd restored from a backup older than an address's release and its
// new allocation here: the restored claim names the address's earlier
// holder. Claimed again, it is made the present holder's, so that its
// release gives the address back (else the claim outlived it, held by no
// endpoint).
func TestRestoredClaimOfAnEarlierHolderIsMadeThePresentOnes(t *testing.T) {
	t.Parallel()
	h, mem := clusterHosts(t, 1)
	pools := clusterNetworkOn(t, h, "10.42.0.0/24")
	first := mustAddr(t, h[0], pools[0], "", map[string]string{OptMACAddress: "02:00:00:00:00:01"})
	backup := mem.Backup()
	addr := strings.Split(first, "/")[0]
	if err := h[0].ReleaseAddress(&api.ReleaseAddressRequest{PoolID: pools[0], Address: addr}); err != nil {
		t.Fatal(err)
	}
	again := mustAddr(t, h[0], pools[0], "", map[string]string{OptMACAddress: "02:00:00:00:00:02"})
	if again != first {
		t.Fatalf("the address was not handed out again (%s, then %s): the test needs it", first, again)
	}
	mem.Restore(backup)
	c := h[0].cluster.(*cluster.Client)
	if _, _, err := c.Register(t.Context(), c.Lease()); err != nil {
		t.Fatal(err)
	}
	h[0].ClusterRegistered(nil, true)
	if err := h[0].ReleaseAddress(&api.ReleaseAddressRequest{PoolID: pools[0], Address: addr}); err != nil {
		t.Fatal(err)
	}
	claims, err := c.Claims("blue")
	if err != nil {
		t.Fatal(err)
	}
	if cl, ok := claims[netip.MustParseAddr(addr)]; ok {
		t.Errorf("the claim of %s outlived its release: %+v", addr, cl)
	}
}
