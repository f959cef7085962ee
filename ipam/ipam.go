package ipam

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	api "github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/fault"
	"github.com/mynet/mynet/internal/store"
)

// Address spaces, as Docker names them.
const (
	LocalSpace  = "LocalDefault"
	GlobalSpace = "GlobalDefault"
)

// Request options libnetwork sends.
const (
	OptRequestAddressType = "RequestAddressType"
	GatewayAddressType    = "com.docker.network.gateway"
	// OptMACAddress carries the endpoint's MAC, which libnetwork sends
	// because GetCapabilities says RequiresMACAddress.
	OptMACAddress = "com.docker.network.endpoint.macaddress"
	// OptEndpointName is the container's name (Engine 29 and later).
	OptEndpointName = "com.docker.network.endpoint.name"
)

const (
	bucketPools = "ipam-pools"
	bucketBits  = "ipam-bits"
	bucketMACs  = "ipam-macs" // pool key + "@" + MAC -> host offset
)

// Config is what an Allocator needs.
type Config struct {
	Store store.Store
	// HostRoutes lists the prefixes routed on the host; default pools that
	// overlap one are skipped. Nil means no check.
	HostRoutes func() ([]netip.Prefix, error)
	// LocalPools and GlobalPools override DefaultLocalPools/DefaultGlobalPools.
	LocalPools, GlobalPools []PoolSet
	// Cluster claims the addresses of cluster networks' pools across hosts;
	// nil without --cluster-store.
	Cluster clusterAPI
	// Fault is the test-only crash hook (internal/fault); nil in production.
	Fault fault.Hook
	Log   *logrus.Entry
}

// Allocator implements Docker's IpamDriver.
type Allocator struct {
	store      store.Store
	hostRoutes func() ([]netip.Prefix, error)
	defaults   map[string][]PoolSet
	cluster    clusterAPI
	fault      fault.Hook
	log        *logrus.Entry
	// inUse lists, by cluster network, addresses other hosts' containers
	// have that the cluster's claims may not show (SetInUse); nil: none.
	inUse atomic.Pointer[InUse]

	// mu guards pools, and is never held while a pool's mu is taken: a
	// pool waiting on etcd holds up no other pool.
	mu    sync.Mutex
	pools map[string]*pool // poolKey(space, subnet) -> pool
}

var _ api.Ipam = (*Allocator)(nil)

// New loads the allocator's state from cfg.Store.
func New(cfg Config) (*Allocator, error) {
	a := &Allocator{
		store:      cfg.Store,
		hostRoutes: cfg.HostRoutes,
		defaults:   map[string][]PoolSet{LocalSpace: DefaultLocalPools, GlobalSpace: DefaultGlobalPools},
		cluster:    cfg.Cluster,
		fault:      cfg.Fault,
		log:        cfg.Log,
		pools:      map[string]*pool{},
	}
	if a.log == nil {
		a.log = logrus.NewEntry(logrus.StandardLogger())
	}
	if cfg.LocalPools != nil {
		a.defaults[LocalSpace] = cfg.LocalPools
	}
	if cfg.GlobalPools != nil {
		a.defaults[GlobalSpace] = cfg.GlobalPools
	}
	for space, sets := range a.defaults {
		for _, s := range sets {
			if err := s.validate(); err != nil {
				return nil, fmt.Errorf("default pools of %s: %w", space, err)
			}
		}
	}
	if err := a.load(); err != nil {
		return nil, fmt.Errorf("load IPAM state: %w", err)
	}
	return a, nil
}

// GetCapabilities implements api.Ipam.
func (a *Allocator) GetCapabilities() (*api.CapabilitiesResponse, error) {
	// With RequiresMACAddress, libnetwork sends each endpoint's MAC along
	// with RequestAddress, which makes a retried request idempotent.
	return &api.CapabilitiesResponse{RequiresMACAddress: true}, nil
}

// GetDefaultAddressSpaces implements api.Ipam.
func (a *Allocator) GetDefaultAddressSpaces() (*api.AddressSpacesResponse, error) {
	return &api.AddressSpacesResponse{LocalDefaultAddressSpace: LocalSpace, GlobalDefaultAddressSpace: GlobalSpace}, nil
}

