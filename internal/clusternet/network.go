package clusternet

import (
	"context"
	"errors"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/ids"
)

// Config is a cluster network as this host has it.
type Config struct {
	ID      string // Docker's network ID
	Cluster string // the cluster network's name
	VXLAN   string // its VXLAN device
	Bridge  string // its bridge, whose containers hear of moved addresses
	Subnet  netip.Prefix
	Gateway netip.Prefix // the gateway's address, with the subnet's length
	// Subnet6 and Gateway6 are a dual-stack network's (zero otherwise):
	// an endpoint has a record for each of its addresses.
	Subnet6  netip.Prefix
	Gateway6 netip.Prefix
	// Encrypted networks' VTEPs are the hosts' tunnel addresses
	// (cluster.WireGuardInfo); VTEP is this host's.
	Encrypted bool
	VTEP      netip.Addr
}

// Local is one of this host's endpoints on the network, as its record
// says: one of its addresses (an endpoint of a dual-stack network is two
// Locals, one record each).
type Local struct {
	ID      string
	IP      netip.Addr
	MAC     string
	Name    string
	Aliases []string
}

// Locals is what a network needs of this host's endpoints on it, which the
// driver keeps. A network never holds its own lock while it calls these.
type Locals interface {
	// Local is this host's endpoint at ip on the network.
	Local(ip netip.Addr) (Local, bool)
	// Creating tells whether an endpoint at ip is being created: its
	// record may be in etcd before the endpoint is saved.
	Creating(ip netip.Addr) bool
	// All are this host's endpoints on the network.
	All() []Local
}

// Network is one cluster network on this host: its peers, as programmed
// on its VXLAN device and saved in the store, the names they and this
// host's endpoints are answered by, the records held after a loss of
// etcd's data, and the watch that keeps them current.
type Network struct {
	t      *Table
	cfg    Config
	locals Locals
	log    *logrus.Entry

	// prog keeps the VXLAN device's entries and peers in step: it is held
	// from reading what the device should have to recording it (setPeers,
	// applyPeer, Reprogram), so a reprogram never works from peers an
	// update has not reached yet. Taken before mu; never held while the
	// driver is called (Locals).
	prog sync.Mutex

	mu     sync.Mutex // guards peers, legacy, listEpoch, closed and watch
	peers  map[netip.Addr]Peer
	legacy bool // saved in an older version's one-record form (program.go)
	// listEpoch is the cluster epoch at the last full list (held.go).
	listEpoch string
	closed    bool // removed: nothing more is recorded or saved
	watch     *watch

	names names // its own lock (names.go)
	held  held  // its own lock (held.go)
	saves saves // its own locks (program.go)
}

// Add makes a network of the table, with no peer yet (a new network).
func (t *Table) Add(cfg Config, locals Locals) *Network {
	n := t.newNetwork(cfg, locals)
	t.mu.Lock()
	t.nets[cfg.ID] = n
	t.mu.Unlock()
	return n
}

func (t *Table) newNetwork(cfg Config, locals Locals) *Network {
	n := &Network{t: t, cfg: cfg, locals: locals, peers: map[netip.Addr]Peer{},
		log: t.cfg.Log.WithFields(logrus.Fields{"network": ids.Short(cfg.ID), "cluster_network": cfg.Cluster})}
	n.names.init()
	return n
}

// Config is the network's configuration.
func (n *Network) Config() Config { return n.cfg }

// Peers lists the network's peers.
func (n *Network) Peers() []Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Peer, 0, len(n.peers))
	for _, p := range n.peers {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return a.IP.Compare(b.IP) })
	return out
}

// Publish announces one of this host's endpoints.
func (n *Network) Publish(l Local) error {
	return n.t.cfg.Client.PublishPeer(cluster.Peer{Network: n.cfg.Cluster, IP: l.IP, MAC: l.MAC, Name: l.Name, Aliases: l.Aliases, VTEP: n.vtep()})
}

// vtep is this host's VTEP on the network: its records' VTEP.
func (n *Network) vtep() netip.Addr {
	if n.cfg.Encrypted {
		return n.cfg.VTEP
	}
	return n.t.cfg.Underlay
}

// Unpublish withdraws one of this host's endpoints.
func (n *Network) Unpublish(ip netip.Addr) error {
	return n.t.cfg.Client.UnpublishPeer(n.cfg.Cluster, ip)
}

// bigList is the size of a list after which the memory it took is
// returned to the system at once.
const bigList = 10000

// watch is a network's list-and-watch loop.
type watch struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Start follows the network's peers until Stop: list at a revision,
// program the difference both ways (peers on the VXLAN device; this
// host's own records in etcd), watch from the next revision, and on any
// failure list again after a pause. Peers are removed only by a list or
// an explicit event, never because a watch failed. Started already, or
// removed: nothing.
func (n *Network) Start() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.watch != nil || n.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{cancel: cancel, done: make(chan struct{})}
	n.watch = w
	go func() {
		defer close(w.done)
		n.follow(ctx)
	}()
}

