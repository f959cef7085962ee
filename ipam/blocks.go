package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/errdefs"
)

// A cluster pool hands out an address only once the cluster granted this
// host its claim (one create-if-absent transaction). What keeps that to a
// small constant number of round trips whatever the fill level, as in
// Calico's IPAM, is where a host looks:
//
//   - The subnet is cut in blocks of 1<<blockBits addresses, the same on
//     every host. A host claims a block's affinity (one compare-and-swap)
//     and hands out addresses from its own blocks first, so hosts seldom
//     try an address another has just taken.
//   - The pool knows the addresses other hosts hold and the blocks'
//     affinities as of its last list (at reclaim, and again after a claim
//     that lost: one round trip that reads both), and never tries an
//     address it knows taken.
//   - When its blocks are full and no block is free, the host takes a free
//     address from another host's block (the claim decides).
//   - A request tries at most maxClaimTries addresses; each that another
//     host took first is followed by one list. A request that lost every
//     try (hosts taking the last free addresses of a network at once)
//     fails with a conflict, and Docker's retry asks again.
//
// So a request costs one round trip in the common case, one more when it
// opens a block, and at most 2*maxClaimTries+1 in all.
const maxClaimTries = 4

// blockBitsOf sizes a subnet's blocks: 16 blocks for small subnets, 64
// addresses for large ones, never fewer than 4 addresses.
func blockBitsOf(subnet netip.Prefix) uint {
	host := subnet.Addr().BitLen() - subnet.Bits()
	return uint(min(max(host-4, 2), 6))
}

// learn replaces the pool's knowledge of other hosts' addresses and of the
// blocks' affinities with view. Caller holds p.mu.
func (p *pool) learn(view cluster.Allocation, node string, inUse []netip.Addr) {
	p.elsewhere = map[uint64]bool{}
	mark := func(addr netip.Addr) {
		if off, err := p.offsetIn(addr); err == nil && !p.bits.isSet(off) {
			p.elsewhere[off] = true
		}
	}
	for _, addr := range p.remote {
		mark(addr)
	}
	for _, addr := range inUse {
		mark(addr)
	}
	for addr, cl := range view.Claims {
		if cl.Node != node {
			mark(addr)
		}
	}
	p.blocks = map[uint64]string{}
	for first, host := range view.Blocks {
		if off, ok := offsetOf(p.subnet, first); ok && p.subnet.Contains(first) {
			p.blocks[off>>p.blockBits] = host
		}
	}
}

// blockSpan is the part of block b that may be handed out.
func (p *pool) blockSpan(b uint64) (lo, hi uint64) {
	return max(b<<p.blockBits, p.lo), min((b+1)<<p.blockBits-1, p.hi)
}

// claimWanted claims the address at off, which the caller asked for by
// name: another host's claim is a conflict naming it. Caller holds p.mu.
func (a *Allocator) claimWanted(p *pool, off uint64, mac string) error {
	addr := addrAt(p.subnet, off)
	ok, holder, err := a.claim(p, off, mac)
	if err != nil {
		return err
	}
	if !ok {
		p.elsewhere[off] = true
		return errdefs.Conflict("address %s of cluster network %s is in use on host %s", addr, p.rec.Cluster, holder)
	}
	return nil
}

// claim claims the address at off, free in the pool, for mac. A claim of
// this host's already there for another owner is adopted: the pool does
// not hold the address, so the claim is one whose answer was lost (etcd
// applied it after the call timed out) or one a release still to be
// retried leaves; passing over it would leave the address unusable, and
// every request after would meet it again. Caller holds p.mu.
func (a *Allocator) claim(p *pool, off uint64, mac string) (ok bool, holder string, err error) {
	addr := addrAt(p.subnet, off)
	owner := clusterOwner(mac, addr)
	ok, holder, err = a.cluster.ClaimAddress(p.rec.Cluster, addr, owner)
	if err == nil && !ok && holder == a.cluster.Node() {
		a.log.WithFields(logrus.Fields{"pool": p.id(), "address": addr}).Info("adopting this host's earlier claim of an address it does not hold")
		ok, err = a.cluster.AdoptClaim(p.rec.Cluster, addr, owner)
	}
	if err != nil {
		return false, "", clusterErr(err)
	}
	return ok, holder, nil
}

