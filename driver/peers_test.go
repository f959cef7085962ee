package driver

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/clusternet"
	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/poll"
	"github.com/mynet/mynet/internal/store"
)

// clusterHost is one host's driver on a fake kernel, sharing a cluster
// store with the others.
type clusterHost struct {
	*harness
	client *cluster.Client
	vtep   netip.Addr
}

var blueSubnet = netip.MustParsePrefix("10.40.0.0/16")

func newClusterHosts(t *testing.T, n int) ([]*clusterHost, *cluster.Memory) {
	t.Helper()
	mem := cluster.NewMemory()
	var out []*clusterHost
	for i := range n {
		vtep := netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)})
		c := cluster.NewWithStore(mem, cluster.Config{Node: fmt.Sprintf("host%d", i+1), Advertise: vtep})
		if _, _, err := c.Register(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // the first host's IPAM makes the cluster network
			if _, err := c.EnsureNetwork("blue", blueSubnet, netip.MustParseAddr("10.40.0.1"), 0); err != nil {
				t.Fatal(err)
			}
		}
		h := &harness{links: newFakeLinks(), fw: newFakeFirewall(), ports: newFakePorts(), st: &countingStore{Store: store.NewMemory()}, sysctl: map[string]string{}}
		x := &clusterHost{harness: h, client: c, vtep: vtep}
		x.start(t)
		out = append(out, x)
	}
	return out, mem
}

