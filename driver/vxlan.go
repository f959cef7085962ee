package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"

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
	for ip, p := range want {
		if o, ok := old[ip]; !ok || o.MAC != p.MAC {
			d.announce(cfg, p, log)
		}
	}
	if !d.recordPeers(cfg.ID, func(m map[netip.Addr]Peer) map[netip.Addr]Peer { return want }) {
		return
	}
	err := d.savePeers(cfg.ID, func(tx store.Tx, bucket string) error {
		stored := map[string][]byte{}
		if err := tx.ForEach(bucket, func(k string, v []byte) error { stored[k] = bytes.Clone(v); return nil }); err != nil {
			return err
		}
		for ip, p := range want {
			b, _ := json.Marshal(p)
			k := ip.String()
			if !bytes.Equal(stored[k], b) {
				if err := tx.Put(bucket, k, b); err != nil {
					return err
				}
			}
			delete(stored, k)
		}
		for k := range stored {
			if err := tx.Delete(bucket, k); err != nil {
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
// programmed or removed, one record saved, whatever the number of peers.
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
	case deleted && (!had || old.Node != p.Node), !deleted && had && old == p:
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
		if err := d.links.SetRemote(cfg.VXLAN, p.remote()); err != nil {
			log.WithError(err).WithField("address", p.IP).Warn("could not program a remote endpoint; reconcile will retry")
		}
		if !had || old.MAC != p.MAC {
			d.announce(cfg, p, log)
		}
	}
	live := d.recordPeers(cfg.ID, func(m map[netip.Addr]Peer) map[netip.Addr]Peer {
		if m == nil {
			m = map[netip.Addr]Peer{}
		}
		if deleted {
			delete(m, p.IP)
		} else {
			m[p.IP] = p
		}
		return m
	})
	if !live {
		return
	}
	err := d.savePeers(cfg.ID, func(tx store.Tx, bucket string) error {
		if deleted {
			return tx.Delete(bucket, p.IP.String())
		}
		return store.PutJSON(tx, bucket, p.IP.String(), p)
	})
	if err != nil {
		log.WithError(err).WithField("address", p.IP).Warn("could not save a remote endpoint")
	}
}

// announce tells this host's containers of a new or moved remote address:
// one that talked to the address before has its old MAC cached, and would
// keep sending there.
func (d *Driver) announce(cfg *NetworkConfig, p Peer, log *logrus.Entry) {
	if err := d.links.AnnounceARP(cfg.BridgeName, p.IP, p.remote().MAC); err != nil {
		log.WithError(err).WithField("address", p.IP).Debug("could not announce a remote address")
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
// one transaction. A network still saved in the old one-record form is
// instead saved whole from memory (which already has the change), and the
// old record goes. Caller holds d.peersMu.
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
	for ip, p := range want {
		if r, ok := got[ip]; ok && r.MAC.String() == p.MAC && r.VTEP == p.VTEP {
			continue
		}
		fixed++
		errs = append(errs, d.links.SetRemote(cfg.VXLAN, p.remote()))
	}
	return fixed, errors.Join(errs...)
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
	}
	return nil
}
