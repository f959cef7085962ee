package ipam

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/store"
)

// OptCluster is the IPAM option (--ipam-opt mynet.cluster=NAME) that makes
// a pool a cluster network's: its addresses are claimed cluster-wide.
const OptCluster = "mynet.cluster"

// clusterAPI is the part of cluster.Client the allocator uses.
type clusterAPI interface {
	LookupNetwork(name string) (cluster.NetworkSpec, bool, error)
	EnsureNetwork(name string, subnet netip.Prefix, gateway netip.Addr, port int) (cluster.NetworkSpec, error)
	SettleSubnet6(name string, subnet netip.Prefix, gateway netip.Addr) (cluster.NetworkSpec, error)
	EnsureNetwork6(name string, subnet netip.Prefix, gateway netip.Addr, port int) (cluster.NetworkSpec, error)
	ClaimAddress(net string, ip netip.Addr, owner string) (ok bool, holder string, err error)
	AdoptClaim(net string, ip netip.Addr, owner string) (bool, error)
	ReleaseAddress(net string, ip netip.Addr, owner string) error
	ClaimBlock(net string, first netip.Addr) (ok bool, holder string, err error)
	AllocationOf(net string) (cluster.Allocation, error)
	JoinNetwork(name string) error
	LeaveNetwork(name string) (bool, error)
	Node() string
}

var _ clusterAPI = (*cluster.Client)(nil)

// ClusterNetwork is what the driver learns from the allocator about a
// cluster network's pool.
type ClusterNetwork struct {
	Name    string
	Gateway netip.Addr
	VNI     uint32
	Port    int // the VXLAN port; 0: IANA's (cluster.NetworkSpec.Port)
}

// ClusterOf reports whether subnet in space is a cluster network's pool,
// and which: the driver's way to learn that a network is a cluster
// network, since Docker gives it only the subnet.
func (a *Allocator) ClusterOf(space string, subnet netip.Prefix) (ClusterNetwork, bool) {
	if space == "" {
		space = LocalSpace
	}
	a.mu.Lock()
	p := a.pools[poolKey(space, subnet.Masked())]
	a.mu.Unlock()
	if p == nil {
		return ClusterNetwork{}, false
	}
	// Never p.mu: the driver asks while the pool may wait on etcd.
	if c := p.cnet.Load(); c != nil {
		return *c, true
	}
	return ClusterNetwork{}, false
}

// EndpointName is the container name Docker gave with the address of the
// cluster network's pool ("" when none: an older engine, or a restart
// since).
func (a *Allocator) EndpointName(clusterNet string, addr netip.Addr) string {
	var p *pool
	a.mu.Lock()
	for _, q := range a.pools {
		if q.rec.Cluster == clusterNet && q.subnet.Contains(addr) {
			p = q
			break
		}
	}
	a.mu.Unlock()
	if p == nil {
		return ""
	}
	p.namesMu.Lock()
	defer p.namesMu.Unlock()
	return p.names[addr]
}

// setName records (or, with "", forgets) the container name of addr.
func (p *pool) setName(addr netip.Addr, name string) {
	p.namesMu.Lock()
	defer p.namesMu.Unlock()
	if name == "" {
		delete(p.names, addr)
		return
	}
	if p.names == nil {
		p.names = map[netip.Addr]string{}
	}
	p.names[addr] = name
}

// publishCluster makes the pool's cluster network, as its record has it,
// what ClusterOf answers. Caller holds p.mu, or is making p.
func (p *pool) publishCluster() {
	if p.rec.Cluster == "" {
		return
	}
	gw, _ := netip.ParseAddr(p.rec.Gateway)
	p.cnet.Store(&ClusterNetwork{Name: p.rec.Cluster, Gateway: gw, VNI: p.rec.VNI, Port: p.rec.Port})
}

// clusterErr turns the cluster's answers into the plugin's error kinds: a
// refusal (another subnet, a taken address) is the caller's to fix; a store
// that does not answer is the operator's.
func clusterErr(err error) error {
	switch {
	case err == nil:
		return nil
	case cluster.IsConflict(err):
		return errdefs.Invalid("%v", err)
	case errors.Is(err, cluster.ErrUnavailable):
		return fmt.Errorf("%w; cluster networks cannot change until it is back (local networks are not affected)", err)
	default:
		return err
	}
}

