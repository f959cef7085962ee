package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
)

// A cluster pool's addresses are this host's only while the cluster holds
// a claim of this host's for each. etcd may lose them (its data lost, or
// restored from an old backup), and a crash between a claim and the local
// save leaves a claim no endpoint holds. So before a cluster pool hands out
// an address after the host (re)registered, it reclaims: one list of the
// network's claims, then
//
//   - each address the pool holds whose claim is missing is claimed again
//     (after a wipe: all of them; otherwise none), and one that another
//     host's claim holds is a conflict, reported by Health until it is
//     resolved, never silently kept;
//   - each claim of this host's for an address the pool does not hold (the
//     crash between claim and save) is released;
//   - the marks of addresses held elsewhere, and the blocks' affinities,
//     are rebuilt from the list;
//   - the cluster network's configuration is made again if it is gone.

// ClusterConflict is an address this host holds whose cluster claim is
// another host's.
type ClusterConflict struct {
	Network string     `json:"network"`
	Address netip.Addr `json:"address"`
	Here    string     `json:"here"`   // this host, which holds it
	Holder  string     `json:"holder"` // the host whose claim the cluster has
}

func (c ClusterConflict) String() string {
	return fmt.Sprintf("address %s of cluster network %s is held by this host (%s) and claimed in the cluster by %s",
		c.Address, c.Network, c.Here, c.Holder)
}

// ClusterRegistered tells the allocator that this host registered in the
// cluster (at start, or after its lease was lost, as when etcd lost its
// data): every cluster pool reclaims now, and before it hands out its next
// address if that fails. remote are the addresses other hosts' endpoints
// had, by cluster network, as this host last knew them: until their hosts
// claim them again (after a wipe) nothing in the cluster says they are
// taken, so they count as held elsewhere.
//
// lost says etcd lost its data (the cluster's epoch changed): then each
// pool hands out addresses of its own blocks only for holdOff.
func (a *Allocator) ClusterRegistered(remote map[string][]netip.Addr, lost bool) {
	if a.cluster == nil {
		return
	}
	for _, p := range a.allPools() {
		if p.rec.Cluster == "" {
			continue
		}
		p.mu.Lock()
		p.reclaimed, p.remote = false, remote[p.rec.Cluster]
		if lost {
			p.holdUntil = time.Now().Add(holdOff)
		}
		if err := a.reclaim(p); err != nil {
			a.log.WithError(err).WithField("pool", p.id()).Warn("could not reclaim the pool's addresses; the next request tries again")
		}
		p.mu.Unlock()
	}
}

// RetryReclaims reclaims the cluster pools that could not (etcd did not
// answer), and finishes the releases etcd missed; the daemon calls it from
// its reconcile loop. It reports whether every cluster pool is reclaimed.
func (a *Allocator) RetryReclaims() bool {
	if a.cluster == nil {
		return true
	}
	done := true
	for _, p := range a.allPools() {
		if p.rec.Cluster == "" {
			continue
		}
		p.mu.Lock()
		if err := a.reclaim(p); err != nil {
			a.log.WithError(err).WithField("pool", p.id()).Debug("reclaim still fails")
			done = false
		}
		p.mu.Unlock()
	}
	return done
}

// ClusterConflicts lists the addresses this host holds whose claim another
// host has, by network and address.
func (a *Allocator) ClusterConflicts() []ClusterConflict {
	var out []ClusterConflict
	for _, p := range a.allPools() {
		p.mu.Lock()
		for ip, holder := range p.conflicts {
			out = append(out, ClusterConflict{Network: p.rec.Cluster, Address: ip, Here: a.cluster.Node(), Holder: holder})
		}
		p.mu.Unlock()
	}
	slices.SortFunc(out, func(x, y ClusterConflict) int {
		if c := strings.Compare(x.Network, y.Network); c != 0 {
			return c
		}
		return x.Address.Compare(y.Address)
	})
	return out
}

