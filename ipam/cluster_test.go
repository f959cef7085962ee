package ipam

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/ipam"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/store"
)

// clusterHosts are allocators of separate hosts sharing one cluster store.
func clusterHosts(t *testing.T, n int) ([]*Allocator, *cluster.Memory) {
	t.Helper()
	mem := cluster.NewMemory()
	var out []*Allocator
	for i := range n {
		c := cluster.NewWithStore(mem, cluster.Config{Node: fmt.Sprintf("host%d", i+1)})
		a, err := New(Config{Store: store.NewMemory(), Cluster: c})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out, mem
}

func clusterPoolReq(subnet string) *api.RequestPoolRequest {
	return &api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: subnet, Options: map[string]string{OptCluster: "blue"}}
}

func TestClusterPoolsShareAddresses(t *testing.T) {
	h, _ := clusterHosts(t, 2)
	var pools []string
	for i, a := range h {
		subnet := "10.40.0.0/16"
		if i == 1 {
			subnet = "" // a later host may leave the subnet to the cluster
		}
		res, err := a.RequestPool(clusterPoolReq(subnet))
		if err != nil || res.Pool != "10.40.0.0/16" {
			t.Fatalf("host%d RequestPool = %+v, %v", i+1, res, err)
		}
		pools = append(pools, res.PoolID)
		gw := mustAddr(t, a, res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
		if gw != "10.40.0.1/16" {
			t.Errorf("host%d gateway %s, want the cluster's 10.40.0.1/16 on every host", i+1, gw)
		}
		cn, ok := a.ClusterOf(LocalSpace, netip.MustParsePrefix("10.40.0.0/16"))
		if !ok || cn.Name != "blue" || cn.VNI == 0 || cn.Gateway != netip.MustParseAddr("10.40.0.1") {
			t.Errorf("host%d ClusterOf = %+v, %v", i+1, cn, ok)
		}
	}
	seen := map[string]bool{}
	for round := range 5 {
		for i, a := range h {
			addr := mustAddr(t, a, pools[i], "", map[string]string{OptMACAddress: fmt.Sprintf("02:00:00:00:%02x:%02x", i, round)})
			if seen[addr] {
				t.Fatalf("%s handed out twice", addr)
			}
			seen[addr] = true
		}
	}
	// A static address another host holds is refused, naming the host.
	_, err := h[1].RequestAddress(&api.RequestAddressRequest{PoolID: pools[1], Address: "10.40.0.2"})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "host1") {
		t.Errorf("static address held by host1: %v", err)
	}
	// Released on host1, it can be taken on host2.
	if err := h[0].ReleaseAddress(&api.ReleaseAddressRequest{PoolID: pools[0], Address: "10.40.0.2"}); err != nil {
		t.Fatal(err)
	}
	if got := mustAddr(t, h[1], pools[1], "10.40.0.2", nil); got != "10.40.0.2/16" {
		t.Errorf("after host1 released it, host2 got %s", got)
	}
	// Another gateway than the cluster's is refused with what to change.
	_, err = h[1].RequestAddress(&api.RequestAddressRequest{PoolID: pools[1], Address: "10.40.0.254", Options: map[string]string{OptRequestAddressType: GatewayAddressType}})
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "--gateway 10.40.0.1") {
		t.Errorf("another gateway: %v", err)
	}
}

func TestClusterPoolErrors(t *testing.T) {
	h, mem := clusterHosts(t, 2)
	// The first host makes the network (RequestPool, then the gateway, as
	// dockerd asks).
	res, err := h[0].RequestPool(clusterPoolReq("10.40.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	mustAddr(t, h[0], res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
	_, err = h[1].RequestPool(clusterPoolReq("10.41.0.0/16"))
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "--subnet 10.40.0.0/16") {
		t.Errorf("another subnet: %v", err)
	}
	noCluster, _ := New(Config{Store: store.NewMemory()})
	if _, err := noCluster.RequestPool(clusterPoolReq("10.40.0.0/16")); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "--cluster-store") {
		t.Errorf("without a cluster store: %v", err)
	}
	mem.SetDown(fmt.Errorf("connection refused"))
	_, err = h[1].RequestPool(clusterPoolReq("10.40.0.0/16"))
	if err == nil || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), "local networks are not affected") {
		t.Errorf("with the store down: %v", err)
	}
	// Local pools never wait on the cluster.
	if _, err := h[1].RequestPool(&api.RequestPoolRequest{Pool: "10.50.0.0/24"}); err != nil {
		t.Errorf("a local pool while the cluster is down: %v", err)
	}
}

