package daemon

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/wgtunnel"
)

func TestWireGuardPeers(t *testing.T) {
	t.Parallel()
	key := func(b byte) string { k := wgtunnel.Key{}; k[0] = b; return k.String() }
	node := func(name, addr, k, tunnel string) cluster.NodeInfo {
		return cluster.NodeInfo{Name: name, Addr: netip.MustParseAddr(addr),
			WireGuard: &cluster.WireGuardInfo{Key: k, Port: 4800, Tunnel: netip.MustParseAddr(tunnel)}}
	}
	nodes := []cluster.NodeInfo{
		node("host1", "198.18.0.11", key(1), "10.0.4.1"), // this host
		node("host2", "198.18.0.12", key(2), "10.0.4.2"),
		{Name: "host3", Addr: netip.MustParseAddr("198.18.0.13")}, // no tunnel yet
		node("host4", "198.18.0.14", key(4), "10.0.4.4"),          // its key claimed by host5 too
		node("host5", "198.18.0.15", key(4), "10.0.4.5"),
		node("host6", "198.18.0.16", key(6), "10.0.4.2"), // host2's tunnel address
		node("host7", "198.18.0.17", key(7), "10.0.4.7"), // claimed by nobody
		node("host8", "198.18.0.18", "not a key", "10.0.4.8"),
	}
	claims := map[netip.Addr]string{}
	for _, n := range nodes {
		if n.WireGuard != nil && n.Name != "host7" {
			claims[n.WireGuard.Tunnel] = n.Name
		}
	}
	claims[netip.MustParseAddr("10.0.4.2")] = "host2"
	peers, refused := wireguardPeers("host1", nodes, claims)
	if len(peers) != 0 {
		t.Errorf("peers %+v: host2 shares its tunnel address with host6, so neither", peers)
	}
	for _, want := range []string{"host4: its public key is claimed by another host too", "host5: its public key",
		"host2: its tunnel address 10.0.4.2 is another host's too", "host6: its tunnel address",
		"host7: its tunnel address 10.0.4.7 is not claimed by it", "host8: its key is not a WireGuard key"} {
		if !strings.Contains(strings.Join(refused, "\n"), want) {
			t.Errorf("refusals %q lack %q", refused, want)
		}
	}
	// Without host6, host2 is a peer: its key, its underlay at WireGuard's
	// port, its tunnel address.
	peers, _ = wireguardPeers("host1", append(nodes[:5:5], nodes[6:]...), claims)
	if len(peers) != 1 || peers[0].Node != "host2" || peers[0].Endpoint != netip.MustParseAddrPort("198.18.0.12:4800") ||
		peers[0].Tunnel != netip.MustParseAddr("10.0.4.2") || peers[0].Key.String() != key(2) {
		t.Errorf("peers %+v, want host2 alone", peers)
	}
}

func TestStalePeer(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, c := range []struct {
		sent  int64
		since time.Duration
		want  bool
	}{
		{0, time.Hour, false},         // never sent to: no traffic is lost
		{10, time.Minute, false},      // within a session's life
		{10, 181 * time.Second, true}, // sent to, no handshake past Reject-After-Time
		{10, 3 * time.Second, false},  // a new peer's first handshake under way
	} {
		if got := stale(c.sent, now.Add(-c.since), now); got != c.want {
			t.Errorf("sent %d, handshake %v ago: stale %v, want %v", c.sent, c.since, got, c.want)
		}
	}
}