// clusterPool fills in a cluster network's record from the cluster: the
// first host's subnet and the shared gateway and VNI. For a network the
// cluster does not have yet the record has this host's subnet and no VNI:
// the configuration is made at the gateway's RequestAddress, which carries
// the user's --gateway (ensureClusterNetwork).
//
// p.rec.Cluster is fixed with the pool; its Gateway and VNI are read under
// p.mu.
func (a *Allocator) clusterPool(name string, subnet, rng netip.Prefix, v6 bool) (poolRecord, error) {
	if a.cluster == nil {
		return poolRecord{}, errdefs.Invalid("--ipam-opt %s=%s: this mynet runs without --cluster-store, so it has no cluster networks", OptCluster, name)
	}
	// This host has the network from before the configuration is read, so
	// that no other host's removal deletes it meanwhile; a refusal takes
	// the record back.
	if err := a.cluster.JoinNetwork(name); err != nil {
		return poolRecord{}, clusterErr(err)
	}
	spec := a.clusterSpec
	if v6 {
		spec = a.clusterSpec6
	}
	rec, err := spec(name, subnet)
	if err != nil {
		if a.hasClusterPool(name) {
			return poolRecord{}, err // the record is that pool's
		}
		if _, lerr := a.cluster.LeaveNetwork(name); lerr != nil {
			a.log.WithError(lerr).WithField("cluster_network", name).Warn("could not take back this host's record of the network")
		}
		return poolRecord{}, err
	}
	return rec, nil
}

// hasClusterPool reports whether this host has a pool of the cluster
// network.
func (a *Allocator) hasClusterPool(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.pools {
		if p.rec.Cluster == name {
			return true
		}
	}
	return false
}

// clusterSpec is the pool record of a cluster network as the cluster has
// it, or a new one's (no VNI yet) when the cluster has none.
func (a *Allocator) clusterSpec(name string, subnet netip.Prefix) (poolRecord, error) {
	_, found, err := a.cluster.LookupNetwork(name)
	if err != nil {
		return poolRecord{}, clusterErr(err)
	}
	if !found && subnet.IsValid() {
		if !subnet.Addr().Is4() {
			return poolRecord{}, errdefs.Invalid("cluster network %s does not exist yet: the first host must give its IPv4 --subnet", name)
		}
		// Created at the gateway's request, with the gateway asked for.
		return poolRecord{Space: LocalSpace, Subnet: subnet.Masked().String(), Cluster: name}, nil
	}
	// An existing network (the subnet is checked), or a new one without
	// --subnet: created now, with a subnet of the cluster's default pool
	// and its first address as gateway (of hosts creating it at once, all
	// get the winner's).
	spec, err := a.cluster.EnsureNetwork(name, subnet, netip.Addr{}, 0) // checks the subnet
	if err != nil {
		return poolRecord{}, clusterErr(err)
	}
	return poolRecord{Space: LocalSpace, Subnet: spec.Subnet.String(), Cluster: name, Gateway: spec.Gateway.String(), VNI: spec.VNI, Port: spec.Port}, nil
}