// start makes the host's driver, on its store and fake kernel: again, for
// a restart (Close the one before).
func (x *clusterHost) start(t *testing.T) {
	t.Helper()
	d, err := New(Config{Store: x.st, Links: x.links, Firewall: x.fw, Ports: x.ports, EnsureSysctl: func(string, string) error { return nil },
		Cluster: ClusterConfig{Client: x.client, Underlay: x.vtep, UnderlayMTU: 1500,
			Of: func(space string, subnet netip.Prefix) (ClusterNet, bool) {
				return ClusterNet{Name: "blue", VNI: 4711}, subnet == blueSubnet
			}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	x.d = d
}

// countingStore counts the keys its transactions write.
type countingStore struct {
	store.Store
	writes atomic.Int64
}

func (s *countingStore) Update(fn func(store.Tx) error) error {
	return s.Store.Update(func(tx store.Tx) error { return fn(countingTx{tx, &s.writes}) })
}

type countingTx struct {
	store.Tx
	n *atomic.Int64
}

func (t countingTx) Put(b, k string, v []byte) error { t.n.Add(1); return t.Tx.Put(b, k, v) }
func (t countingTx) Delete(b, k string) error        { t.n.Add(1); return t.Tx.Delete(b, k) }
func (t countingTx) DeleteBucket(b string) error     { t.n.Add(1); return t.Tx.DeleteBucket(b) }

// createEndpoint plays dockerd on one host: the IPAM's claim of the
// address in the cluster, then CreateEndpoint.
func (x *clusterHost) createEndpoint(t *testing.T, ep, addr string) {
	t.Helper()
	ip := netip.MustParsePrefix(addr).Addr()
	if ok, holder, err := x.client.ClaimAddress("blue", ip, ip.String()); !ok || err != nil {
		t.Fatalf("claim %s: %v (held by %q) %v", ip, ok, holder, err)
	}
	if _, err := x.d.CreateEndpoint(endpointReq(ep, addr, "")); err != nil {
		t.Fatal(err)
	}
}

// eventuallyTrue waits for another host's watch to carry a change: at
// once, but for a loaded machine (make test runs every package's tests at
// once, with -race; 2 s was missed there once).
func eventuallyTrue(t *testing.T, what string, fn func() bool) {
	t.Helper()
	poll.Eventually(t, what, 10*time.Second, poll.True(fn))
}

const vxlanName = "mnv0123456789ab"

func TestClusterNetworkAcrossHosts(t *testing.T) {
	t.Parallel()
	h, mem := newClusterHosts(t, 3)
	for _, x := range h {
		if err := x.d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
			t.Fatal(err)
		}
		if x.links.links[vxlanName] != "vxlan" {
			t.Fatalf("no VXLAN device: %v", x.links.links)
		}
		v := x.links.vxlans[len(x.links.vxlans)-1]
		if v.VNI != 4711 || v.Local != x.vtep || v.Bridge != "mn-0123456789ab" || v.MTU != 1450 {
			t.Errorf("VXLAN device %+v, want VNI 4711 from %s on the bridge, MTU 1450", v, x.vtep)
		}
	}
	// One endpoint per host: each host learns the other two.
	for i, x := range h {
		x.createEndpoint(t, fmt.Sprintf("%02d", i)+epID[2:], fmt.Sprintf("10.40.0.%d/16", 10+i))
	}
	for i, x := range h {
		var want []string
		for j, y := range h {
			if j != i {
				want = append(want, fmt.Sprintf("10.40.0.%d@%s", 10+j, y.vtep))
			}
		}
		eventuallyTrue(t, fmt.Sprintf("host%d learns the others", i+1), func() bool { return slices.Equal(x.links.remoteIPs(vxlanName), want) })
	}
	// Host 1 releases 10.40.0.10; host 2 reuses it: host 3 follows the
	// address to host 2, and host 1's late delete does not remove it.
	if err := h[0].d.DeleteEndpoint(&network.DeleteEndpointRequest{NetworkID: netID, EndpointID: "00" + epID[2:]}); err != nil {
		t.Fatal(err)
	}
	if err := h[0].client.ReleaseAddress("blue", netip.MustParseAddr("10.40.0.10"), "10.40.0.10"); err != nil {
		t.Fatal(err)
	}
	h[1].createEndpoint(t, "aa"+epID[2:], "10.40.0.10/16")
	eventuallyTrue(t, "host3 follows the moved address", func() bool {
		return slices.Contains(h[2].links.remoteIPs(vxlanName), "10.40.0.10@"+h[1].vtep.String())
	})
	// An entry deleted by hand is repaired by Reconcile.
	_ = h[2].links.DelPeer(vxlanName, h[2].links.remotes[vxlanName][netip.MustParseAddr("10.40.0.11")])
	rep, err := h[2].d.Reconcile()
	if err != nil || len(rep.PeersReprogrammed) != 1 {
		t.Errorf("Reconcile = %+v, %v; want the entry reprogrammed", rep, err)
	}
	if !slices.Contains(h[2].links.remoteIPs(vxlanName), "10.40.0.11@"+h[1].vtep.String()) {
		t.Errorf("entry not repaired: %v", h[2].links.remoteIPs(vxlanName))
	}
	// A compaction ends the watches: the hosts list again and keep their
	// peers.
	mem.Compact()
	poll.Never(t, "after a compaction host1 lost host2's endpoint", 200*time.Millisecond, func() error {
		if got := h[0].links.remoteIPs(vxlanName); !slices.Contains(got, "10.40.0.11@"+h[1].vtep.String()) {
			return fmt.Errorf("host1 has %v", got)
		}
		return nil
	})
	// etcd unreachable: watches and lists fail, and nothing is removed
	// because of it; traffic to known peers keeps flowing.
	mem.SetDown(errors.New("connection refused"))
	poll.Never(t, "with etcd down, a failed watch removed entries", 300*time.Millisecond, func() error {
		if got := h[0].links.remoteIPs(vxlanName); len(got) != 3 {
			return fmt.Errorf("host1 has %v", got)
		}
		return nil
	})
	mem.SetDown(nil)
	// etcd's data is wiped, leases too: the hosts register again (the
	// daemon does when its lease is lost), re-publish their endpoints at
	// the next list, and the peers come back.
	mem.Wipe()
	for _, x := range h {
		if _, _, err := x.client.Register(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
	}
	// Each host's IPAM claims its addresses again (ipam's reclaim), then
	// the driver lists.
	for i, addrs := range [][]string{{}, {"10.40.0.10", "10.40.0.11"}, {"10.40.0.12"}} {
		for _, a := range addrs {
			if ok, _, err := h[i].client.ClaimAddress("blue", netip.MustParseAddr(a), a); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
	}
	for _, x := range h {
		x.d.ResyncCluster()
	}
	eventuallyTrue(t, "endpoints re-published after the wipe", func() bool {
		eps, _, _ := h[2].client.Peers("blue")
		return len(eps) == 3
	})
	eventuallyTrue(t, "host1 knows host2's endpoints after the wipe", func() bool {
		return slices.Equal(h[0].links.remoteIPs(vxlanName), []string{"10.40.0.10@" + h[1].vtep.String(), "10.40.0.11@" + h[1].vtep.String(), "10.40.0.12@" + h[2].vtep.String()})
	})
	// Deleting the network stops its sync and removes the device.
	for _, x := range h {
		x.d.Close() // background deletions
	}
	if err := h[2].d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
		t.Fatal(err)
	}
	h[2].d.Close()
	if _, ok := h[2].links.links[vxlanName]; ok {
		t.Error("VXLAN device left after DeleteNetwork")
	}
}

func TestClusterNetworkRefusals(t *testing.T) {
	t.Parallel()
	h, _ := newClusterHosts(t, 1)
	tests := []struct {
		name    string
		generic map[string]any
		subnet  string
		mention string
	}{
		{"option without the IPAM's", map[string]any{OptCluster: "blue"}, "10.50.0.0/16", "--ipam-driver mynet --ipam-opt mynet.cluster=blue"},
		{"option naming another cluster network", map[string]any{OptCluster: "red"}, "10.40.0.0/16", "does not match"},
		{"MTU too large for VXLAN", map[string]any{OptMTU: "1500"}, "10.40.0.0/16", "at most 1450"},
	}
	// The first host settles the network's behaviour; another asks for
	// ICC off (a later CreateNetwork of the same cluster network).
	if err := h[0].d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
		t.Fatal(err)
	}
	if err := h[0].d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
		t.Fatal(err)
	}
	h[0].d.Close()
	h[0].start(t)
	tests = append(tests, struct {
		name    string
		generic map[string]any
		subnet  string
		mention string
	}{"ICC off where the cluster has it on", map[string]any{OptEnableICC: "false"}, "10.40.0.0/16", "enable_icc=true"},
		struct {
			name    string
			generic map[string]any
			subnet  string
			mention string
		}{"IPv6 routed where the cluster masquerades", map[string]any{OptGatewayMode6: "routed"}, "10.40.0.0/16", "gateway_mode_ipv6=nat"})
	for _, tt := range tests {
		err := h[0].d.CreateNetwork(createReq(tt.generic, tt.subnet, strings.TrimSuffix(tt.subnet, "0/16")+"1/16"))
		if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%s: %v, want an invalid-input error that says %q", tt.name, err, tt.mention)
		}
		if n := h[0].links.count(); n != 0 {
			t.Errorf("%s: %d links left", tt.name, n)
		}
	}
	// A bridge of the host's (docker0, another network's, a LAN's) is never
	// a cluster network's, named by a user or by a record from etcd.
	h[0].links.links["docker0"] = "bridge"
	err := h[0].d.CreateNetwork(createReq(map[string]any{OptBridgeName: "docker0"}, "10.40.0.0/16", "10.40.0.1/16"))
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "never adopts a bridge") {
		t.Errorf("a cluster network on docker0: %v, want refused", err)
	}
	if n := h[0].links.count(); n != 1 || len(h[0].links.addrs["docker0"]) != 0 {
		t.Errorf("docker0 refused: %d links, docker0's addresses %v", n, h[0].links.addrs["docker0"])
	}
	// Without --cluster-store the option is refused too.
	plain := newHarness(t, store.NewMemory())
	err = plain.d.CreateNetwork(createReq(map[string]any{OptCluster: "blue"}, "10.40.0.0/16", "10.40.0.1/16"))
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "--cluster-store") {
		t.Errorf("without a cluster: %v", err)
	}
}

