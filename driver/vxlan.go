package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/store"
)

// A cluster network's remote endpoints are saved one record each, in a
// bucket of the network's own, so that a watched change writes one record
// and a full list rewrites only what differs. Earlier versions saved the
// whole list as one record (bucketPeers); a network still saved so is
// rewritten in the new form at its first change (legacyPeers).
const bucketPeers = "cluster-peers" // network ID -> the remote endpoints last known (older versions)

func peersBucket(networkID string) string { return bucketPeers + "/" + networkID }

// setPeers makes a network's remote endpoints exactly want, after a full
// list: it programs the device (reading back what it has, so an entry
// deleted by hand comes back), and remembers want in memory and in the
// store, so a reboot while etcd is down still restores cross-host traffic.
func (d *Driver) setPeers(cfg *NetworkConfig, want map[netip.Addr]Peer, log *logrus.Entry) {
	d.peersMu.Lock()
	defer d.peersMu.Unlock()
	d.mu.Lock()
	old := d.peers[cfg.ID]
	d.mu.Unlock()
	if _, err := d.programPeers(cfg, want); err != nil {
		log.WithError(err).Warn("could not program every remote endpoint; reconcile will retry")
	}
	var moved []netutil.Remote
	for ip, p := range want {
		if o, ok := old[ip]; !ok || o.MAC != p.MAC {
			moved = append(moved, p.remote())
		}
	}
	d.announce(cfg, moved, log)
	if !d.recordPeers(cfg.ID, func(m map[netip.Addr]Peer) map[netip.Addr]Peer {
		d.nameIdx.setPeers(cfg.ID, want)
		return want
	}) {
		return
	}
	d.saves.order.Lock()
	defer d.saves.order.Unlock()
	d.takePending(cfg.ID) // want has them
	err := d.savePeers(cfg.ID, func(tx store.Tx, bucket string) error {
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
		log.WithError(err).Warn("could not save the remote endpoints")
	}
}

// applyPeer applies one watched change of a remote endpoint: one entry
// programmed or removed, one record saved (behind it, queuePeerSave),
// whatever the number of peers.
// A delete is applied only when the address is still the deleting host's:
// after a release on one host and a claim on another, the first one's
// delete may come late.
func (d *Driver) applyPeer(cfg *NetworkConfig, p Peer, deleted bool, log *logrus.Entry) {
	d.peersMu.Lock()
	defer d.peersMu.Unlock()
	d.mu.Lock()
	old, had := d.peers[cfg.ID][p.IP]
	d.mu.Unlock()
	switch {
	case deleted && (!had || old.Node != p.Node), !deleted && had && old.equal(p):
		return
	case deleted:
		if err := d.links.DelRemote(cfg.VXLAN, old.remote()); err != nil {
			log.WithError(err).WithField("address", p.IP).Warn("could not remove a remote endpoint; reconcile will retry")
		}
	default:
		if had && old.MAC != p.MAC {
			// The address moved to another endpoint: its old MAC's
			// forwarding entry goes.
			if err := d.links.DelRemote(cfg.VXLAN, old.remote()); err != nil {
				log.WithError(err).WithField("address", p.IP).Warn("could not remove a remote endpoint's old entries")
			}
		}
		if err := d.links.SetRemotes(cfg.VXLAN, []netutil.Remote{p.remote()}); err != nil {
			log.WithError(err).WithField("address", p.IP).Warn("could not program a remote endpoint; reconcile will retry")
		}
		if !had || old.MAC != p.MAC {
			d.announce(cfg, []netutil.Remote{p.remote()}, log)
		}
	}
	live := d.recordPeers(cfg.ID, func(m map[netip.Addr]Peer) map[netip.Addr]Peer {
		if m == nil {
			m = map[netip.Addr]Peer{}
		}
		if had {
			d.nameIdx.removePeer(cfg.ID, old)
		}
		if deleted {
			delete(m, p.IP)
		} else {
			m[p.IP] = p
			d.nameIdx.addPeer(cfg.ID, p)
		}
		return m
	})
	if live {
		d.queuePeerSave(cfg.ID, p, deleted)
	}
}

// A watched change is saved behind the event, with the others of the next
// peerSaveDelay in one transaction (one fsync), so an event costs no disk
// write: the saved peers are what a host restarted while etcd is down
// programs, and a change lost with a crash is found again at the next list.
const peerSaveDelay = 100 * time.Millisecond

// peerSaves are the changes waiting to be saved.
type peerSaves struct {
	// order makes the saving of a batch and setPeers' save of a whole
	// network one after the other, so a batch taken before a full save
	// never lands after it. Taken before d.mu, never while holding it.
	order sync.Mutex

	mu        sync.Mutex // guards pending and scheduled
	pending   map[string]map[netip.Addr]*Peer
	scheduled bool
}

// queuePeerSave records a change to save (p nil for a removal) and makes
// sure a save is on its way.
func (d *Driver) queuePeerSave(networkID string, p Peer, deleted bool) {
	s := &d.saves
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = map[string]map[netip.Addr]*Peer{}
	}
	if s.pending[networkID] == nil {
		s.pending[networkID] = map[netip.Addr]*Peer{}
	}
	if deleted {
		s.pending[networkID][p.IP] = nil
	} else {
		s.pending[networkID][p.IP] = &p
	}
	if !s.scheduled {
		s.scheduled = true
		d.background.Add(1)
		time.AfterFunc(peerSaveDelay, func() {
			defer d.background.Done()
			d.flushPeers()
		})
	}
}

