package clusternet

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
// address counts as taken for this host's allocations, until its record
// is back (it is a peer again) or its host, registered again, had settle
// to publish it and did not (then it goes). A host that is not registered
// (down while the data went) keeps its peers held until it comes back or
// is forgotten: its containers may run.
//
// A record refused for a reason that can change (no claim yet: a host
// publishes its records before or while it claims again; its node not
// registered yet; etcd not answering the check) is held too, and checked
// again: it is accepted once its claim is there (Table.HeldAddrs counts
// its address as taken meanwhile). If its record goes while a loss of
// etcd's data is suspected (lossSuspected), it stays held as a kept peer
// does; gone otherwise, its host removed it. A refusal that cannot change
// (the gateway, an address outside the subnet, a VTEP that is not the
// node's) is final.
//
// Table.Recheck, which the daemon calls every 2 s, settles what is held:
// one list of the network's records and one of its claims and nodes per
// network with something held.

// settle is how long a host registered again has to publish its records
// before a held peer of its goes.
const settle = 10 * time.Second

// lossWindow is how long after a loss of etcd's data a full list keeps
// the peers it lacks (Table.NoteDataLoss).
const lossWindow = 3 * settle

// heldPeer is a record kept or checked again.
type heldPeer struct {
	r       cluster.Peer
	peer    Peer      // programmed, its record vanished with the data (zero: none)
	refused string    // the reason its record, if any, was refused
	since   time.Time // when it was held
	alive   time.Time // when its host was first seen registered since
}

// held is a network's held records, by address.
type held struct {
	mu sync.Mutex
	m  map[netip.Addr]*heldPeer
	// rev and lost are the last deletion revision checked against the
	// epoch and its answer.
	rev  int64
	lost bool
}

func (h *held) put(hp *heldPeer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[netip.Addr]*heldPeer{}
	}
	h.m[hp.r.IP] = hp
}

// refuse holds a record refused for a reason that can change; a peer held
// for its vanished record stays programmed meanwhile.
func (h *held) refuse(r cluster.Peer, reason string) {
	h.mu.Lock()
	if old := h.m[r.IP]; old != nil {
		old.r, old.refused = r, reason
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	h.put(&heldPeer{r: r, refused: reason, since: time.Now()})
}

func (h *held) drop(ip netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, ip)
}

func (h *held) clear() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m = nil
}

// snapshot copies what is held.
func (h *held) snapshot() map[netip.Addr]heldPeer {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[netip.Addr]heldPeer, len(h.m))
	for ip, hp := range h.m {
		out[ip] = *hp
	}
	return out
}

func (h *held) has(ip netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.m[ip]
	return ok
}

func (h *held) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// refusedAddrs are the addresses of records held for a refusal, with
// nothing programmed.
func (h *held) refusedAddrs() []netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []netip.Addr
	for ip, hp := range h.m {
		if !hp.peer.IP.IsValid() {
			out = append(out, ip)
		}
	}
	return out
}

// changeable refusals are held and checked again.
func changeable(reason string) bool {
	return reason == "no_claim" || reason == "unregistered_node" || reason == "unchecked"
}

// lostWithData reports whether a peer's record's deletion came with etcd's
// data (the epoch was gone at its revision), or cannot be told apart.
func (n *Network) lostWithData(r cluster.Peer) bool {
	h := &n.held
	// A wipe deletes everything at one revision: one read answers all.
	h.mu.Lock()
	if r.Rev != 0 && r.Rev == h.rev {
		lost := h.lost
		h.mu.Unlock()
		return lost
	}
	h.mu.Unlock()
	present, err := n.t.cfg.Client.EpochAt(r.Rev)
	lost := err != nil || !present
	if err == nil {
		h.mu.Lock()
		h.rev, h.lost = r.Rev, lost
		h.mu.Unlock()
	}
	return lost
}

// holdVanished keeps a peer whose record went with etcd's data.
func (n *Network) holdVanished(p Peer) {
	n.held.put(&heldPeer{r: cluster.Peer{Network: n.cfg.Cluster, Node: p.Node, IP: p.IP, MAC: p.MAC, VTEP: p.VTEP}, peer: p, since: time.Now()})
	n.log.WithFields(logrus.Fields{"node": p.Node, "address": p.IP}).
		Info("peer's record lost with etcd's data: kept, and its address taken, until its host publishes it again")
}

