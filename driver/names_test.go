package driver

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
)

func TestPeerNamesAreDNSLabels(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.5")
	for name, want := range map[string]string{
		"bbox1": "bbox1", "BBox_2": "bbox_2", "": "", "-x": "", "a.b": "", "with space": "", "x\x00": "",
		"a23456789012345678901234567890123456789012345678901234567890123":  "a23456789012345678901234567890123456789012345678901234567890123",
		"a234567890123456789012345678901234567890123456789012345678901234": "",
	} {
		if got := peerOf(cluster.Endpoint{IP: ip, Name: name}).Name; got != want {
			t.Errorf("peer name of %q: %q, want %q", name, got, want)
		}
	}
}

func TestResolveNamePrefersThisHostAndKeepsToTheNetworks(t *testing.T) {
	t.Parallel()
	d := &Driver{log: logrus.NewEntry(logrus.New()), nameIdx: newNameIndex()}
	d.nameIdx.setLocal(&Endpoint{ID: "ep1", NetworkID: "blue", Name: "Here", Address: netip.MustParsePrefix("10.0.0.2/24")})
	d.nameIdx.setPeers("blue", map[netip.Addr]Peer{
		netip.MustParseAddr("10.0.0.5"): {Node: "h2", IP: netip.MustParseAddr("10.0.0.5"), Name: "bbox1"},
		netip.MustParseAddr("10.0.0.6"): {Node: "h2", IP: netip.MustParseAddr("10.0.0.6"), Name: "here"}})
	d.nameIdx.setPeers("green", map[netip.Addr]Peer{netip.MustParseAddr("10.1.0.5"): {Node: "h2", IP: netip.MustParseAddr("10.1.0.5"), Name: "bbox9"}})
	if addrs, local := d.ResolveName([]string{"blue"}, "bbox1"); local || len(addrs) != 1 || addrs[0].String() != "10.0.0.5" {
		t.Errorf("bbox1 on blue: %v %v", addrs, local)
	}
	if _, local := d.ResolveName([]string{"blue"}, "here"); !local {
		t.Error("a name of this host's container is not Docker's to answer")
	}
	if addrs, _ := d.ResolveName([]string{"blue"}, "bbox9"); len(addrs) != 0 {
		t.Errorf("a name of another network answered: %v", addrs)
	}
	// The index follows a peer's change of address and its removal.
	p := Peer{Node: "h2", IP: netip.MustParseAddr("10.0.0.5"), Name: "bbox1"}
	d.nameIdx.removePeer("blue", p)
	p.IP = netip.MustParseAddr("10.0.0.7")
	d.nameIdx.addPeer("blue", p)
	if addrs, _ := d.ResolveName([]string{"blue"}, "bbox1"); len(addrs) != 1 || addrs[0].String() != "10.0.0.7" {
		t.Errorf("bbox1 after its move: %v", addrs)
	}
	// A host that is not alive has its names withheld.
	d.SetLiveNodes([]string{"h1"})
	if addrs, _ := d.ResolveName([]string{"blue"}, "bbox1"); len(addrs) != 0 {
		t.Errorf("bbox1 of a host that is not alive: %v", addrs)
	}
	d.SetLiveNodes([]string{"h1", "h2"})
	d.nameIdx.removePeer("blue", p)
	if addrs, _ := d.ResolveName([]string{"blue"}, "bbox1"); len(addrs) != 0 {
		t.Errorf("bbox1 after its removal: %v", addrs)
	}
	// This host's endpoint going makes the name another host's again.
	d.nameIdx.removeLocal("ep1")
	if addrs, local := d.ResolveName([]string{"blue"}, "here"); local || len(addrs) != 1 {
		t.Errorf("here after this host's endpoint left: %v %v", addrs, local)
	}
}

// A container's names as Docker gives them on its host (a rename, its
// aliases) reach the other hosts' name index, with name.network.
func TestEndpointNamesReachOtherHosts(t *testing.T) {
	h, _ := newClusterHosts(t, 2)
	for _, x := range h {
		if err := x.d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
			t.Fatal(err)
		}
	}
	h[0].createEndpoint(t, epID, "10.40.0.10/16")
	resolves := func(name string) bool {
		addrs, _ := h[1].d.ResolveName([]string{netID}, name)
		return len(addrs) == 1 && addrs[0] == netip.MustParseAddr("10.40.0.10")
	}
	if err := h[0].d.SetEndpointNames(epID, "web", []string{"API", "web", "bad name", "db.local"}); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "host2 answers web, api and db.local", func() bool { return resolves("web") && resolves("api") && resolves("db.local") })
	if addrs, local := h[0].d.ResolveName([]string{netID}, "api"); !local || len(addrs) != 0 {
		t.Errorf("host1's own alias: %v %v, want Docker's to answer", addrs, local)
	}
	// docker rename web web2
	if err := h[0].d.SetEndpointNames(epID, "web2", []string{"api"}); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "host2 follows the rename", func() bool { return resolves("web2") && !resolves("web") && !resolves("db.local") && resolves("api") })
	h[1].d.SetNetworkNames(map[string]string{netID: "ov_net1"})
	if !resolves("web2.ov_net1") || resolves("web2.other") {
		t.Error("name.network is not answered as Docker does")
	}
	// The local record keeps the names across a restart.
	ep, _, err := h[0].d.endpoint(netID, epID)
	if err != nil || ep.Name != "web2" || !slices.Equal(ep.Aliases, []string{"api"}) {
		t.Errorf("saved endpoint %+v %v", ep, err)
	}
}

// BenchmarkResolveName is the cost of one forwarder question in the name
// index at 1k and 5k local endpoints (and as many remote ones): a map
// lookup under the index's own lock, whatever the count (make bench,
// workload 12).
func BenchmarkResolveName(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			d := &Driver{log: logrus.NewEntry(logrus.New()), nameIdx: newNameIndex()}
			d.log.Logger.SetLevel(logrus.InfoLevel)
			peers := map[netip.Addr]Peer{}
			for i := range n {
				d.nameIdx.setLocal(&Endpoint{ID: fmt.Sprintf("ep%d", i), NetworkID: "blue", Name: fmt.Sprintf("local%d", i)})
				ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				peers[ip] = Peer{Node: "h2", IP: ip, Name: fmt.Sprintf("remote%d", i)}
			}
			d.nameIdx.setPeers("blue", peers)
			nets := []string{"blue"}
			names := make([]string, n)
			for i := range n {
				names[i] = fmt.Sprintf("remote%d", i)
			}
			b.ResetTimer()
			for i := range b.N {
				if addrs, _ := d.ResolveName(nets, names[i%n]); len(addrs) != 1 {
					b.Fatal("not answered")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/question")
		})
	}
}