// The first host's own --gateway becomes the cluster network's: later hosts
// get it, and one that asked for another is refused; of two hosts that both
// found the network absent, the first gateway request wins.
func TestClusterNetworkTakesTheFirstHostsGateway(t *testing.T) {
	h, _ := clusterHosts(t, 3)
	gatewayReq := func(a *Allocator, pool, addr string) (string, error) {
		res, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: pool, Address: addr,
			Options: map[string]string{OptRequestAddressType: GatewayAddressType}})
		if err != nil {
			return "", err
		}
		return res.Address, nil
	}
	var pools []string
	for _, a := range h[:2] { // both find it absent
		res, err := a.RequestPool(clusterPoolReq("10.40.0.0/16"))
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, res.PoolID)
	}
	if gw, err := gatewayReq(h[0], pools[0], "10.40.0.254"); err != nil || gw != "10.40.0.254/16" {
		t.Fatalf("the first host's --gateway 10.40.0.254: %s, %v", gw, err)
	}
	if _, err := gatewayReq(h[1], pools[1], "10.40.0.1"); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "--gateway 10.40.0.254") {
		t.Errorf("a racing host's other gateway: %v, want refused naming 10.40.0.254", err)
	}
	if gw, err := gatewayReq(h[1], pools[1], ""); err != nil || gw != "10.40.0.254/16" {
		t.Errorf("the racing host without --gateway: %s, %v; want the cluster's 10.40.0.254", gw, err)
	}
	res, err := h[2].RequestPool(clusterPoolReq(""))
	if err != nil {
		t.Fatal(err)
	}
	if gw, err := gatewayReq(h[2], res.PoolID, ""); err != nil || gw != "10.40.0.254/16" {
		t.Errorf("a later host: gateway %s, %v; want 10.40.0.254", gw, err)
	}
	if cn, ok := h[2].ClusterOf(LocalSpace, netip.MustParsePrefix("10.40.0.0/16")); !ok || cn.Gateway != netip.MustParseAddr("10.40.0.254") || cn.VNI == 0 {
		t.Errorf("ClusterOf on a later host = %+v, %v", cn, ok)
	}
	// The address the first host's gateway took is no container's.
	if got := mustAddr(t, h[1], pools[1], "", map[string]string{OptMACAddress: "02:00:00:00:00:09"}); got == "10.40.0.254/16" {
		t.Errorf("a container got the gateway's address %s", got)
	}
}

// Addresses another host held and released are usable here again: in a
// /26 shared by two hosts with churn, no request fails while addresses are
// free.
func TestClusterAddressesReleasedElsewhereAreUsable(t *testing.T) {
	h, _ := clusterHosts(t, 2)
	var pools []string
	for i, a := range h {
		subnet := "10.40.0.0/26"
		if i == 1 {
			subnet = ""
		}
		res, err := a.RequestPool(clusterPoolReq(subnet))
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, res.PoolID)
		mustAddr(t, a, res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
	}
	held := [2][]string{}
	mac := func(host, n int) string { return fmt.Sprintf("02:00:00:00:%02x:%02x", host, n) }
	// 61 addresses for containers (64 less network, gateway, broadcast):
	// host1 takes 40, host2 the other 21.
	for n := range 61 {
		i := 0
		if n >= 40 {
			i = 1
		}
		held[i] = append(held[i], mustAddr(t, h[i], pools[i], "", map[string]string{OptMACAddress: mac(i, n)}))
	}
	for round := range 3 {
		// host1 gives back 10; host2 must get all 10, then host2 gives
		// them back and host1 takes them again.
		for k := range 2 {
			from, to := k, 1-k
			for range 10 {
				addr := held[from][len(held[from])-1]
				held[from] = held[from][:len(held[from])-1]
				if err := h[from].ReleaseAddress(&api.ReleaseAddressRequest{PoolID: pools[from], Address: strings.Split(addr, "/")[0]}); err != nil {
					t.Fatal(err)
				}
			}
			for j := range 10 {
				res, err := h[to].RequestAddress(&api.RequestAddressRequest{PoolID: pools[to],
					Options: map[string]string{OptMACAddress: mac(to, 100+10*round+j)}})
				if err != nil {
					t.Fatalf("round %d: host%d's request %d with 10 addresses free: %v", round, to+1, j+1, err)
				}
				held[to] = append(held[to], res.Address)
			}
		}
	}
}
