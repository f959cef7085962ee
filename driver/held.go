package driver

import (
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
)

// When etcd loses its data (see internal/cluster epoch.go), every record
// and claim of the cluster goes at once, and comes back only as each host
// notices, claims its addresses again and publishes its records again. The
// deletions say nothing of the containers, which still run. So a peer
// whose record vanished with the data is held: its entries stay, and its
// address counts as taken for this host's allocations (HeldAddrs), until
// its record is back (it is a peer again) or its host, registered again,
// had settle to publish it and did not (then it goes). A host that is not
// registered (down while the data went) keeps its peers held until it
// comes back or is forgotten: its containers may run.
//
// A record refused for a reason that can change (no claim yet: a host
// publishes its records before or while it claims again; its node not
// registered yet; etcd not answering the check) is held too, and checked
// again: it is accepted once its claim is there. A refusal that cannot
// change (the gateway, an address outside the subnet, a VTEP that is not
// the node's) is final.
//
// Recheck, which the daemon calls every 2 s, settles what is held: one
// list of the network's records and one of its claims and nodes per
// network with something held.

// settle is how long a host registered again has to publish its records
// before a held peer of its goes.
const settle = 10 * time.Second

// heldPeer is a record kept or rechecked.
type heldPeer struct {
	ep      cluster.Endpoint
	peer    Peer      // programmed, its record vanished with the data (zero: none)
	refused string    // the reason its record, if any, was refused
	since   time.Time // when it was held
	alive   time.Time // when its host was first seen registered since
}

// held is the driver's held records, by network ID and address.
type held struct {
	mu sync.Mutex
	m  map[string]map[netip.Addr]*heldPeer
	// rev and lost are the last deletion revision checked against the
	// epoch and its answer.
	rev  int64
	lost bool
}

func (h *held) put(networkID string, hp *heldPeer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]map[netip.Addr]*heldPeer{}
	}
	if h.m[networkID] == nil {
		h.m[networkID] = map[netip.Addr]*heldPeer{}
	}
	h.m[networkID][hp.ep.IP] = hp
}

// refuse holds a record refused for a reason that can change; a peer
// held for its vanished record stays programmed meanwhile.
func (h *held) refuse(networkID string, ep cluster.Endpoint, reason string) {
	h.mu.Lock()
	if old := h.m[networkID][ep.IP]; old != nil {
		old.ep, old.refused = ep, reason
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	h.put(networkID, &heldPeer{ep: ep, refused: reason, since: time.Now()})
}

func (h *held) drop(networkID string, ip netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m[networkID], ip)
	if len(h.m[networkID]) == 0 {
		delete(h.m, networkID)
	}
}

func (h *held) dropNetwork(networkID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, networkID)
}

// snapshot copies what is held of one network.
func (h *held) snapshot(networkID string) map[netip.Addr]heldPeer {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[netip.Addr]heldPeer{}
	for ip, hp := range h.m[networkID] {
		out[ip] = *hp
	}
	return out
}

func (h *held) networks() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for id := range h.m {
		out = append(out, id)
	}
	return out
}

// changeable refusals are held and checked again.
func changeable(reason string) bool {
	return reason == "no_claim" || reason == "unregistered_node" || reason == "unchecked"
}

// lostWithData reports whether a remote record's deletion came with etcd's
// data (the epoch was gone at its revision), or cannot be told apart.
func (d *Driver) lostWithData(ep cluster.Endpoint) bool {
	// A wipe deletes everything at one revision: one read answers all.
	d.held.mu.Lock()
	if ep.Rev != 0 && ep.Rev == d.held.rev {
		lost := d.held.lost
		d.held.mu.Unlock()
		return lost
	}
	d.held.mu.Unlock()
	present, err := d.cluster.Client.EpochAt(ep.Rev)
	lost := err != nil || !present
	if err == nil {
		d.held.mu.Lock()
		d.held.rev, d.held.lost = ep.Rev, lost
		d.held.mu.Unlock()
	}
	return lost
}

// holdVanished keeps a peer whose record went with etcd's data.
func (d *Driver) holdVanished(cfg *NetworkConfig, p Peer, log *logrus.Entry) {
	d.held.put(cfg.ID, &heldPeer{ep: cluster.Endpoint{Network: cfg.Cluster, Node: p.Node, IP: p.IP, MAC: p.MAC, VTEP: p.VTEP}, peer: p, since: time.Now()})
	log.WithFields(logrus.Fields{"node": p.Node, "address": p.IP}).
		Info("remote endpoint's record lost with etcd's data: kept, and its address taken, until its host publishes it again")
}

// HeldAddrs lists, by cluster network name, the addresses of records held
// for a refusal that can change: another host uses them, though the
// cluster does not say so yet. (Held peers are in RemotePeers.)
func (d *Driver) HeldAddrs() map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, id := range d.held.networks() {
		name := d.clusterNameOf(id)
		for ip, hp := range d.held.snapshot(id) {
			if !hp.peer.IP.IsValid() && name != "" {
				out[name] = append(out[name], ip)
			}
		}
	}
	return out
}

