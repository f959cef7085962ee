package clusternet

import (
	"context"
	"net/netip"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/store"
)

// oneClient is a cluster of one host, host1, that counts its withdrawals.
type oneClient struct {
	mu        sync.Mutex
	withdrawn []netip.Addr
}

func (c *oneClient) Node() string                   { return "host1" }
func (c *oneClient) PublishPeer(cluster.Peer) error { return nil }
func (c *oneClient) UnpublishPeer(_ string, ip netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.withdrawn = append(c.withdrawn, ip)
	return nil
}
func (c *oneClient) Peers(string) ([]cluster.Peer, int64, error) { return nil, 0, nil }
func (c *oneClient) WatchPeers(context.Context, string, int64, func(cluster.Peer, bool)) error {
	return nil
}
func (c *oneClient) Claims(string) (map[netip.Addr]cluster.Claim, error) { return nil, nil }
func (c *oneClient) RecordFacts(string, netip.Addr, string, int64) (cluster.RecordFacts, error) {
	return cluster.RecordFacts{}, nil
}
func (c *oneClient) Nodes() ([]cluster.NodeInfo, error) { return nil, nil }
func (c *oneClient) EpochAt(int64) (bool, error)        { return true, nil }
func (c *oneClient) Epoch() string                      { return "" }

type noKernel struct{}

func (noKernel) SetPeers(string, []netutil.Peer) error    { return nil }
func (noKernel) DelPeer(string, netutil.Peer) error       { return nil }
func (noKernel) Peers(string) ([]netutil.Peer, error)     { return nil, nil }
func (noKernel) AnnounceARP(string, []netutil.Peer) error { return nil }

// endingCreate is an endpoint whose creation ends the moment it is first
// asked about: being created until then, a local endpoint after.
type endingCreate struct {
	mu    sync.Mutex
	local Local
	ended bool
}

func (e *endingCreate) Creating(ip netip.Addr) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	was := !e.ended
	e.ended = true
	return was && ip == e.local.IP
}

func (e *endingCreate) Local(ip netip.Addr) (Local, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	was := e.ended
	e.ended = true
	return e.local, was && ip == e.local.IP
}

func (e *endingCreate) All() []Local { return []Local{e.local} }

// A list that meets this host's record of an endpoint whose creation ends
// while the list asks about it keeps the record: the endpoint is either
// still being created or already local, whichever it is asked first.
func TestListKeepsTheRecordOfAnEndpointCreatedMeanwhile(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	client := &oneClient{}
	underlay := netip.MustParseAddr("198.18.0.11")
	tb := NewTable(TableConfig{Client: client, Kernel: noKernel{}, Store: store.NewMemory(), Underlay: underlay, Log: logrus.NewEntry(log)})
	ip := netip.MustParseAddr("10.40.0.10")
	locals := &endingCreate{local: Local{ID: "ep1", IP: ip, MAC: "02:42:0a:28:00:0a"}}
	n := tb.Add(Config{ID: "net1", Cluster: "blue", Subnet: netip.MustParsePrefix("10.40.0.0/16")}, locals)
	n.syncPeers([]cluster.Peer{{Network: "blue", Node: "host1", IP: ip, MAC: "02:42:0a:28:00:0a", VTEP: underlay}}, 5)
	if len(client.withdrawn) != 0 {
		t.Fatalf("the list withdrew the record of an endpoint whose creation ended meanwhile: %v", client.withdrawn)
	}
}