// With etcd down a cluster CreateEndpoint fails and leaves nothing: no veth,
// no local record, no etcd record; a failed local save withdraws the
// record already written.
func TestClusterCreateEndpointFailures(t *testing.T) {
	t.Parallel()
	h, mem := newClusterHosts(t, 1)
	x := h[0]
	if err := x.d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
		t.Fatal(err)
	}
	links := x.links.count()
	mem.SetDown(errors.New("connection refused"))
	if _, err := x.d.CreateEndpoint(endpointReq(epID, "10.40.0.10/16", "")); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("CreateEndpoint with etcd down = %v, want the store's error", err)
	}
	mem.SetDown(nil)
	if n := x.links.count(); n != links {
		t.Errorf("%d links after the failed create, want %d", n, links)
	}
	if len(x.d.Endpoints()) != 0 {
		t.Errorf("endpoint kept: %+v", x.d.Endpoints())
	}
	if eps, _, err := x.client.Peers("blue"); err != nil || len(eps) != 0 {
		t.Errorf("etcd records after the failed create: %v, %v", eps, err)
	}
	// The create works once etcd is back, and its record is there.
	if _, err := x.d.CreateEndpoint(endpointReq(epID, "10.40.0.10/16", "")); err != nil {
		t.Fatal(err)
	}
	if eps, _, err := x.client.Peers("blue"); err != nil || len(eps) != 1 {
		t.Errorf("etcd records after the create: %v, %v", eps, err)
	}
}