// Stop ends the watch and waits for it.
func (n *Network) Stop() {
	n.mu.Lock()
	w := n.watch
	n.watch = nil
	n.mu.Unlock()
	if w != nil {
		w.cancel()
		<-w.done
	}
}

func (n *Network) follow(ctx context.Context) {
	client := n.t.cfg.Client
	pause := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = time.Second
		start := time.Now()
		records, rev, err := client.Peers(n.cfg.Cluster)
		if err != nil {
			n.log.WithError(err).Warn("cannot list the cluster's peers; traffic to known peers keeps flowing, retrying")
			continue
		}
		listed, count := time.Since(start), len(records)
		n.syncPeers(records, rev)
		if count >= bigList {
			// A list of a big network is the daemon's peak of memory:
			// what it no longer needs goes back to the system now, not
			// minutes later.
			debug.FreeOSMemory()
		}
		n.log.WithFields(logrus.Fields{"records": count, "revision": rev, "list": listed.Round(time.Millisecond),
			"total": time.Since(start).Round(time.Millisecond)}).Info("cluster peers listed and programmed; watching")
		err = client.WatchPeers(ctx, n.cfg.Cluster, rev, func(r cluster.Peer, deleted bool) { n.event(r, deleted) })
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, cluster.ErrCompacted) {
			pause = 0
		}
		n.log.WithError(err).Info("peer watch ended; listing again")
	}
}

// syncPeers makes the VXLAN device and this host's records match a full
// list of the network's records, made at revision rev.
func (n *Network) syncPeers(records []cluster.Peer, rev int64) {
	self := n.t.cfg.Client.Node()
	facts, err := n.listFacts()
	if err != nil {
		n.log.WithError(err).Warn("cannot read the cluster's claims and nodes to check its peers' records; keeping the entries as they are")
		return
	}
	want := map[netip.Addr]Peer{}
	listed := map[netip.Addr]bool{} // other hosts' records in the list
	published := map[netip.Addr]bool{}
	for _, r := range records {
		if r.Node == self {
			// Creating first: an endpoint is a local one before it stops
			// being one in creation, so a create that ends between the two
			// questions is seen by one of them.
			creating := n.locals.Creating(r.IP)
			local, ok := n.locals.Local(r.IP)
			switch {
			case !ok && !creating:
				// A record of ours no endpoint claims (a crash between the
				// two): withdraw it.
				published[r.IP] = true
				if err := n.Unpublish(r.IP); err != nil {
					n.log.WithError(err).Warn("could not withdraw a stale record")
				}
			case r.VTEP != n.vtep():
				// Published before this host's underlay address changed:
				// published again below, so the peers send to the new one.
			case ok && !recordOf(local, r):
				// Another endpoint's record at this address (an older
				// backup of etcd restored): published again below.
			default:
				published[r.IP] = true
			}
			continue
		}
		listed[r.IP] = true
		if n.accept(r, facts) {
			want[r.IP] = peerOf(r)
		}
	}
	n.keepVanished(want, listed, rev)
	for _, l := range n.locals.All() {
		if published[l.IP] {
			continue
		}
		// Ours but not in etcd: its data was wiped, or our lease lapsed.
		if err := n.Publish(l); err != nil {
			n.log.WithError(err).Warn("could not publish an endpoint again")
		}
	}
	n.setPeers(want)
}

// event applies one watched change.
func (n *Network) event(r cluster.Peer, deleted bool) {
	if r.Node == n.t.cfg.Client.Node() {
		if deleted {
			if local, ok := n.locals.Local(r.IP); ok {
				if err := n.Publish(local); err != nil {
					n.log.WithError(err).Warn("our endpoint's record vanished and could not be published again")
				}
			}
		}
		return
	}
	start := time.Now()
	if !deleted && !n.accept(r, n.eventFacts(r)) {
		return
	}
	if deleted {
		n.mu.Lock()
		p, had := n.peers[r.IP]
		n.mu.Unlock()
		switch {
		case !had || p.Node != r.Node:
			n.held.drop(r.IP)
		case n.lostWithData(r):
			n.holdVanished(p)
			return
		default:
			n.held.drop(r.IP)
		}
	}
	checked := time.Since(start)
	n.applyPeer(peerOf(r), deleted)
	n.log.WithFields(logrus.Fields{"address": r.IP, "deleted": deleted, "took_us": time.Since(start).Microseconds(),
		"check_us": checked.Microseconds()}).Debug("peer change applied")
}

// recordOf reports whether a record of this host's says what its
// endpoint local would publish.
func recordOf(local Local, r cluster.Peer) bool {
	return strings.EqualFold(r.MAC, local.MAC) && r.Name == local.Name && slices.Equal(r.Aliases, local.Aliases)
}
