package driver

import (
	"errors"
	"net/netip"

	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/store"
	"github.com/sirupsen/logrus"
)

// setPeers programs the device to hold exactly want (reading back what it
// has, so an entry deleted by hand comes back), remembers want in memory
// and in the store, so a reboot while etcd is down still restores cross-host
// traffic.
func (d *Driver) setPeers(cfg *NetworkConfig, want map[netip.Addr]Peer, log *logrus.Entry) {
	d.peersMu.Lock()
	defer d.peersMu.Unlock()
	d.mu.Lock()
	old := d.peers[cfg.ID]
	d.mu.Unlock()
	if _, err := d.programPeers(cfg, want); err != nil {
		log.WithError(err).Warn("could not program every remote endpoint; reconcile will retry")
	}
	// A new or moved remote address is announced to this host's
	// containers: one that talked to the address before has its old MAC
	// cached, and would keep sending there.
	for ip, p := range want {
		if o, ok := old[ip]; ok && o.MAC == p.MAC {
			continue
		}
		if err := d.links.AnnounceARP(cfg.BridgeName, ip, p.remote().MAC); err != nil {
			log.WithError(err).WithField("address", ip).Debug("could not announce a remote address")
		}
	}
	list := make([]Peer, 0, len(want))
	for _, p := range want {
		list = append(list, p)
	}
	d.mu.Lock()
	_, live := d.networks[cfg.ID]
	if live {
		d.peers[cfg.ID] = want
	}
	d.mu.Unlock()
	if !live {
		return
	}
	if err := d.store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucketPeers, cfg.ID, list) }); err != nil {
		log.WithError(err).Warn("could not save the remote endpoints")
	}
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

// loadPeers reads the remote endpoints last known for each network.
func (d *Driver) loadPeers(tx store.Tx) error {
	return store.ForEachJSON(tx, bucketPeers, func(id string, list *[]Peer) error {
		m := map[netip.Addr]Peer{}
		for _, p := range *list {
			m[p.IP] = p
		}
		d.peers[id] = m
		return nil
	})
}