// takePending hands over the changes of one network (all when networkID
// is ""), which the caller saves or supersedes.
func (d *Driver) takePending(networkID string) map[string]map[netip.Addr]*Peer {
	s := &d.saves
	s.mu.Lock()
	defer s.mu.Unlock()
	if networkID != "" {
		out := map[string]map[netip.Addr]*Peer{networkID: s.pending[networkID]}
		delete(s.pending, networkID)
		return out
	}
	out := s.pending
	s.pending, s.scheduled = nil, false
	return out
}

// flushPeers saves the changes waiting.
func (d *Driver) flushPeers() {
	d.saves.order.Lock()
	defer d.saves.order.Unlock()
	for id, changes := range d.takePending("") {
		err := d.savePeers(id, func(tx store.Tx, bucket string) error {
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
			d.log.WithError(err).WithField("network", id).Warn("could not save remote endpoints")
		}
	}
}

// announce tells this host's containers of new or moved remote addresses:
// one that talked to an address before has its old MAC cached, and would
// keep sending there.
func (d *Driver) announce(cfg *NetworkConfig, rs []netutil.Remote, log *logrus.Entry) {
	if err := d.links.AnnounceARP(cfg.BridgeName, rs); err != nil {
		log.WithError(err).Debug("could not announce every remote address")
	}
}

// recordPeers changes a network's remote endpoints in memory with change,
// unless the network is gone; it reports whether it was not. Caller holds
// d.peersMu.
func (d *Driver) recordPeers(networkID string, change func(map[netip.Addr]Peer) map[netip.Addr]Peer) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, live := d.networks[networkID]; !live {
		return false
	}
	d.peers[networkID] = change(d.peers[networkID])
	return true
}

// savePeers runs change on the network's bucket of remote endpoints, in
// one transaction, unless the network is gone from the store (a save
// behind a removal writes nothing). A network still saved in the old
// one-record form is instead saved whole from memory (which already has
// the change), and the old record goes. Caller holds d.saves.order.
func (d *Driver) savePeers(networkID string, change func(tx store.Tx, bucket string) error) error {
	d.mu.Lock()
	var all []Peer
	legacy := d.legacyPeers[networkID]
	if legacy {
		for _, p := range d.peers[networkID] {
			all = append(all, p)
		}
	}
	d.mu.Unlock()
	bucket := peersBucket(networkID)
	err := d.store.Update(func(tx store.Tx) error {
		if _, err := tx.Get(bucketNetworks, networkID); errors.Is(err, store.ErrNotFound) {
			return nil
		}
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
		return tx.Delete(bucketPeers, networkID)
	})
	if err == nil && legacy {
		d.mu.Lock()
		delete(d.legacyPeers, networkID)
		d.mu.Unlock()
	}
	return err
}

// programPeers makes the VXLAN device's entries exactly want and says how
// many it had to change.
func (d *Driver) programPeers(cfg *NetworkConfig, want map[netip.Addr]Peer) (int, error) {
	have, err := d.links.Remotes(cfg.VXLAN)
	if err != nil {
		return 0, err
	}
	var errs []error
	fixed := 0
	got := map[netip.Addr]netutil.Remote{}
	for _, r := range have {
		got[r.IP] = r
		if _, ok := want[r.IP]; !ok {
			fixed++
			errs = append(errs, d.links.DelRemote(cfg.VXLAN, r))
		}
	}
	var set []netutil.Remote
	for ip, p := range want {
		if r, ok := got[ip]; ok && r.MAC.String() == p.MAC && r.VTEP == p.VTEP {
			continue
		}
		set = append(set, p.remote())
	}
	errs = append(errs, d.links.SetRemotes(cfg.VXLAN, set))
	return fixed + len(set), errors.Join(errs...)
}

// loadPeers reads the remote endpoints last known for each network: a
// bucket of records per cluster network, or an older version's one record.
// Caller has loaded d.networks.
func (d *Driver) loadPeers(tx store.Tx) error {
	err := store.ForEachJSON(tx, bucketPeers, func(id string, list *[]Peer) error {
		m := map[netip.Addr]Peer{}
		for _, p := range *list {
			m[p.IP] = p
		}
		d.peers[id], d.legacyPeers[id] = m, true
		d.nameIdx.setPeers(id, m)
		return nil
	})
	if err != nil {
		return err
	}
	for id, n := range d.networks {
		if n.Config.Cluster == "" || d.legacyPeers[id] {
			continue
		}
		m := map[netip.Addr]Peer{}
		if err := store.ForEachJSON(tx, peersBucket(id), func(_ string, p *Peer) error {
			m[p.IP] = *p
			return nil
		}); err != nil {
			return err
		}
		d.peers[id] = m
		d.nameIdx.setPeers(id, m)
	}
	return nil
}
