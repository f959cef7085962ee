package clusternet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mynet/mynet/internal/ids"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/store"
)

// A network's peers are saved one record each, in a bucket of the
// network's own, so that a watched change writes one record and a full
// list rewrites only what differs. Earlier versions saved the whole list
// as one record (bucketPeers); a network still saved so is rewritten in
// the new form at its first change (legacy).
const bucketPeers = "cluster-peers" // network ID -> the peers last known (older versions)

func peersBucket(networkID string) string { return bucketPeers + "/" + networkID }

// DeleteSaved deletes what the store holds of a network's peers, in the
// caller's transaction (the network's removal).
func DeleteSaved(tx store.Tx, networkID string) error {
	if err := tx.Delete(bucketPeers, networkID); err != nil {
		return err
	}
	return tx.DeleteBucket(peersBucket(networkID))
}

// Load makes a network of the table with the peers the store last knew
// (at start, before the network's device is programmed again).
func (t *Table) Load(tx store.Tx, cfg Config, locals Locals) (*Network, error) {
	n := t.newNetwork(cfg, locals)
	b, err := tx.Get(bucketPeers, cfg.ID)
	switch {
	case err == nil:
		var legacy []Peer
		if err := json.Unmarshal(b, &legacy); err != nil {
			return nil, fmt.Errorf("peers of network %s: %w", ids.Short(cfg.ID), err)
		}
		n.legacy = true
		for _, p := range legacy {
			n.peers[p.IP] = p
		}
	case errors.Is(err, store.ErrNotFound):
		if err := store.ForEachJSON(tx, peersBucket(cfg.ID), func(_ string, p *Peer) error {
			n.peers[p.IP] = *p
			return nil
		}); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	n.names.setPeers(n.peers)
	t.mu.Lock()
	t.nets[cfg.ID] = n
	t.mu.Unlock()
	return n, nil
}

// setPeers makes the network's peers exactly want, after a full list: it
// programs the device (reading back what it has, so an entry deleted by
// hand comes back), and remembers want in memory and in the store, so a
// reboot while etcd is down still restores cross-host traffic.
func (n *Network) setPeers(want map[netip.Addr]Peer) {
	n.prog.Lock()
	defer n.prog.Unlock()
	n.mu.Lock()
	old := n.peers
	n.mu.Unlock()
	if _, err := n.program(want); err != nil {
		n.log.WithError(err).Warn("could not program every peer; reconcile will retry")
	}
	var moved []netutil.Peer
	for ip, p := range want {
		if o, ok := old[ip]; !ok || o.MAC != p.MAC {
			moved = append(moved, p.kernel())
		}
	}
	n.announce(moved)
	if !n.record(func(map[netip.Addr]Peer) map[netip.Addr]Peer {
		n.names.setPeers(want)
		return want
	}) {
		return
	}
	n.saves.order.Lock()
	defer n.saves.order.Unlock()
	n.saves.take() // want has them
	err := n.save(func(tx store.Tx, bucket string) error {
		// Only what differs is written; the keys are read, not copied.
		var gone []string
		if err := tx.ForEach(bucket, func(k string, _ []byte) error {
			if ip, err := netip.ParseAddr(k); err != nil || !want[ip].IP.IsValid() {
				gone = append(gone, k)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range gone {
			if err := tx.Delete(bucket, k); err != nil {
				return err
			}
		}
		for ip, p := range want {
			b, _ := json.Marshal(p)
			k := ip.String()
			if have, err := tx.Get(bucket, k); err == nil && bytes.Equal(have, b) {
				continue
			}
			if err := tx.Put(bucket, k, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.log.WithError(err).Warn("could not save the peers")
	}
}

// applyPeer applies one watched change of a peer: one entry programmed or
// removed, one record saved (behind it, queueSave), whatever the number of
// peers. A delete is applied only when the address is still the deleting
// host's: after a release on one host and a claim on another, the first
// one's delete may come late.
func (n *Network) applyPeer(p Peer, deleted bool) {
	n.prog.Lock()
	defer n.prog.Unlock()
	n.mu.Lock()
	old, had := n.peers[p.IP]
	n.mu.Unlock()
	kernel := n.t.cfg.Kernel
	log := n.log.WithField("address", p.IP)
	switch {
	case deleted && (!had || old.Node != p.Node), !deleted && had && old.equal(p):
		return
	case deleted:
		if err := kernel.DelPeer(n.cfg.VXLAN, n.leaving(old)); err != nil {
			log.WithError(err).Warn("could not remove a peer; reconcile will retry")
		}
	default:
		if had && old.MAC != p.MAC {
			// The address moved to another endpoint: its old MAC's
			// forwarding entry goes.
			if err := kernel.DelPeer(n.cfg.VXLAN, n.leaving(old)); err != nil {
				log.WithError(err).Warn("could not remove a peer's old entries")
			}
		}
		if err := kernel.SetPeers(n.cfg.VXLAN, []netutil.Peer{p.kernel()}); err != nil {
			log.WithError(err).Warn("could not program a peer; reconcile will retry")
		}
		if !had || old.MAC != p.MAC {
			n.announce([]netutil.Peer{p.kernel()})
		}
	}
	live := n.record(func(m map[netip.Addr]Peer) map[netip.Addr]Peer {
		if had {
			n.names.removePeer(old)
		}
		if deleted {
			delete(m, p.IP)
		} else {
			m[p.IP] = p
			n.names.addPeer(p)
		}
		return m
	})
	if live {
		n.queueSave(p, deleted)
	}
}

// Reprogram makes the VXLAN device's entries the network's peers again
// (Reconcile), and says how many it had to change.
func (n *Network) Reprogram() (int, error) {
	n.prog.Lock()
	defer n.prog.Unlock()
	n.mu.Lock()
	want := n.peers
	n.mu.Unlock()
	return n.program(want)
}

// program makes the VXLAN device's entries exactly want and says how many
// it had to change. Caller holds prog.
func (n *Network) program(want map[netip.Addr]Peer) (int, error) {
	kernel := n.t.cfg.Kernel
	have, err := kernel.Peers(n.cfg.VXLAN)
	if err != nil {
		return 0, err
	}
	var errs []error
	fixed := 0
	got := map[netip.Addr]netutil.Peer{}
	var wantMAC map[string]bool // dual stack: MACs some wanted peer uses
	for _, r := range have {
		got[r.IP] = r
		if _, ok := want[r.IP]; !ok {
			if n.cfg.Subnet6.IsValid() && wantMAC == nil {
				wantMAC = map[string]bool{}
				for _, p := range want {
					wantMAC[p.MAC] = true
				}
			}
			r.SharedMAC = wantMAC[r.MAC.String()]
			fixed++
			errs = append(errs, kernel.DelPeer(n.cfg.VXLAN, r))
		}
	}
	var set []netutil.Peer
	for ip, p := range want {
		if r, ok := got[ip]; ok && r.MAC.String() == p.MAC && r.VTEP == p.VTEP {
			continue
		}
		set = append(set, p.kernel())
	}
	errs = append(errs, kernel.SetPeers(n.cfg.VXLAN, set))
	return fixed + len(set), errors.Join(errs...)
}

// announce tells this host's containers of new or moved peers: one that
// talked to an address before has its old MAC cached, and would keep
// sending there.
func (n *Network) announce(ps []netutil.Peer) {
	if err := n.t.cfg.Kernel.AnnounceARP(n.cfg.Bridge, ps); err != nil {
		n.log.WithError(err).Debug("could not announce every peer's address")
	}
}

// record changes the peers in memory with change, unless the network was
// removed; it reports whether it was not. Caller holds prog.
func (n *Network) record(change func(map[netip.Addr]Peer) map[netip.Addr]Peer) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	// Changed in place: whoever reads it outside mu holds prog.
	n.peers = change(n.peers)
	return true
}

// A watched change is saved behind the event, with the others of the next
// SaveDelay in one transaction (one fsync), so an event costs no disk
// write: the saved peers are what a host restarted while etcd is down
// programs, and a change lost with a crash is found again at the next
// list.
const SaveDelay = 100 * time.Millisecond

// saves are a network's changes not yet in the store.
type saves struct {
	// order makes the saving of a batch and setPeers' save of the whole
	// network one after the other, so a batch taken before a full save
	// never lands after it. Taken before the network's mu, never while
	// holding it.
	order sync.Mutex

	mu        sync.Mutex // guards pending and scheduled
	pending   map[netip.Addr]*Peer
	scheduled bool
	timers    sync.WaitGroup
}

// take hands over the changes waiting, which the caller saves or
// supersedes.
func (s *saves) take() map[netip.Addr]*Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.pending
	s.pending, s.scheduled = nil, false
	return out
}

// queueSave records a change to save and makes sure a save is on its way.
func (n *Network) queueSave(p Peer, deleted bool) {
	s := &n.saves
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = map[netip.Addr]*Peer{}
	}
	if deleted {
		s.pending[p.IP] = nil
	} else {
		s.pending[p.IP] = &p
	}
	if !s.scheduled {
		s.scheduled = true
		s.timers.Add(1)
		time.AfterFunc(SaveDelay, func() {
			defer s.timers.Done()
			n.flushSaves()
		})
	}
}

// flushSaves saves the changes waiting.
func (n *Network) flushSaves() {
	n.saves.order.Lock()
	defer n.saves.order.Unlock()
	changes := n.saves.take()
	if len(changes) == 0 {
		return
	}
	err := n.save(func(tx store.Tx, bucket string) error {
		for ip, p := range changes {
			var err error
			if p == nil {
				err = tx.Delete(bucket, ip.String())
			} else {
				err = store.PutJSON(tx, bucket, ip.String(), p)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.log.WithError(err).Warn("could not save peers")
	}
}

// save runs change on the network's bucket of peers, in one transaction,
// unless the network was removed (a save behind a removal writes
// nothing). A network still saved in the old one-record form is instead
// saved whole from memory (which already has the change), and the old
// record goes. Caller holds saves.order.
func (n *Network) save(change func(tx store.Tx, bucket string) error) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	legacy := n.legacy
	var all []Peer
	if legacy {
		for _, p := range n.peers {
			all = append(all, p)
		}
	}
	n.mu.Unlock()
	bucket := peersBucket(n.cfg.ID)
	err := n.t.cfg.Store.Update(func(tx store.Tx) error {
		if !legacy {
			return change(tx, bucket)
		}
		if err := tx.DeleteBucket(bucket); err != nil {
			return err
		}
		for _, p := range all {
			if err := store.PutJSON(tx, bucket, p.IP.String(), p); err != nil {
				return err
			}
		}
		return tx.Delete(bucketPeers, n.cfg.ID)
	})
	if err == nil && legacy {
		n.mu.Lock()
		n.legacy = false
		n.mu.Unlock()
	}
	return err
}

// close makes the network record and save nothing more, after the saves
// under way (its removal; the caller deletes what was saved).
func (n *Network) close() {
	n.saves.order.Lock()
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.saves.order.Unlock()
	n.saves.take()
	n.saves.timers.Wait()
	n.names.clear()
	n.held.clear()
}