// Records put in etcd by hand (or by a host gone wrong) do not become
// entries: the gateway's address, an address outside the subnet, one no
// host claims, one claimed by another node, a VTEP that is not the node's
// registered address, a node that is not registered, a VTEP of the other
// family than this host's underlay. Each refusal is
// counted by reason; a good record beside them is accepted.
func TestClusterRecordsAreChecked(t *testing.T) {
	t.Parallel()
	h, mem := newClusterHosts(t, 2)
	for _, x := range h {
		if err := x.d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
			t.Fatal(err)
		}
	}
	h[1].createEndpoint(t, "01"+epID[2:], "10.40.0.11/16")
	eventuallyTrue(t, "host1 learns host2's endpoint", func() bool {
		return slices.Equal(h[0].links.remoteIPs(vxlanName), []string{"10.40.0.11@" + h[1].vtep.String()})
	})
	mem.PutClaim("blue", netip.MustParseAddr("10.40.0.21"), "host2", "x")
	mem.PutClaim("blue", netip.MustParseAddr("10.40.0.22"), "host2", "x")
	mem.PutClaim("blue", netip.MustParseAddr("10.40.0.23"), "ghost", "x")
	mem.PutClaim("blue", netip.MustParseAddr("10.40.0.24"), "host2", "x")
	bad := netip.MustParseAddr("198.18.0.66")
	forged := []cluster.Peer{
		{Node: "host2", IP: netip.MustParseAddr("10.40.0.1"), VTEP: h[1].vtep},  // the gateway
		{Node: "host2", IP: netip.MustParseAddr("10.41.0.5"), VTEP: h[1].vtep},  // outside the subnet
		{Node: "host2", IP: netip.MustParseAddr("10.40.0.20"), VTEP: h[1].vtep}, // no claim
		{Node: "host1", IP: netip.MustParseAddr("10.40.0.21"), VTEP: h[0].vtep}, // host2's claim (and host1's own name)
		{Node: "host2", IP: netip.MustParseAddr("10.40.0.22"), VTEP: bad},       // not host2's VTEP
		{Node: "ghost", IP: netip.MustParseAddr("10.40.0.23"), VTEP: bad},       // not registered
		{Node: "host2", IP: netip.MustParseAddr("10.40.255.255"), VTEP: h[1].vtep},
		{Node: "host2", IP: netip.MustParseAddr("10.40.0.24"), VTEP: netip.MustParseAddr("fd00::66")}, // an IPv6 VTEP, this host's IPv4
	}
	for _, ep := range forged {
		ep.Network, ep.MAC = "blue", "02:00:00:00:66:66"
		mem.PutPeer(ep)
	}
	want := map[string]uint64{"gateway": 1, "outside_subnet": 1, "no_claim": 1, "wrong_vtep": 1, "unregistered_node": 1, "not_a_host_address": 1, "vtep_family": 1}
	eventuallyTrue(t, "the forged records refused", func() bool { return maps.Equal(h[0].d.RefusedRecords(), want) })
	if got := h[0].d.RefusedRecords(); !maps.Equal(got, want) {
		t.Errorf("refused records = %v, want %v", got, want)
	}
	// The record named host1 is this host's own: not a peer at all.
	if got := h[0].links.remoteIPs(vxlanName); !slices.Equal(got, []string{"10.40.0.11@" + h[1].vtep.String()}) {
		t.Errorf("host1's entries after the forged records: %v", got)
	}
	// A full list checks them too (a resync).
	h[0].d.ResyncCluster()
	eventuallyTrue(t, "the list refused them again", func() bool { return h[0].d.RefusedRecords()["gateway"] == 2 })
	if got := h[0].links.remoteIPs(vxlanName); !slices.Equal(got, []string{"10.40.0.11@" + h[1].vtep.String()}) {
		t.Errorf("host1's entries after a resync: %v", got)
	}
}

