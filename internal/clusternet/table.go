package clusternet

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/store"
)

// Client is the part of cluster.Client a cluster network uses.
type Client interface {
	Node() string
	PublishPeer(p cluster.Peer) error
	UnpublishPeer(net string, ip netip.Addr) error
	Peers(net string) ([]cluster.Peer, int64, error)
	WatchPeers(ctx context.Context, net string, rev int64, fn func(p cluster.Peer, deleted bool)) error
	// What peers' records are checked against (records.go).
	Claims(net string) (map[netip.Addr]cluster.Claim, error)
	RecordFacts(net string, ip netip.Addr, node string, rev int64) (cluster.RecordFacts, error)
	Nodes() ([]cluster.NodeInfo, error)
	// What tells a removal from a loss of etcd's data (held.go).
	EpochAt(rev int64) (bool, error)
	Epoch() string
}

var _ Client = (*cluster.Client)(nil)

// Kernel is the part of netutil.Links a cluster network programs.
type Kernel interface {
	SetPeers(vxlan string, ps []netutil.Peer) error
	DelPeer(vxlan string, p netutil.Peer) error
	Peers(vxlan string) ([]netutil.Peer, error)
	AnnounceARP(bridge string, ps []netutil.Peer) error
}

var _ Kernel = (*netutil.Links)(nil)

// TableConfig is what every cluster network of this host shares.
type TableConfig struct {
	Client Client
	Kernel Kernel
	// Store keeps each network's peers, so a host restarted while etcd is
	// down still reaches them.
	Store store.Store
	// Underlay is this host's underlay address: its records' VTEP.
	Underlay netip.Addr
	Log      *logrus.Entry
}

// Table is this host's cluster networks, by Docker's network ID, and what
// they share: the live hosts, the networks' Docker names, the count of
// refused records, the last loss of etcd's data. Its lock guards the map
// and the names only; each Network has its own.
type Table struct {
	cfg TableConfig

	mu       sync.RWMutex
	nets     map[string]*Network
	netNames map[string]string // network ID -> Docker name, lower case

	// alive is the set of live hosts (nil: not known yet, all are).
	alive atomic.Pointer[map[string]bool]

	lmu    sync.Mutex // guards lossAt and refused
	lossAt time.Time
	// refused counts peers' records refused, by reason (records.go).
	refused map[string]uint64
}

// NewTable returns a table with no network.
func NewTable(cfg TableConfig) *Table {
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Table{cfg: cfg, nets: map[string]*Network{}, netNames: map[string]string{}, refused: map[string]uint64{}}
}

// Node is this host's name in the cluster.
func (t *Table) Node() string { return t.cfg.Client.Node() }

// Get is the cluster network of a network ID (nil: none).
func (t *Table) Get(id string) *Network {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.nets[id]
}

func (t *Table) all() []*Network {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Network, 0, len(t.nets))
	for _, n := range t.nets {
		out = append(out, n)
	}
	return out
}

// Remove stops a network's watch, saves nothing more of it and forgets
// it; the caller deletes what it saved (DeleteSaved) in its own
// transaction. None there is done.
func (t *Table) Remove(id string) {
	t.mu.Lock()
	n := t.nets[id]
	delete(t.nets, id)
	t.mu.Unlock()
	if n != nil {
		n.Stop()
		n.close()
	}
}

// StopAll ends every network's watch and saves what waits (mynet
// stopping).
func (t *Table) StopAll() {
	for _, n := range t.all() {
		n.Stop()
		n.flushSaves()
	}
}

// StopWatches ends every network's watch (Network.Start starts one again).
func (t *Table) StopWatches() {
	for _, n := range t.all() {
		n.Stop()
	}
}

// Peers lists each network's peers, by network ID (mynet status).
func (t *Table) Peers() map[string][]Peer {
	out := map[string][]Peer{}
	for _, n := range t.all() {
		if ps := n.Peers(); len(ps) > 0 {
			out[n.cfg.ID] = ps
		}
	}
	return out
}

// NoteDataLoss tells the networks that etcd lost its data (the daemon's
// check): the lists that follow keep the peers they lack, held, rather
// than removing them.
func (t *Table) NoteDataLoss() {
	t.lmu.Lock()
	t.lossAt = time.Now()
	t.lmu.Unlock()
}

func (t *Table) lastLoss() time.Time {
	t.lmu.Lock()
	defer t.lmu.Unlock()
	return t.lossAt
}

func (t *Table) countRefused(reason string) {
	t.lmu.Lock()
	t.refused[reason]++
	t.lmu.Unlock()
}

// Refused counts the peers' records refused, by reason.
func (t *Table) Refused() map[string]uint64 {
	t.lmu.Lock()
	defer t.lmu.Unlock()
	out := make(map[string]uint64, len(t.refused))
	for k, v := range t.refused {
		out[k] = v
	}
	return out
}

// Recheck settles the held records of every network (held.go); the daemon
// calls it every 2 s.
func (t *Table) Recheck() {
	for _, n := range t.all() {
		n.recheck()
	}
}

// HeldAddrs lists, by cluster network name, the addresses of records held
// for a refusal that can change: another host uses them, though the
// cluster does not say so yet. (Peers held for a record that vanished
// are in Peers.)
func (t *Table) HeldAddrs() map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, n := range t.all() {
		if addrs := n.held.refusedAddrs(); len(addrs) > 0 {
			out[n.cfg.Cluster] = append(out[n.cfg.Cluster], addrs...)
		}
	}
	return out
}

// HeldCount is how many records are held (status, tests).
func (t *Table) HeldCount() int {
	total := 0
	for _, n := range t.all() {
		total += n.held.count()
	}
	return total
}

// Taken tells whether a peer of the cluster network (by its name) has ip,
// programmed or held: another host's container has it, whatever etcd's
// claims say. A map lookup per network of the table.
func (t *Table) Taken(cluster string, ip netip.Addr) bool {
	for _, n := range t.all() {
		if n.cfg.Cluster != cluster {
			continue
		}
		n.mu.Lock()
		_, ok := n.peers[ip]
		n.mu.Unlock()
		if ok || n.held.has(ip) {
			return true
		}
	}
	return false
}
