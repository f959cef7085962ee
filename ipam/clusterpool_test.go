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
		register(t, a)
		out = append(out, a)
	}
	return out, mem
}

// register registers an allocator's host in the cluster, as its daemon
// does at start and after its registration is lost (a claim needs it).
func register(t *testing.T, a *Allocator) {
	t.Helper()
	if _, _, err := a.cluster.(*cluster.Client).Register(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
}

// clusterNetworkOn makes the cluster network on each host as dockerd does
// (RequestPool, then the gateway): the first gives the subnet, the others
// leave it to the cluster. It returns the pool IDs.
func clusterNetworkOn(t *testing.T, hosts []*Allocator, subnet string) []string {
	t.Helper()
	var pools []string
	for i, a := range hosts {
		want := subnet
		if i > 0 {
			want = ""
		}
		res, err := a.RequestPool(clusterPoolReq(want))
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, res.PoolID)
		mustAddr(t, a, res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
	}
	return pools
}

func clusterPoolReq(subnet string) *api.RequestPoolRequest {
	return &api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: subnet, Options: map[string]string{OptCluster: "blue"}}
}

func TestClusterPoolsShareAddresses(t *testing.T) {
	t.Parallel()
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
		if !ok || cn.Name != "blue" || cn.VNI == 0 || cn.Port != cluster.DefaultVXLANPort || cn.Gateway != netip.MustParseAddr("10.40.0.1") {
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
	h, _ := clusterHosts(t, 2)
	pools := clusterNetworkOn(t, h, "10.40.0.0/26")
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

// A release while etcd is down succeeds (dockerd never retries one): the
// address is free here at once, and its claim goes when etcd answers, so
// another host can take it then.
func TestClusterReleaseWhileTheStoreIsDown(t *testing.T) {
	t.Parallel()
	h, mem := clusterHosts(t, 2)
	res, err := h[0].RequestPool(clusterPoolReq("10.40.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	mustAddr(t, h[0], res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType})
	addr := mustAddr(t, h[0], res.PoolID, "", map[string]string{OptMACAddress: "02:00:00:00:00:01"})
	ip := netip.MustParsePrefix(addr).Addr()
	mem.SetDown(fmt.Errorf("connection refused"))
	if err := h[0].ReleaseAddress(&api.ReleaseAddressRequest{PoolID: res.PoolID, Address: ip.String()}); err != nil {
		t.Fatalf("release with etcd down: %v", err)
	}
	if h[0].RetryReclaims() {
		t.Error("RetryReclaims reported done while etcd is down")
	}
	mem.SetDown(nil)
	c := cluster.NewWithStore(mem, cluster.Config{Node: "observer"})
	if claimed, _ := c.Claimed("blue"); claimed[ip] != "host1" {
		t.Fatalf("before etcd answered, the claim should still be host1's: %v", claimed)
	}
	if !h[0].RetryReclaims() {
		t.Fatal("RetryReclaims with etcd back: not done")
	}
	if claimed, _ := c.Claimed("blue"); claimed[ip] != "" {
		t.Errorf("after etcd answered, %s is still claimed by %q", ip, claimed[ip])
	}
	res2, err := h[1].RequestPool(clusterPoolReq(""))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustAddr(t, h[1], res2.PoolID, ip.String(), nil); got != addr {
		t.Errorf("host2 took %s, want %s", got, addr)
	}
}

// After the cluster lost its data, a host claims its addresses again before
// it hands out a new one; an address another host claimed meanwhile is a
// conflict it reports, naming both; a claim of its own that no endpoint
// holds (a crash between claim and save) is released.
func TestClusterReclaimAfterTheStoreLostItsData(t *testing.T) {
	t.Parallel()
	h, mem := clusterHosts(t, 2)
	pools := clusterNetworkOn(t, h, "10.40.0.0/24")
	var addrs [2]string
	for i, a := range h {
		addrs[i] = mustAddr(t, a, pools[i], "", map[string]string{OptMACAddress: fmt.Sprintf("02:00:00:00:00:0%d", i+1)})
	}
	mem.Wipe()
	// host1 registers again first; it must take neither its own address
	// nor host2's, which it never tried but knows as host2's endpoint,
	// before host2 is back.
	register(t, h[0])
	h[0].ClusterRegistered(map[string][]netip.Addr{"blue": {netip.MustParsePrefix(addrs[1]).Addr()}}, false)
	for n := range 3 {
		got := mustAddr(t, h[0], pools[0], "", map[string]string{OptMACAddress: fmt.Sprintf("02:00:00:00:01:0%d", n)})
		if got == addrs[0] || got == addrs[1] {
			t.Fatalf("after the wipe host1 handed out %s, which is held (host1 %s, host2 %s)", got, addrs[0], addrs[1])
		}
	}
	register(t, h[1])
	h[1].ClusterRegistered(nil, false)
	conflicts := append(h[0].ClusterConflicts(), h[1].ClusterConflicts()...)
	c := cluster.NewWithStore(mem, cluster.Config{Node: "observer"})
	claimed, _ := c.Claimed("blue")
	if claimed[netip.MustParsePrefix(addrs[0]).Addr()] != "host1" {
		t.Errorf("host1's address %s is not claimed by host1 after the wipe: %v", addrs[0], claimed)
	}
	if spec, found, err := c.LookupNetwork("blue"); err != nil || !found || spec.VXLANPort() != cluster.DefaultVXLANPort {
		t.Errorf("the network made again after the wipe: %+v %v %v; want the hosts' VXLAN port %d", spec, found, err, cluster.DefaultVXLANPort)
	}
	ip2 := netip.MustParsePrefix(addrs[1]).Addr()
	if claimed[ip2] != "host2" || len(conflicts) != 0 {
		t.Errorf("host2's %s: claimed by %q, conflicts %v; want host2's claim and no conflict", ip2, claimed[ip2], conflicts)
	}
	// etcd restored from a backup in which another host held host2's
	// address: a conflict that both Health and status report, naming both
	// hosts, until host2 releases the address.
	mem.Wipe()
	mem.PutClaim("blue", ip2, "host3", "02:00:00:00:03:03")
	register(t, h[1])
	h[1].ClusterRegistered(nil, false)
	conflicts = h[1].ClusterConflicts()
	if len(conflicts) != 1 || conflicts[0].Address != ip2 || conflicts[0].Here != "host2" || conflicts[0].Holder != "host3" ||
		!strings.Contains(conflicts[0].String(), "host2") || !strings.Contains(conflicts[0].String(), "host3") {
		t.Fatalf("conflicts = %v, want %s held by host2 and claimed by host3", conflicts, ip2)
	}
	if err := h[1].ReleaseAddress(&api.ReleaseAddressRequest{PoolID: pools[1], Address: ip2.String()}); err != nil {
		t.Fatal(err)
	}
	if conflicts := h[1].ClusterConflicts(); len(conflicts) != 0 {
		t.Errorf("after the release: conflicts %v", conflicts)
	}
	if claimed, _ := c.Claimed("blue"); claimed[ip2] != "host3" {
		t.Errorf("host2's release took host3's claim: %v", claimed)
	}

	// A claim of host2's that its pool does not hold (as a crash between
	// the claim and the save leaves) goes at its next reclaim.
	orphan := netip.MustParseAddr("10.40.0.200")
	mem.PutClaim("blue", orphan, "host2", "02:00:00:00:09:09")
	h[1].ClusterRegistered(nil, false)
	if claimed, _ := c.Claimed("blue"); claimed[orphan] != "" {
		t.Errorf("host2's orphaned claim for %s survived its reclaim", orphan)
	}
}

// docker network rm on one host while another keeps the network: the
// cluster's configuration stays (a third host cannot make the name again
// with another subnet), and goes when the last host removes it.
func TestClusterNetworkStaysWhileAnyHostHasIt(t *testing.T) {
	t.Parallel()
	h, _ := clusterHosts(t, 3)
	pools := clusterNetworkOn(t, h[:2], "10.40.0.0/24")
	if err := h[0].ReleasePool(&api.ReleasePoolRequest{PoolID: pools[0]}); err != nil {
		t.Fatal(err)
	}
	_, err := h[2].RequestPool(clusterPoolReq("10.99.0.0/24"))
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "--subnet 10.40.0.0/24") {
		t.Fatalf("host3 making the name again with another subnet while host2 has it: %v, want refused", err)
	}
	if err := h[1].ReleasePool(&api.ReleasePoolRequest{PoolID: pools[1]}); err != nil {
		t.Fatal(err)
	}
	res, err := h[2].RequestPool(clusterPoolReq("10.99.0.0/24"))
	if err != nil {
		t.Fatalf("after the last host removed it, the name is free: %v", err)
	}
	if gw := mustAddr(t, h[2], res.PoolID, "", map[string]string{OptRequestAddressType: GatewayAddressType}); gw != "10.99.0.1/24" {
		t.Errorf("the new network's gateway %s", gw)
	}
}

// Swarm removes a node's network while the release of one of its
// endpoints' addresses is still on its way (seen with Engine 29: that
// ReleaseAddress comes after the ReleasePool and finds no pool). The
// pool's release gives the claim back: no address is lost to the cluster,
// and the cluster network can go with the last host.
func TestClusterPoolReleasedBeforeItsAddress(t *testing.T) {
	t.Parallel()
	h, mem := clusterHosts(t, 1)
	pools := clusterNetworkOn(t, h, "10.40.0.0/24")
	addr := mustAddr(t, h[0], pools[0], "", map[string]string{OptMACAddress: "02:00:00:00:00:01"})
	if err := h[0].ReleasePool(&api.ReleasePoolRequest{PoolID: pools[0]}); err != nil {
		t.Fatal(err)
	}
	if err := h[0].ReleaseAddress(&api.ReleaseAddressRequest{PoolID: pools[0], Address: netip.MustParsePrefix(addr).Addr().String()}); err != nil {
		t.Errorf("the late release: %v, want it ignored", err)
	}
	c := cluster.NewWithStore(mem, cluster.Config{Node: "observer"})
	if claimed, err := c.Claimed("blue"); err != nil || len(claimed) != 0 {
		t.Errorf("claims after the pool's release: %v %v, want none", claimed, err)
	}
	if _, found, err := c.LookupNetwork("blue"); err != nil || found {
		t.Errorf("the cluster network outlived its last host: found %v, %v", found, err)
	}
}
