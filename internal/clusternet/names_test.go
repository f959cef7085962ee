package clusternet

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
)

func TestPeerNamesAreDNSLabels(t *testing.T) {
	t.Parallel()
	ip := netip.MustParseAddr("10.0.0.5")
	for name, want := range map[string]string{
		"bbox1": "bbox1", "BBox_2": "bbox_2", "": "", "-x": "", "a.b": "", "with space": "", "x\x00": "",
		"a23456789012345678901234567890123456789012345678901234567890123":  "a23456789012345678901234567890123456789012345678901234567890123",
		"a234567890123456789012345678901234567890123456789012345678901234": "",
	} {
		if got := peerOf(cluster.Peer{IP: ip, Name: name}).Name; got != want {
			t.Errorf("peer name of %q: %q, want %q", name, got, want)
		}
	}
}

// testTable is a table whose networks are only names: nothing programmed,
// saved or watched.
func testTable() *Table {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	return NewTable(TableConfig{Log: logrus.NewEntry(log)})
}

func TestResolvePrefersThisHostAndKeepsToTheNetworks(t *testing.T) {
	t.Parallel()
	tb := testTable()
	blue := tb.Add(Config{ID: "blue", Cluster: "b"}, nil)
	green := tb.Add(Config{ID: "green", Cluster: "g"}, nil)
	blue.SetLocal("ep1", "Here", nil)
	blue.names.setPeers(map[netip.Addr]Peer{
		netip.MustParseAddr("10.0.0.5"): {Node: "h2", IP: netip.MustParseAddr("10.0.0.5"), Name: "bbox1"},
		netip.MustParseAddr("10.0.0.6"): {Node: "h2", IP: netip.MustParseAddr("10.0.0.6"), Name: "here"}})
	green.names.setPeers(map[netip.Addr]Peer{netip.MustParseAddr("10.1.0.5"): {Node: "h2", IP: netip.MustParseAddr("10.1.0.5"), Name: "bbox9"}})
	if addrs, local := tb.Resolve([]string{"blue"}, "bbox1"); local || len(addrs) != 1 || addrs[0].String() != "10.0.0.5" {
		t.Errorf("bbox1 on blue: %v %v", addrs, local)
	}
	if _, local := tb.Resolve([]string{"blue"}, "here"); !local {
		t.Error("a name of this host's container is not Docker's to answer")
	}
	if addrs, _ := tb.Resolve([]string{"blue"}, "bbox9"); len(addrs) != 0 {
		t.Errorf("a name of another network answered: %v", addrs)
	}
	if addrs, _ := tb.Resolve([]string{"blue", "green"}, "bbox9"); len(addrs) != 1 {
		t.Errorf("a name of the container's other network not answered: %v", addrs)
	}
	// name.network, and PTR, once the networks' Docker names are known.
	tb.SetNetworkNames(map[string]string{"blue": "Ov"})
	if addrs, _ := tb.Resolve([]string{"blue"}, "bbox1.ov"); len(addrs) != 1 {
		t.Errorf("bbox1.ov: %v", addrs)
	}
	if name, ok := tb.Reverse([]string{"blue"}, netip.MustParseAddr("10.0.0.5")); !ok || name != "bbox1.ov" {
		t.Errorf("PTR of 10.0.0.5: %q %v", name, ok)
	}
	// The names follow a peer's change of address and its removal.
	p := Peer{Node: "h2", IP: netip.MustParseAddr("10.0.0.5"), Name: "bbox1"}
	blue.names.removePeer(p)
	p.IP = netip.MustParseAddr("10.0.0.7")
	blue.names.addPeer(p)
	if addrs, _ := tb.Resolve([]string{"blue"}, "bbox1"); len(addrs) != 1 || addrs[0].String() != "10.0.0.7" {
		t.Errorf("bbox1 after its move: %v", addrs)
	}
	// A host that is not alive has its names withheld.
	tb.SetAlive([]string{"h1"})
	if addrs, _ := tb.Resolve([]string{"blue"}, "bbox1"); len(addrs) != 0 {
		t.Errorf("bbox1 of a host that is not alive: %v", addrs)
	}
	if _, ok := tb.Reverse([]string{"blue"}, p.IP); ok {
		t.Error("PTR of a host that is not alive answered")
	}
	tb.SetAlive([]string{"h1", "h2"})
	blue.names.removePeer(p)
	if addrs, _ := tb.Resolve([]string{"blue"}, "bbox1"); len(addrs) != 0 {
		t.Errorf("bbox1 after its removal: %v", addrs)
	}
	// This host's endpoint going makes the name another host's again.
	blue.RemoveLocal("ep1")
	if addrs, local := tb.Resolve([]string{"blue"}, "here"); local || len(addrs) != 1 {
		t.Errorf("here after this host's endpoint left: %v %v", addrs, local)
	}
	// A removed network answers nothing.
	tb.Remove("blue")
	if addrs, local := tb.Resolve([]string{"blue"}, "here"); local || len(addrs) != 0 {
		t.Errorf("here after the network's removal: %v %v", addrs, local)
	}
}

// BenchmarkResolveName is the cost of one forwarder question at 1k and 5k
// local endpoints (and as many peers): a map lookup under the table's and
// the network's names' read locks, whatever the count (make bench,
// workload 12).
func BenchmarkResolveName(b *testing.B) {
	for _, count := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("endpoints=%d", count), func(b *testing.B) {
			tb := testTable()
			blue := tb.Add(Config{ID: "blue", Cluster: "b"}, nil)
			peers := map[netip.Addr]Peer{}
			for i := range count {
				blue.SetLocal(fmt.Sprintf("ep%d", i), fmt.Sprintf("local%d", i), nil)
				ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				peers[ip] = Peer{Node: "h2", IP: ip, Name: fmt.Sprintf("remote%d", i)}
			}
			blue.names.setPeers(peers)
			nets := []string{"blue"}
			names := make([]string, count)
			for i := range count {
				names[i] = fmt.Sprintf("remote%d", i)
			}
			b.ResetTimer()
			for i := range b.N {
				if addrs, _ := tb.Resolve(nets, names[i%count]); len(addrs) != 1 {
					b.Fatal("not answered")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/question")
		})
	}
}