// HeldCount is how many records are held (status, tests).
func (d *Driver) HeldCount() int {
	n := 0
	for _, id := range d.held.networks() {
		n += len(d.held.snapshot(id))
	}
	return n
}

// Recheck settles the held records of every cluster network (see above).
func (d *Driver) Recheck() {
	for _, id := range d.held.networks() {
		d.mu.Lock()
		n := d.networks[id]
		var cfg NetworkConfig
		if n != nil {
			cfg = n.Config
		}
		d.mu.Unlock()
		if n == nil || cfg.Cluster == "" {
			d.held.dropNetwork(id)
			continue
		}
		d.recheckNetwork(&cfg)
	}
}

func (d *Driver) recheckNetwork(cfg *NetworkConfig) {
	log := d.log.WithFields(logrus.Fields{"network": cfg.ID[:min(12, len(cfg.ID))], "cluster_network": cfg.Cluster})
	eps, _, err := d.cluster.Client.Endpoints(cfg.Cluster)
	if err != nil {
		return
	}
	facts, err := d.listFacts(cfg)
	if err != nil {
		return
	}
	nodes, err := d.cluster.Client.Nodes()
	if err != nil {
		return
	}
	registered := map[string]bool{}
	for _, n := range nodes {
		registered[n.Name] = true
	}
	records := map[netip.Addr]cluster.Endpoint{}
	for _, ep := range eps {
		records[ep.IP] = ep
	}
	now := time.Now()
	for ip, hp := range d.held.snapshot(cfg.ID) {
		rec, ok := records[ip]
		switch {
		case ok && rec.Node != d.cluster.Client.Node():
			// Its record is there: a peer like any other, if it passes.
			reason, detail := d.refusal(cfg, rec, facts)
			switch {
			case reason == "":
				d.held.drop(cfg.ID, ip)
				d.applyPeer(cfg, peerOf(rec), false, log)
				log.WithFields(logrus.Fields{"node": rec.Node, "address": ip}).Info("held remote endpoint record accepted")
			case !changeable(reason):
				d.held.drop(cfg.ID, ip)
				if hp.peer.IP.IsValid() { // a kept peer whose new record is refused for good
					d.applyPeer(cfg, hp.peer, true, log)
				}
				log.WithFields(logrus.Fields{"node": rec.Node, "address": ip, "reason": reason}).Warn("held remote endpoint record refused: " + detail)
			}
		case ok:
			d.held.drop(cfg.ID, ip) // ours now
		case !hp.peer.IP.IsValid():
			d.held.drop(cfg.ID, ip) // the refused record went, and nothing was programmed
		case !registered[hp.ep.Node]:
			// Its host is away: its containers may run. Kept.
		case hp.alive.IsZero():
			hp.alive = now
			d.held.put(cfg.ID, &hp)
		case now.Sub(hp.alive) >= settle && now.Sub(hp.since) >= settle:
			d.held.drop(cfg.ID, ip)
			d.applyPeer(cfg, hp.peer, true, log)
			log.WithFields(logrus.Fields{"node": hp.ep.Node, "address": ip}).Info("held remote endpoint removed: its host, registered again, did not publish it")
		}
	}
}

// lossWindow is how long after a loss of etcd's data a full list keeps
// the peers it lacks (NoteDataLoss).
const lossWindow = 3 * settle

// NoteDataLoss tells the driver that etcd lost its data (the daemon's
// check): the lists that follow keep the peers they lack, held, rather
// than removing them.
func (d *Driver) NoteDataLoss() {
	d.mu.Lock()
	d.lossAt = time.Now()
	d.mu.Unlock()
}

// keepVanished adds to want the peers a full list lacks that must stay:
// those held already, and, when etcd lost its data since this network's
// last list (its epoch changed, or NoteDataLoss), every one of them, held.
func (d *Driver) keepVanished(cfg *NetworkConfig, want map[netip.Addr]Peer, listed map[netip.Addr]bool, log *logrus.Entry) {
	epoch := d.cluster.Client.Epoch()
	d.mu.Lock()
	old := d.peers[cfg.ID]
	prev := d.listEpochs[cfg.ID]
	d.listEpochs[cfg.ID] = epoch
	lost := (prev != "" && prev != epoch) || (!d.lossAt.IsZero() && time.Since(d.lossAt) < lossWindow)
	var missing []Peer
	for ip, p := range old {
		if _, ok := want[ip]; !ok && !listed[ip] {
			missing = append(missing, p)
		}
	}
	d.mu.Unlock()
	heldNow := d.held.snapshot(cfg.ID)
	for _, p := range missing {
		hp, isHeld := heldNow[p.IP]
		switch {
		case isHeld && hp.peer.IP.IsValid():
			want[p.IP] = p
		case lost:
			want[p.IP] = p
			d.holdVanished(cfg, p, log)
		}
	}
}