// A record of this host's published with another underlay address (the
// host's address changed across a restart) is published again with the
// current one, so the peers send to it.
func TestClusterOwnRecordFollowsANewUnderlayAddress(t *testing.T) {
	t.Parallel()
	h, mem := newClusterHosts(t, 1)
	x := h[0]
	if err := x.d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
		t.Fatal(err)
	}
	x.createEndpoint(t, epID, "10.40.0.10/16")
	mem.PutPeer(cluster.Peer{Network: "blue", Node: "host1", IP: netip.MustParseAddr("10.40.0.10"), MAC: "02:00:00:00:00:10",
		VTEP: netip.MustParseAddr("198.18.0.99")})
	x.d.ResyncCluster()
	eventuallyTrue(t, "the record carries the current underlay address", func() bool {
		eps, _, _ := x.client.Peers("blue")
		return len(eps) == 1 && eps[0].VTEP == x.vtep
	})
}

// One MTU on every host: the first host settles it (its underlay's less the
// VXLAN overhead, or its option); a host with a larger underlay takes it,
// one that asks for another or cannot carry it is refused with what to do.
func TestClusterNetworkHasOneMTU(t *testing.T) {
	t.Parallel()
	h, _ := newClusterHosts(t, 4)
	h[1].d.cluster.UnderlayMTU = 9000
	h[3].d.cluster.UnderlayMTU = 1400
	create := func(x *clusterHost, generic map[string]any) error {
		return x.d.CreateNetwork(createReq(generic, "10.40.0.0/16", "10.40.0.1/16"))
	}
	if err := create(h[0], map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if err := create(h[1], map[string]any{}); err != nil {
		t.Fatal(err)
	}
	for i, x := range h[:2] {
		if v := x.links.vxlans[len(x.links.vxlans)-1]; v.MTU != 1450 {
			t.Errorf("host%d: VXLAN MTU %d, want the cluster's 1450", i+1, v.MTU)
		}
	}
	if err := create(h[2], map[string]any{OptMTU: "1400"}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), OptMTU+"=1450") {
		t.Errorf("another MTU on host3: %v, want refused naming 1450", err)
	}
	if err := create(h[3], map[string]any{}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "at most 1350") {
		t.Errorf("host4's smaller underlay: %v, want refused", err)
	}
	for _, x := range h[2:] {
		if _, ok := x.links.links[vxlanName]; ok {
			t.Error("a refused create left a VXLAN device")
		}
	}
}

