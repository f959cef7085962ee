package driver

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/mynet/mynet/internal/cluster"
)

// etcd's data deleted under running hosts: host2 keeps host1's peer (its
// entries and its address taken) while the record is gone, and takes the
// record back when host1 publishes it again.
func TestPeerKeptWhenEtcdLosesItsData(t *testing.T) {
	t.Parallel()
	h, mem := newClusterHosts(t, 2)
	for _, x := range h {
		if err := x.d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
			t.Fatal(err)
		}
	}
	h[0].createEndpoint(t, epID, "10.40.0.10/16")
	want := "10.40.0.10@" + h[0].vtep.String()
	eventuallyTrue(t, "host2 learns host1's endpoint", func() bool { return slices.Contains(h[1].links.remoteIPs(vxlanName), want) })

	mem.DeletePrefix() // etcdctl del --prefix /mynet/
	eventuallyTrue(t, "host2 holds the peer whose record went with the data", func() bool { return h[1].d.HeldCount() == 1 })
	if !slices.Contains(h[1].links.remoteIPs(vxlanName), want) {
		t.Fatalf("host2 removed host1's entry with the data: %v", h[1].links.remoteIPs(vxlanName))
	}
	if peers := h[1].d.RemotePeers()[netID]; len(peers) != 1 {
		t.Errorf("host2's peers %v: the held one counts as taken", peers)
	}
	// host1 notices, registers again, claims and publishes again.
	if _, _, err := h[0].client.Register(t.Context(), h[0].client.Lease()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h[1].client.Register(t.Context(), h[1].client.Lease()); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("10.40.0.10")
	if ok, _, err := h[0].client.ClaimAddress("blue", ip, ip.String()); !ok || err != nil {
		t.Fatalf("claim again: %v %v", ok, err)
	}
	h[0].d.ResyncCluster()
	eventuallyTrue(t, "host2 takes the record back", func() bool { h[1].d.Recheck(); return h[1].d.HeldCount() == 0 })
	if !slices.Contains(h[1].links.remoteIPs(vxlanName), want) {
		t.Errorf("host2 lost the entry: %v", h[1].links.remoteIPs(vxlanName))
	}
}

// A record refused because its claim is not there yet is held, its
// address taken, and accepted at the recheck after its claim comes.
func TestRecordRefusedForNoClaimIsCheckedAgain(t *testing.T) {
	t.Parallel()
	h, mem := newClusterHosts(t, 2)
	for _, x := range h {
		if err := x.d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
			t.Fatal(err)
		}
	}
	// A third host with no driver here (host1's own driver would withdraw
	// a record of its name that none of its endpoints has).
	vtep3 := netip.MustParseAddr("198.18.0.13")
	third := cluster.NewWithStore(mem, cluster.Config{Node: "host3", Advertise: vtep3})
	if _, _, err := third.Register(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("10.40.0.20")
	mem.PutPeer(cluster.Peer{Network: "blue", Node: "host3", IP: ip, MAC: "02:00:00:00:00:20", VTEP: vtep3})
	eventuallyTrue(t, "host2 holds the record refused for no claim", func() bool { return h[1].d.HeldCount() == 1 })
	if got := h[1].d.HeldAddrs()["blue"]; !slices.Equal(got, []netip.Addr{ip}) {
		t.Errorf("held addresses %v, want %s taken", got, ip)
	}
	if slices.Contains(h[1].links.remoteIPs(vxlanName), "10.40.0.20@"+vtep3.String()) {
		t.Fatal("a record with no claim was programmed")
	}
	mem.PutClaim("blue", ip, "host3", ip.String())
	h[1].d.Recheck()
	if !slices.Contains(h[1].links.remoteIPs(vxlanName), "10.40.0.20@"+vtep3.String()) || h[1].d.HeldCount() != 0 {
		t.Errorf("after its claim came and a recheck: entries %v, held %d", h[1].links.remoteIPs(vxlanName), h[1].d.HeldCount())
	}
	// A refusal that cannot change is not held.
	mem.PutPeer(cluster.Peer{Network: "blue", Node: "host3", IP: netip.MustParseAddr("10.40.0.1"), MAC: "02:00:00:00:00:01", VTEP: vtep3})
	eventuallyTrue(t, "the gateway's record refused", func() bool { return h[1].d.RefusedRecords()["gateway"] > 0 })
	if n := h[1].d.HeldCount(); n != 0 {
		t.Errorf("%d held after a refusal that cannot change", n)
	}
}

// An older backup of etcd restored: a record of this host's at an address
// now another endpoint's (an older MAC) is published again by the next
// list, so the other hosts follow the endpoint that has it now.
func TestOwnStaleRecordIsPublishedAgain(t *testing.T) {
	t.Parallel()
	h, mem := newClusterHosts(t, 2)
	for _, x := range h {
		if err := x.d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
			t.Fatal(err)
		}
	}
	h[0].createEndpoint(t, epID, "10.40.0.10/16")
	ep, _, err := h[0].d.endpoint(netID, epID)
	if err != nil {
		t.Fatal(err)
	}
	macOnHost2 := func() string {
		for _, p := range h[1].d.RemotePeers()[netID] {
			if p.IP == netip.MustParseAddr("10.40.0.10") {
				return p.MAC
			}
		}
		return ""
	}
	// Both hosts listed and watch (host1's first list would fix the stale
	// record before host2 could be seen to have it): each has the other's
	// endpoint.
	h[1].createEndpoint(t, "01"+epID[2:], "10.40.0.11/16")
	eventuallyTrue(t, "host2 has host1's endpoint", func() bool { return macOnHost2() == ep.MAC })
	eventuallyTrue(t, "host1 has host2's endpoint", func() bool { return len(h[0].d.RemotePeers()[netID]) == 1 })
	mem.PutPeer(cluster.Peer{Network: "blue", Node: "host1", IP: netip.MustParseAddr("10.40.0.10"), MAC: "02:00:00:00:00:99", VTEP: h[0].vtep})
	eventuallyTrue(t, "host2 has the stale record", func() bool { return macOnHost2() == "02:00:00:00:00:99" })
	h[0].d.ResyncCluster()
	eventuallyTrue(t, "host2 follows the endpoint's own MAC", func() bool { return macOnHost2() == ep.MAC })
}