// reclaim brings the cluster's claims for a pool in line with what the pool
// holds (see above). Caller holds p.mu.
func (a *Allocator) reclaim(p *pool) error {
	if p.reclaimed {
		return nil
	}
	net, node := p.rec.Cluster, a.cluster.Node()
	log := a.log.WithFields(logrus.Fields{"pool": p.id(), "cluster_network": net})
	if err := a.cluster.JoinNetwork(net); err != nil { // gone with etcd's data, say
		return clusterErr(err)
	}
	if p.rec.VNI != 0 {
		gw, _ := netip.ParseAddr(p.rec.Gateway)
		// Gone with etcd's data, the network is made again as this host
		// has it, its VXLAN port too (a network made before mynet had a
		// port of its own keeps IANA's).
		port := p.rec.Port
		if port == 0 {
			port = cluster.IANAVXLANPort
		}
		var spec cluster.NetworkSpec
		var err error
		if p.rec.V6 {
			// An IPv6-only network is made again; a dual-stack one's IPv4
			// pool made it again first (allPools).
			spec, err = a.ensureIPv6(p, gw, port)
		} else {
			spec, err = a.cluster.EnsureNetwork(net, p.subnet, gw, port)
		}
		if err != nil {
			return clusterErr(err)
		}
		if spec.VXLANPort() != port {
			log.WithFields(logrus.Fields{"port_here": port, "port_cluster": spec.VXLANPort()}).
				Error("the cluster network's VXLAN port in the cluster is not the one this host uses; re-create the network on this host")
		}
		if spec.VNI != p.rec.VNI {
			log.WithFields(logrus.Fields{"vni_here": p.rec.VNI, "vni_cluster": spec.VNI}).
				Error("the cluster network's VNI in the cluster is not the one this host uses; re-create the network on this host")
		}
	}
	view, err := a.cluster.AllocationOf(net)
	if err != nil {
		return clusterErr(err)
	}
	claims := view.Claims
	conflicts := map[netip.Addr]string{}
	mine := map[uint64]bool{} // blocks with an address of this pool's
	var failed error
	p.bits.each(func(off uint64) {
		owner := p.byOff[off]
		if owner == gatewayKey || failed != nil {
			return
		}
		mine[off>>p.blockBits] = true
		addr := addrAt(p.subnet, off)
		want := clusterOwner(owner, addr)
		switch have, ok := claims[addr]; {
		case ok && have.Node == node && have.Owner == want:
			return
		case ok && have.Node == node:
			// This host's claim, made for the address's earlier holder
			// here (an older backup of etcd restored): made the present
			// one's, so that its release gives the address back.
			if _, err := a.cluster.AdoptClaim(net, addr, want); err != nil {
				failed = clusterErr(err)
			} else {
				log.WithField("address", addr).Info("address's claim made its present holder's again (etcd went back to an older claim)")
			}
			return
		case ok:
			conflicts[addr] = have.Node
			return
		}
		ok, holder, err := a.cluster.ClaimAddress(net, addr, want)
		switch {
		case err != nil:
			failed = clusterErr(err)
		case !ok:
			conflicts[addr] = holder
		default:
			log.WithField("address", addr).Info("address claimed again (its claim was missing from the cluster)")
		}
	})
	if failed != nil {
		return failed
	}
	if err := a.reclaimBlocks(p, view, mine); err != nil {
		return err
	}
	p.learn(view, node, a.inUseOf(net))
	for addr, cl := range claims {
		if off, err := p.offsetIn(addr); err != nil || cl.Node != node || p.bits.isSet(off) {
			continue
		}
		// This host's claim for an address it does not hold: a crash
		// between the claim and the local save, or a claim whose answer
		// was lost.
		if err := a.cluster.ReleaseAddress(net, addr, cl.Owner); err != nil {
			return clusterErr(err)
		}
		log.WithField("address", addr).Info("released a claim of this host's that no endpoint holds (left by a crash or a lost answer)")
	}
	for addr, holder := range conflicts {
		log.WithFields(logrus.Fields{"address": addr, "holder": holder}).
			Error("an address this host holds is claimed in the cluster by another host: two endpoints may have one address")
	}
	p.conflicts, p.reclaimed = conflicts, true
	return nil
}

// holdOff is how long after etcd lost its data a cluster pool hands out
// addresses of its own blocks only: the other hosts notice the loss
// within a second (their check of the cluster's epoch) and claim their
// addresses again within a round trip or two, and until they did nothing
// in etcd says those addresses are taken.
const holdOff = 5 * time.Second

// InUse is what the driver knows of other hosts' containers that the
// cluster may not show (after a loss of etcd's data: peers whose records
// are gone, records whose claims are not back yet, and a new empty etcd's
// claims are none at all): their addresses are never handed out. Its
// methods are called under a pool's lock: they must not call the
// allocator.
type InUse interface {
	// Addrs are every such address of a cluster network (read when a pool
	// reads the cluster's claims).
	Addrs(cluster string) []netip.Addr
	// Has tells whether addr is one (asked before each claim: whatever
	// etcd says, an address a peer has is not handed out).
	Has(cluster string, addr netip.Addr) bool
}

// SetInUse gives the allocator the driver's InUse.
func (a *Allocator) SetInUse(u InUse) { a.inUse.Store(&u) }

func (a *Allocator) inUseOf(cluster string) []netip.Addr {
	if u := a.inUse.Load(); u != nil {
		return (*u).Addrs(cluster)
	}
	return nil
}

func (a *Allocator) inUseHas(cluster string, addr netip.Addr) bool {
	u := a.inUse.Load()
	return u != nil && (*u).Has(cluster, addr)
}

// reclaimBlocks claims again the affinity of each block holding an address
// of the pool that has none in view (gone with etcd's data), and records
// the outcome in view. Caller holds p.mu.
func (a *Allocator) reclaimBlocks(p *pool, view cluster.Allocation, mine map[uint64]bool) error {
	for b := range mine {
		first := addrAt(p.subnet, b<<p.blockBits)
		if _, ok := view.Blocks[first]; ok {
			continue
		}
		won, holder, err := a.cluster.ClaimBlock(p.rec.Cluster, first)
		if err != nil {
			return clusterErr(err)
		}
		if won {
			holder = a.cluster.Node()
		}
		view.Blocks[first] = holder
	}
	return nil
}

// releaseLeftClaims gives back the cluster's claims of the addresses a
// cluster pool still held when Docker released it: no endpoint here holds
// them any more. (Swarm removes a node's network while the release of one
// of its endpoints' addresses is still on its way: that ReleaseAddress
// then finds no pool, and the claim was left in etcd for good.) With etcd
// not answering, what is left is logged, and `mynet cluster check` lists
// it. Caller holds p.mu.
func (a *Allocator) releaseLeftClaims(p *pool) {
	log := a.log.WithFields(logrus.Fields{"pool": p.id(), "cluster_network": p.rec.Cluster})
	p.bits.each(func(off uint64) {
		owner := p.byOff[off]
		if owner == gatewayKey {
			return
		}
		addr := addrAt(p.subnet, off)
		if err := a.cluster.ReleaseAddress(p.rec.Cluster, addr, clusterOwner(owner, addr)); err != nil {
			log.WithError(err).WithField("address", addr).Warn("could not release the claim of an address the released pool still held (mynet cluster check lists it)")
			return
		}
		log.WithField("address", addr).Info("released the claim of an address the released pool still held (its release came after the pool's)")
	})
}