// clusterSpec6 is the pool record of a cluster network's IPv6 pool: the
// cluster's IPv6 subnet; or subnet, settled at the gateway's request (no
// VNI until then), when the cluster has none yet; or, with no subnet
// either, one of the cluster's default IPv6 pool, settled now. Docker asks
// for a dual-stack network's IPv4 pool and gateway first, so the network
// is there; a network this host has no IPv4 pool of is IPv6-only (Only6),
// made by its IPv6 pool.
func (a *Allocator) clusterSpec6(name string, subnet netip.Prefix) (poolRecord, error) {
	only6 := !a.hasClusterPool4(name)
	spec, found, err := a.cluster.LookupNetwork(name)
	rec := func(spec cluster.NetworkSpec) poolRecord {
		return poolRecord{Space: LocalSpace, V6: true, Only6: only6, Subnet: spec.Subnet6.String(), Cluster: name,
			Gateway: spec.Gateway6.String(), VNI: spec.VNI, Port: spec.Port}
	}
	switch {
	case err != nil:
		return poolRecord{}, clusterErr(err)
	case !found && !only6:
		return poolRecord{}, errdefs.Invalid("cluster network %s has no configuration in the cluster (it went since its IPv4 pool was made here): try again", name)
	case !found && subnet.IsValid():
		// Created at the gateway's request, with the gateway asked for.
		return poolRecord{Space: LocalSpace, V6: true, Only6: true, Subnet: subnet.Masked().String(), Cluster: name}, nil
	case !found:
		spec, err := a.cluster.EnsureNetwork6(name, netip.Prefix{}, netip.Addr{}, 0)
		if err != nil {
			return poolRecord{}, clusterErr(err)
		}
		return rec(spec), nil
	case only6 && spec.Subnet.IsValid():
		return poolRecord{}, errdefs.Invalid("cluster network %s has IPv4 subnet %s: it is not IPv6-only; create it with --subnet %s too, without enable_ipv4=false", name, spec.Subnet, spec.Subnet)
	case spec.Subnet6.IsValid() && subnet.IsValid() && subnet.Masked() != spec.Subnet6:
		return poolRecord{}, errdefs.Invalid("cluster network %s has IPv6 subnet %s; this host asked for %s: create it with --subnet %s", name, spec.Subnet6, subnet, spec.Subnet6)
	case spec.Subnet6.IsValid():
		return rec(spec), nil
	case !subnet.IsValid():
		// A subnet of the cluster's default IPv6 pool, settled now, with
		// its first address as the gateway (of hosts doing this at once,
		// all get the winner's).
		if spec, err = a.cluster.SettleSubnet6(name, netip.Prefix{}, netip.Addr{}); err != nil {
			return poolRecord{}, clusterErr(err)
		}
		return rec(spec), nil
	}
	return poolRecord{Space: LocalSpace, V6: true, Subnet: subnet.Masked().String(), Cluster: name}, nil
}

// hasClusterPool4 reports whether this host has an IPv4 pool of the
// cluster network.
func (a *Allocator) hasClusterPool4(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.pools {
		if p.rec.Cluster == name && !p.rec.V6 {
			return true
		}
	}
	return false
}

// ensureIPv6 makes the cluster's configuration of an IPv6 pool's network
// what the pool has: an IPv6-only network made (or checked), or a
// dual-stack one's IPv6 subnet settled.
func (a *Allocator) ensureIPv6(p *pool, gateway netip.Addr, port int) (cluster.NetworkSpec, error) {
	if p.rec.Only6 {
		return a.cluster.EnsureNetwork6(p.rec.Cluster, p.subnet, gateway, port)
	}
	return a.cluster.SettleSubnet6(p.rec.Cluster, p.subnet, gateway)
}

// ensureClusterNetwork gives a pool whose cluster network this host found
// absent the cluster's configuration, creating it with gateway (zero: the
// subnet's first address) if it is still absent; a host that lost the race
// to create it gets the winner's, and a gateway that differs is refused.
// Caller holds p.mu.
func (a *Allocator) ensureClusterNetwork(p *pool, gateway netip.Addr) error {
	if p.rec.VNI != 0 {
		return nil
	}
	var spec cluster.NetworkSpec
	var err error
	if p.rec.V6 {
		spec, err = a.ensureIPv6(p, gateway, 0)
	} else {
		spec, err = a.cluster.EnsureNetwork(p.rec.Cluster, p.subnet, gateway, 0)
	}
	if err != nil {
		return clusterErr(err)
	}
	rec := p.rec
	rec.Gateway, rec.VNI, rec.Port = spec.Gateway.String(), spec.VNI, spec.Port
	if p.rec.V6 {
		rec.Gateway = spec.Gateway6.String()
	}
	if err := a.store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucketPools, p.key, rec) }); err != nil {
		return fmt.Errorf("save pool %s: %w", p.id(), err)
	}
	p.rec.Gateway, p.rec.VNI, p.rec.Port = rec.Gateway, rec.VNI, rec.Port
	p.publishCluster()
	return nil
}

// clusterOwner is what a claim is recorded under: the endpoint's MAC, or
// the address itself when Docker sent none.
func clusterOwner(mac string, addr netip.Addr) string {
	if mac != "" {
		return mac
	}
	return addr.String()
}

// nextFreeHere is the next offset from lo that is free in the bitmap and
// not known to be held by another host.
func (p *pool) nextFreeHere(lo, hi uint64) (uint64, bool) {
	for lo <= hi {
		off, ok := p.bits.nextFree(lo, hi)
		if !ok {
			return 0, false
		}
		if !p.elsewhere[off] {
			return off, true
		}
		lo = off + 1
	}
	return 0, false
}
