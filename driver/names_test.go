package driver

import (
	"net/netip"
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