// A watched change costs one entry programmed and one record saved (behind
// the event), however many peers the network has: before, each event
// copied the peer map, dumped the device's entries and rewrote the whole
// list in the store, with an fsync.
// An older version's one-record save is rewritten at the first change.
func TestClusterEventCostIsFlat(t *testing.T) {
	t.Parallel()
	h, _ := newClusterHosts(t, 2)
	// Host 2 plays a host with many endpoints through its cluster client
	// alone: its driver, which has no endpoint for them, would withdraw
	// them as stale at its next list.
	a, b := h[0], h[1]
	if err := a.d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
		t.Fatal(err)
	}
	publish := func(i int) {
		t.Helper()
		ip := netip.AddrFrom4([4]byte{10, 40, byte(1 + i/250), byte(1 + i%250)})
		if ok, _, err := b.client.ClaimAddress("blue", ip, ip.String()); !ok || err != nil {
			t.Fatalf("claim %s: %v %v", ip, ok, err)
		}
		if err := b.client.PublishPeer(cluster.Peer{Network: "blue", IP: ip, MAC: fmt.Sprintf("02:42:0a:28:%02x:%02x", 1+i/250, 1+i%250)}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 600
	for i := range n {
		publish(i)
	}
	remotes := func() int { return len(a.links.remoteIPs(vxlanName)) }
	eventuallyTrue(t, "host1 learns host2's endpoints", func() bool { return remotes() == n })
	saved := func() int {
		count := 0
		_ = a.st.View(func(tx store.Tx) error {
			return tx.ForEach("cluster-peers/"+netID, func(string, []byte) error { count++; return nil })
		})
		return count
	}
	eventuallyTrue(t, "host1 saved them", func() bool { return saved() == n })

	cost := func(what string, change func(), want int) {
		t.Helper()
		a.links.resetCounts()
		writes := a.st.(*countingStore).writes.Load()
		change()
		eventuallyTrue(t, what, func() bool { return remotes() == want })
		calls := a.links.counts()
		if calls["Peers"] != 0 || calls["SetPeer"]+calls["DelPeer"] != 1 {
			t.Errorf("%s: kernel calls %v, want one entry set or removed and no dump", what, calls)
		}
		// The record is saved behind the event, within clusternet.SaveDelay.
		written := func() int64 { return a.st.(*countingStore).writes.Load() - writes }
		eventuallyTrue(t, what+": saved", func() bool { return written() >= 1 })
		poll.Never(t, what+": more than one store write", 2*clusternet.SaveDelay, func() error {
			if w := written(); w != 1 {
				return fmt.Errorf("%d writes", w)
			}
			return nil
		})
	}
	cost("one more endpoint", func() { publish(n) }, n+1)
	cost("one endpoint gone", func() {
		if err := b.client.UnpublishPeer("blue", netip.MustParseAddr("10.40.1.1")); err != nil {
			t.Fatal(err)
		}
	}, n)
	if saved() != n {
		t.Errorf("saved %d remote endpoints, want %d", saved(), n)
	}

	// An older version saved the list as one record: a restart reads it,
	// and the first change saves the network in the new form.
	list := a.d.RemotePeers()[netID]
	a.d.Close()
	if err := a.st.Update(func(tx store.Tx) error {
		if err := tx.DeleteBucket("cluster-peers/" + netID); err != nil {
			return err
		}
		return store.PutJSON(tx, "cluster-peers", netID, list)
	}); err != nil {
		t.Fatal(err)
	}
	a.start(t)
	if got := len(a.d.RemotePeers()[netID]); got != n {
		t.Fatalf("after a restart on the old form: %d remote endpoints, want %d", got, n)
	}
	a.d.StartCluster()
	publish(n + 1)
	eventuallyTrue(t, "the old form rewritten in the new at the first change", func() bool {
		old := 0
		_ = a.st.View(func(tx store.Tx) error {
			return tx.ForEach("cluster-peers", func(string, []byte) error { old++; return nil })
		})
		return old == 0 && saved() == n+1
	})
	// Removing the network removes its saved peers.
	if err := a.d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
		t.Fatal(err)
	}
	if saved() != 0 {
		t.Errorf("the network is gone but %d of its remote endpoints are saved", saved())
	}
}