// allocInCluster picks a free address of a cluster pool and claims it for
// this host (see above). Caller holds p.mu.
func (a *Allocator) allocInCluster(p *pool, mac string) (uint64, error) {
	net := p.rec.Cluster
	log := a.log.WithFields(logrus.Fields{"pool": p.id(), "cluster_network": net})
	refreshed := false
	for tries := 0; tries < maxClaimTries; {
		off, ok, err := a.candidate(p)
		if err != nil {
			return 0, err
		}
		if !ok {
			if refreshed || len(p.elsewhere) == 0 {
				return 0, errdefs.Conflict("no free address left in cluster network %s", net)
			}
			// Addresses other hosts held may have been released since.
			if err := a.refresh(p); err != nil {
				return 0, err
			}
			refreshed = true
			continue
		}
		addr := addrAt(p.subnet, off)
		if a.inUseHas(net, addr) {
			// Another host's container has it, whatever etcd says (its
			// claim gone with etcd's data): not a try, and not handed out.
			log.WithField("address", addr).Debug("address in use on another host though unclaimed; skipped")
			p.elsewhere[off] = true
			continue
		}
		tries++
		ok, holder, err := a.claim(p, off, mac)
		if err != nil {
			return 0, err
		}
		if ok {
			return off, nil
		}
		log.WithFields(logrus.Fields{"address": addr, "holder": holder}).Debug("address taken on another host since the last list; listing again")
		p.elsewhere[off] = true
		if err := a.refresh(p); err != nil {
			return 0, err
		}
		refreshed = true
	}
	return 0, errdefs.Conflict("cluster network %s: other hosts took each of the %d addresses this host tried; try again", net, maxClaimTries)
}

// refresh reads the cluster network's claims and affinities again. Caller
// holds p.mu.
func (a *Allocator) refresh(p *pool) error {
	view, err := a.cluster.AllocationOf(p.rec.Cluster)
	if err != nil {
		return clusterErr(err)
	}
	p.learn(view, a.cluster.Node(), a.inUseOf(p.rec.Cluster))
	return nil
}

// candidate is the address to try next: the lowest free one in this host's
// blocks; else the lowest of a block no host has, whose affinity it claims
// first; else the lowest free one anywhere. Caller holds p.mu.
func (a *Allocator) candidate(p *pool) (uint64, bool, error) {
	node := a.cluster.Node()
	firstBlock, lastBlock := p.lo>>p.blockBits, p.hi>>p.blockBits
	// This host's blocks, from the lowest: a few, whatever the subnet's
	// size (an IPv6 /64 has 2^58 blocks: they are never enumerated).
	var own []uint64
	for b, host := range p.blocks {
		if host == node && b >= firstBlock && b <= lastBlock {
			own = append(own, b)
		}
	}
	slices.Sort(own)
	for _, b := range own {
		if off, ok := p.nextFreeHere(p.blockSpan(b)); ok {
			return off, true, nil
		}
	}
	if wait := time.Until(p.holdUntil); wait > 0 {
		return 0, false, fmt.Errorf("cluster network %s: etcd lost its data and the hosts are claiming their addresses again; "+
			"this host hands out addresses of its own blocks only, and has none free, for %s more: try again then", p.rec.Cluster, wait.Round(time.Second))
	}
	for b := firstBlock; b <= lastBlock; b++ {
		if _, taken := p.blocks[b]; taken {
			continue
		}
		off, ok := p.nextFreeHere(p.blockSpan(b))
		if !ok {
			continue
		}
		first := addrAt(p.subnet, b<<p.blockBits)
		won, holder, err := a.cluster.ClaimBlock(p.rec.Cluster, first)
		if err != nil {
			return 0, false, clusterErr(err)
		}
		if won {
			holder = node
		}
		p.blocks[b] = holder
		if won {
			a.log.WithFields(logrus.Fields{"pool": p.id(), "block": netip.PrefixFrom(first, first.BitLen()-int(p.blockBits))}).Debug("address block claimed for this host")
			return off, true, nil
		}
		break // the view is stale: take any free address this time
	}
	off, ok := p.nextFreeHere(p.lo, p.hi)
	return off, ok, nil
}
