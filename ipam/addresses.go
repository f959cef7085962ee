package ipam

import (
	"errors"
	"net/netip"

	api "github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/fault"
)

// RequestAddress implements api.Ipam.
func (a *Allocator) RequestAddress(req *api.RequestAddressRequest) (*api.RequestAddressResponse, error) {
	var want netip.Addr
	if req.Address != "" {
		var err error
		if want, err = parseAddr(req.Address); err != nil {
			return nil, err
		}
	}
	p, err := a.poolFor(req.PoolID)
	if err != nil {
		return nil, err
	}
	defer p.mu.Unlock()
	mac := req.Options[OptMACAddress]
	if req.Options[OptRequestAddressType] == GatewayAddressType {
		mac = gatewayKey
	}
	if off, ok := p.macs[mac]; ok && mac != "" && p.bits.isSet(off) && (!want.IsValid() || addrAt(p.subnet, off) == want) {
		// The same endpoint asks again: its first answer was lost.
		addr := netip.PrefixFrom(addrAt(p.subnet, off), p.subnet.Bits())
		a.log.WithFields(logrus.Fields{"pool": p.id(), "address": addr, "mac": mac}).Info("repeated request answered with the same address")
		return &api.RequestAddressResponse{Address: addr.String()}, nil
	}
	cluster := p.rec.Cluster != ""
	if cluster {
		// The first host's gateway request makes the cluster network, with
		// the user's --gateway (want), if this host found it absent; and no
		// address is handed out before the pool's claims are checked
		// (claims.go).
		gw := netip.Addr{}
		if mac == gatewayKey {
			gw = want
		}
		if err := a.ensureClusterNetwork(p, gw); err != nil {
			return nil, err
		}
		if err := a.reclaim(p); err != nil {
			return nil, err
		}
	}
	if cluster && mac == gatewayKey {
		// Every host carries the cluster's gateway on its bridge: it is not
		// claimed, and no other gateway is taken.
		gw, _ := netip.ParseAddr(p.rec.Gateway)
		if want.IsValid() && want != gw {
			return nil, errdefs.Invalid("cluster network %s has gateway %s: create it with --gateway %s (or none)", p.rec.Cluster, gw, gw)
		}
		want = gw
	}
	claims := cluster && mac != gatewayKey
	var off uint64
	switch {
	case want.IsValid():
		if off, err = p.offsetIn(want); err != nil {
			return nil, err
		}
		if p.bits.isSet(off) {
			return nil, errdefs.Conflict("address %s is already in use in %s", want, p.subnet)
		}
		if claims {
			if err := a.claimWanted(p, off, mac); err != nil {
				return nil, err
			}
		}
	case claims:
		if off, err = a.allocInCluster(p, mac); err != nil {
			return nil, err
		}
	default:
		var ok bool
		if off, ok = p.nextFreeHere(p.lo, p.hi); !ok {
			where := p.subnet.String()
			if p.rng.IsValid() {
				where = "IP range " + p.rng.String()
			}
			return nil, errdefs.Conflict("no free address left in %s", where)
		}
	}
	p.bits.set(off)
	if err := a.save(p, off, mac); err != nil {
		p.bits.clear(off)
		if cluster && mac != gatewayKey {
			addr := addrAt(p.subnet, off)
			_ = a.cluster.ReleaseAddress(p.rec.Cluster, addr, clusterOwner(mac, addr))
		}
		return nil, err
	}
	if mac != "" {
		if old, ok := p.macs[mac]; ok {
			delete(p.byOff, old)
		}
		p.macs[mac], p.byOff[off] = off, mac
	}
	if name := req.Options[OptEndpointName]; name != "" && cluster {
		p.setName(addrAt(p.subnet, off), name)
	}
	p.settle()
	a.fault.At(fault.RequestAddressSaved)
	addr := netip.PrefixFrom(addrAt(p.subnet, off), p.subnet.Bits())
	a.log.WithFields(logrus.Fields{"pool": p.id(), "address": addr, "type": req.Options[OptRequestAddressType]}).Debug("address allocated")
	return &api.RequestAddressResponse{Address: addr.String()}, nil
}

// ReleaseAddress implements api.Ipam. Releasing a free address, or one of a
// pool that is gone, succeeds: dockerd never retries a failed release.
func (a *Allocator) ReleaseAddress(req *api.ReleaseAddressRequest) error {
	addr, err := parseAddr(req.Address)
	if err != nil {
		return err
	}
	p, err := a.poolFor(req.PoolID)
	if errdefs.IsNotFound(err) {
		a.log.WithFields(logrus.Fields{"pool": req.PoolID, "address": addr}).Debug("release in unknown pool ignored")
		return nil
	}
	if err != nil {
		return err
	}
	defer p.mu.Unlock()
	if !p.subnet.Contains(addr) {
		return errdefs.Invalid("address %s is not in subnet %s", addr, p.subnet)
	}
	off, _ := offsetOf(p.subnet, addr)
	if !p.bits.isSet(off) {
		return nil
	}
	if p.rec.Cluster != "" && p.byOff[off] != gatewayKey {
		// The claim goes first: an address released here but still claimed
		// would be lost to every host, one claimed nowhere but set here is
		// only this host's until the next release.
		if err := a.cluster.ReleaseAddress(p.rec.Cluster, addr, clusterOwner(p.byOff[off], addr)); err != nil {
			if !errors.Is(err, cluster.ErrUnavailable) {
				return clusterErr(err)
			}
			// dockerd never retries a failed release: the address goes
			// here now, and its claim at the pool's next reclaim, which
			// releases this host's claims for addresses it does not hold
			// (the reconcile loop retries it until etcd answers).
			p.reclaimed = false
			a.log.WithError(err).WithFields(logrus.Fields{"pool": p.id(), "address": addr}).
				Warn("address released here; its claim in the cluster goes when etcd answers")
		}
	}
	delete(p.conflicts, addr)
	p.setName(addr, "")
	p.bits.clear(off)
	if err := a.save(p, off, ""); err != nil {
		p.bits.set(off)
		return err
	}
	if mac, ok := p.byOff[off]; ok {
		delete(p.macs, mac)
		delete(p.byOff, off)
	}
	p.settle()
	a.fault.At(fault.ReleaseAddressSaved)
	a.log.WithFields(logrus.Fields{"pool": p.id(), "address": addr}).Debug("address released")
	return nil
}