// RequestPool implements api.Ipam.
func (a *Allocator) RequestPool(req *api.RequestPoolRequest) (*api.RequestPoolResponse, error) {
	space := req.AddressSpace
	if space == "" {
		space = LocalSpace
	}
	if _, ok := a.defaults[space]; !ok {
		return nil, errdefs.Invalid("unknown address space %q (want %s or %s)", space, LocalSpace, GlobalSpace)
	}
	var subnet, rng netip.Prefix
	var err error
	if req.Pool != "" {
		if subnet, err = parseSubnet("subnet", req.Pool, req.V6); err != nil {
			return nil, err
		}
	} else if req.SubPool != "" {
		return nil, errdefs.Invalid("an IP range (%s) needs a subnet", req.SubPool)
	} else if req.V6 && req.Options[OptCluster] == "" { // a cluster network's: the cluster's
		return nil, errdefs.Invalid("mynet has no default IPv6 pool: give the network an IPv6 --subnet")
	}
	if req.SubPool != "" {
		if rng, err = netip.ParsePrefix(req.SubPool); err != nil {
			return nil, errdefs.Invalid("invalid IP range %q: %v", req.SubPool, err)
		}
		rng = rng.Masked()
		if rng.Addr().Is6() != req.V6 || rng.Bits() < subnet.Bits() || !subnet.Contains(rng.Addr()) {
			return nil, errdefs.Invalid("IP range %s is not inside subnet %s", rng, subnet)
		}
	}

	var clusterRec *poolRecord
	if name := req.Options[OptCluster]; name != "" {
		if space != LocalSpace {
			return nil, errdefs.Invalid("cluster network %s: pools of cluster networks are in %s", name, LocalSpace)
		}
		rec, err := a.clusterPool(name, subnet, rng, req.V6)
		if err != nil {
			return nil, err
		}
		subnet, clusterRec = netip.MustParsePrefix(rec.Subnet), &rec
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.unusedTwin(space, subnet, rng, req.V6); p != nil && (clusterRec == nil) == (p.rec.Cluster == "") {
		// dockerd retries a call whose answer it lost; until the first
		// address is taken from the pool, an identical request is that retry.
		a.log.WithFields(logrus.Fields{"pool": p.id()}).Info("repeated RequestPool answered with the same pool")
		return &api.RequestPoolResponse{PoolID: p.id(), Pool: p.rec.Subnet}, nil
	}
	rec := poolRecord{Space: space, Range: "", V6: req.V6, Default: !subnet.IsValid()}
	if clusterRec != nil {
		rec = *clusterRec
	}
	if !subnet.IsValid() {
		if subnet, err = a.pickDefault(space); err != nil {
			return nil, err
		}
	} else if other := a.overlapping(space, subnet); other != nil {
		return nil, errdefs.Conflict("subnet %s overlaps pool %s, which is already in use", subnet, other.subnet)
	}
	rec.Subnet = subnet.String()
	if rng.IsValid() {
		rec.Range = rng.String()
	}
	p, err := newPool(rec)
	if err != nil {
		return nil, err
	}
	if err := a.store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucketPools, p.key, rec) }); err != nil {
		return nil, fmt.Errorf("save pool %s: %w", p.id(), err)
	}
	a.pools[p.key] = p
	a.fault.At(fault.RequestPoolSaved)
	a.log.WithFields(logrus.Fields{"pool": p.id()}).Info("pool allocated")
	return &api.RequestPoolResponse{PoolID: p.id(), Pool: subnet.String()}, nil
}

// ReleasePool implements api.Ipam. Releasing an unknown pool succeeds:
// dockerd never retries a failed release and forgets the pool anyway.
func (a *Allocator) ReleasePool(req *api.ReleasePoolRequest) error {
	space, subnet, err := parsePoolID(req.PoolID)
	if err != nil {
		return err
	}
	key := poolKey(space, subnet)
	a.mu.Lock()
	p := a.pools[key]
	a.mu.Unlock()
	if p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
	}
	if p == nil || p.gone {
		a.log.WithField("pool", req.PoolID).Debug("release of unknown pool ignored")
		return nil
	}
	err = a.store.Update(func(tx store.Tx) error {
		if err := tx.Delete(bucketPools, key); err != nil {
			return err
		}
		for ci := range p.bits.chunks {
			if err := tx.Delete(bucketBits, chunkKey(key, ci)); err != nil {
				return err
			}
		}
		for mac := range p.macs {
			if err := tx.Delete(bucketMACs, key+"@"+mac); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release pool %s: %w", req.PoolID, err)
	}
	p.gone = true
	a.mu.Lock()
	if a.pools[key] == p {
		delete(a.pools, key)
	}
	a.mu.Unlock()
	if p.rec.Cluster != "" {
		a.releaseLeftClaims(p)
		// The cluster's config goes when no host has the network.
		if _, err := a.cluster.LeaveNetwork(p.rec.Cluster); err != nil {
			a.log.WithError(err).WithField("cluster_network", p.rec.Cluster).Warn("could not check whether the cluster network can go; it stays")
		}
	}
	a.fault.At(fault.ReleasePoolSaved)
	a.log.WithFields(logrus.Fields{"pool": req.PoolID}).Info("pool released")
	return nil
}