// lossSuspected tells whether etcd may have lost its data around a list
// made at revision rev: a loss noted within lossWindow, or the epoch this
// host registered under not there at rev (a new, empty etcd or a wipe its
// check has not seen yet). Not registered yet: no.
func (n *Network) lossSuspected(rev int64) bool {
	if at := n.t.lastLoss(); !at.IsZero() && time.Since(at) < lossWindow {
		return true
	}
	if n.t.cfg.Client.Epoch() == "" {
		return false
	}
	present, err := n.t.cfg.Client.EpochAt(rev)
	return err != nil || !present
}

// recheck settles the network's held records (see above).
func (n *Network) recheck() {
	if n.held.count() == 0 {
		return
	}
	client := n.t.cfg.Client
	records, rev, err := client.Peers(n.cfg.Cluster)
	if err != nil {
		return
	}
	lost := n.lossSuspected(rev)
	f, err := n.listFacts()
	if err != nil {
		return
	}
	nodes, err := client.Nodes()
	if err != nil {
		return
	}
	registered := map[string]bool{}
	for _, node := range nodes {
		registered[node.Name] = true
	}
	byIP := map[netip.Addr]cluster.Peer{}
	for _, r := range records {
		byIP[r.IP] = r
	}
	now := time.Now()
	for ip, hp := range n.held.snapshot() {
		r, ok := byIP[ip]
		log := n.log.WithFields(logrus.Fields{"node": hp.r.Node, "address": ip})
		switch {
		case ok && r.Node != client.Node():
			// Its record is there: a peer like any other, if it passes.
			reason, detail := n.refusal(r, f)
			switch {
			case reason == "":
				n.held.drop(ip)
				n.applyPeer(peerOf(r), false)
				log.WithField("node", r.Node).Info("held peer's record accepted")
			case !changeable(reason):
				n.held.drop(ip)
				if hp.peer.IP.IsValid() { // a kept peer whose new record is refused for good
					n.applyPeer(hp.peer, true)
				}
				log.WithFields(logrus.Fields{"node": r.Node, "reason": reason}).Warn("held peer's record refused: " + detail)
			}
		case ok:
			n.held.drop(ip) // ours now
		case !hp.peer.IP.IsValid() && !lost:
			// The refused record went, removed by its host, and nothing
			// was programmed. (Gone with etcd's data, its address stays
			// taken as a kept peer's would, below.)
			n.held.drop(ip)
		case !registered[hp.r.Node]:
			// Its host is away: its containers may run. Kept.
		case hp.alive.IsZero():
			hp.alive = now
			n.held.put(&hp)
		case now.Sub(hp.alive) >= settle && now.Sub(hp.since) >= settle:
			n.held.drop(ip)
			if hp.peer.IP.IsValid() {
				n.applyPeer(hp.peer, true)
			}
			log.Info("held peer removed: its host, registered again, did not publish it")
		}
	}
}

// keepVanished adds to want the peers a full list (made at revision rev)
// lacks that must stay: those held already, and, when etcd lost its data
// since the network's last list, every one of them, held. Lost: the
// epoch this host registered under changed since that list, or a loss
// was noted (Table.NoteDataLoss), or the epoch was not there at rev: a
// new, empty etcd (or a wipe) the host's check has not seen yet, whose
// empty list must not read as every peer removed.
func (n *Network) keepVanished(want map[netip.Addr]Peer, listed map[netip.Addr]bool, rev int64) {
	epoch := n.t.cfg.Client.Epoch()
	lossAt := n.t.lastLoss()
	n.mu.Lock()
	prev := n.listEpoch
	n.listEpoch = epoch
	lost := (prev != "" && prev != epoch) || (!lossAt.IsZero() && time.Since(lossAt) < lossWindow)
	var missing []Peer
	for ip, p := range n.peers {
		if _, ok := want[ip]; !ok && !listed[ip] {
			missing = append(missing, p)
		}
	}
	n.mu.Unlock()
	if len(missing) > 0 && !lost {
		lost = n.lossSuspected(rev)
	}
	heldNow := n.held.snapshot()
	for _, p := range missing {
		hp, isHeld := heldNow[p.IP]
		switch {
		case isHeld && hp.peer.IP.IsValid():
			want[p.IP] = p
		case lost:
			want[p.IP] = p
			n.holdVanished(p)
		}
	}
}
