package ipam

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync"

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
	// Fault is the test-only crash hook (internal/fault); nil in production.
	Fault fault.Hook
	Log   *logrus.Entry
}

// Allocator implements Docker's IpamDriver.
type Allocator struct {
	store      store.Store
	hostRoutes func() ([]netip.Prefix, error)
	defaults   map[string][]PoolSet
	fault      fault.Hook
	log        *logrus.Entry

	mu    sync.Mutex       // guards pools and every pool's bitmap, held across the store write of a change
	pools map[string]*pool // poolKey(space, subnet) -> pool
}

var _ api.Ipam = (*Allocator)(nil)

// poolRecord is a pool as persisted.
type poolRecord struct {
	Space   string `json:"space"`
	Subnet  string `json:"subnet"`
	Range   string `json:"range,omitempty"`
	V6      bool   `json:"v6,omitempty"`
	Default bool   `json:"default,omitempty"` // picked from the default sets (no --subnet)
}

// gatewayKey stands in for a MAC: a pool has one gateway, so a repeated
// gateway request is a retry.
const gatewayKey = "gateway"

type pool struct {
	rec    poolRecord
	key    string
	subnet netip.Prefix
	rng    netip.Prefix // zero when the pool has no sub-range
	lo, hi uint64       // offsets the allocator picks from
	first  uint64       // lowest offset that may ever be handed out
	last   uint64       // highest offset that may ever be handed out
	bits   *bitmap
	// macs maps an endpoint's MAC to the offset allocated for it, and byOff
	// back, so that dockerd's retry of a RequestAddress whose answer was
	// lost (the daemon crashed, say) gets the same address, not a second.
	macs  map[string]uint64
	byOff map[uint64]string
}

// New loads the allocator's state from cfg.Store.
func New(cfg Config) (*Allocator, error) {
	a := &Allocator{
		store:      cfg.Store,
		hostRoutes: cfg.HostRoutes,
		defaults:   map[string][]PoolSet{LocalSpace: DefaultLocalPools, GlobalSpace: DefaultGlobalPools},
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

func (a *Allocator) load() error {
	return a.store.View(func(tx store.Tx) error {
		err := store.ForEachJSON(tx, bucketPools, func(key string, rec *poolRecord) error {
			p, err := newPool(*rec)
			if err != nil {
				return fmt.Errorf("pool %s: %w", key, err)
			}
			a.pools[p.key] = p
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.ForEach(bucketBits, func(key string, v []byte) error {
			pk, ci, err := parseChunkKey(key)
			if err != nil {
				return err
			}
			p := a.pools[pk]
			if p == nil {
				a.log.WithField("key", key).Warn("ignoring allocation chunk of an unknown pool")
				return nil
			}
			return p.bits.loadChunk(ci, v)
		})
		if err != nil {
			return err
		}
		return tx.ForEach(bucketMACs, func(key string, v []byte) error {
			i := strings.LastIndexByte(key, '@')
			if i < 0 || len(v) != 8 {
				return fmt.Errorf("malformed MAC record %q", key)
			}
			if p := a.pools[key[:i]]; p != nil {
				off := binary.BigEndian.Uint64(v)
				p.macs[key[i+1:]], p.byOff[off] = off, key[i+1:]
			}
			return nil
		})
	})
}

func newPool(rec poolRecord) (*pool, error) {
	subnet, err := netip.ParsePrefix(rec.Subnet)
	if err != nil {
		return nil, err
	}
	p := &pool{rec: rec, subnet: subnet, key: poolKey(rec.Space, subnet)}
	p.last = lastOffset(subnet)
	if subnet.Addr().Is4() && subnet.Bits() <= 30 {
		p.first, p.last = 1, p.last-1 // network and broadcast addresses
	} else if subnet.Addr().Is6() && subnet.Bits() <= 126 {
		p.first = 1 // the subnet-router anycast address
	}
	p.lo, p.hi = p.first, p.last
	if rec.Range != "" {
		if p.rng, err = netip.ParsePrefix(rec.Range); err != nil {
			return nil, err
		}
		rlo, _ := offsetOf(subnet, p.rng.Addr())
		p.lo, p.hi = max(rlo, p.first), min(rlo+lastOffset(p.rng), p.last)
	}
	p.bits = newBitmap(lastOffset(subnet))
	p.macs, p.byOff = map[string]uint64{}, map[uint64]string{}
	return p, nil
}

func poolKey(space string, subnet netip.Prefix) string { return space + "/" + subnet.String() }

func (p *pool) id() string {
	if p.rng.IsValid() {
		return p.key + "/" + p.rng.String()
	}
	return p.key
}

func chunkKey(pk string, ci uint64) string { return fmt.Sprintf("%s#%016x", pk, ci) }

func parseChunkKey(key string) (string, uint64, error) {
	i := strings.LastIndexByte(key, '#')
	if i < 0 {
		return "", 0, fmt.Errorf("malformed chunk key %q", key)
	}
	var ci uint64
	if _, err := fmt.Sscanf(key[i+1:], "%x", &ci); err != nil {
		return "", 0, fmt.Errorf("malformed chunk key %q: %w", key, err)
	}
	return key[:i], ci, nil
}

// parsePoolID splits "space/subnet[/range]" and finds the pool's key.
func parsePoolID(id string) (space string, subnet netip.Prefix, err error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 && len(parts) != 5 {
		return "", netip.Prefix{}, errdefs.Invalid("malformed pool ID %q", id)
	}
	subnet, err = netip.ParsePrefix(parts[1] + "/" + parts[2])
	if err != nil {
		return "", netip.Prefix{}, errdefs.Invalid("malformed pool ID %q: %v", id, err)
	}
	return parts[0], subnet, nil
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

// parseSubnet reads a CIDR from the user and returns its network prefix.
func parseSubnet(what, s string, v6 bool) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errdefs.Invalid("invalid %s %q: %v", what, s, err)
	}
	p = p.Masked()
	if p.Addr().Is6() != v6 {
		fam := "IPv4"
		if v6 {
			fam = "IPv6"
		}
		return netip.Prefix{}, errdefs.Invalid("%s %s is not an %s subnet", what, p, fam)
	}
	if p.Bits() >= p.Addr().BitLen()-1 {
		return netip.Prefix{}, errdefs.Invalid("%s %s is too small to hold a gateway and an endpoint", what, p)
	}
	return p, nil
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
	} else if req.V6 {
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

	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.unusedTwin(space, subnet, rng, req.V6); p != nil {
		// dockerd retries a call whose answer it lost; until the first
		// address is taken from the pool, an identical request is that retry.
		a.log.WithFields(logrus.Fields{"pool": p.id()}).Info("repeated RequestPool answered with the same pool")
		return &api.RequestPoolResponse{PoolID: p.id(), Pool: p.rec.Subnet}, nil
	}
	rec := poolRecord{Space: space, Range: "", V6: req.V6, Default: !subnet.IsValid()}
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

// unusedTwin returns a pool no address was ever taken from that an
// identical RequestPool created: the same space, family and range, and the
// same subnet, or any default one when none is asked for. Caller holds a.mu.
func (a *Allocator) unusedTwin(space string, subnet, rng netip.Prefix, v6 bool) *pool {
	for _, p := range a.pools {
		if p.rec.Space != space || p.rec.V6 != v6 || p.rng != rng || p.bits.used > 0 || len(p.macs) > 0 {
			continue
		}
		if subnet.IsValid() && p.subnet == subnet || !subnet.IsValid() && p.rec.Default {
			return p
		}
	}
	return nil
}

// overlapping returns a pool of space that overlaps subnet. Caller holds a.mu.
func (a *Allocator) overlapping(space string, subnet netip.Prefix) *pool {
	for _, p := range a.pools {
		if p.rec.Space == space && p.subnet.Overlaps(subnet) {
			return p
		}
	}
	return nil
}

// pickDefault returns the first default subnet of space that no pool and no
// host route overlaps. Caller holds a.mu.
func (a *Allocator) pickDefault(space string) (netip.Prefix, error) {
	var routes []netip.Prefix
	if a.hostRoutes != nil {
		var err error
		if routes, err = a.hostRoutes(); err != nil {
			return netip.Prefix{}, fmt.Errorf("list host routes: %w", err)
		}
	}
	var found netip.Prefix
	for _, set := range a.defaults[space] {
		set.each(func(cand netip.Prefix) bool {
			if a.overlapping(space, cand) != nil {
				return true
			}
			for _, r := range routes {
				if r.Bits() > 0 && r.Overlaps(cand) {
					return true
				}
			}
			found = cand
			return false
		})
		if found.IsValid() {
			return found, nil
		}
	}
	return netip.Prefix{}, errdefs.Conflict("all default address pools of %s are in use: give the network a --subnet", space)
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
	defer a.mu.Unlock()
	p := a.pools[key]
	if p == nil {
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
	delete(a.pools, key)
	a.fault.At(fault.ReleasePoolSaved)
	a.log.WithFields(logrus.Fields{"pool": req.PoolID}).Info("pool released")
	return nil
}

// lookup finds the pool of a pool ID. Caller holds a.mu.
func (a *Allocator) lookup(id string) (*pool, error) {
	space, subnet, err := parsePoolID(id)
	if err != nil {
		return nil, err
	}
	p := a.pools[poolKey(space, subnet)]
	if p == nil {
		return nil, errdefs.NotFound("address pool %s not found", id)
	}
	return p, nil
}

// parseAddr reads an address given bare or in CIDR form.
func parseAddr(s string) (netip.Addr, error) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return pfx.Addr(), nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errdefs.Invalid("invalid IP address %q", s)
	}
	return addr.Unmap(), nil
}

// offsetIn checks that addr may be handed out from p and returns its offset.
func (p *pool) offsetIn(addr netip.Addr) (uint64, error) {
	if !p.subnet.Contains(addr) {
		return 0, errdefs.Invalid("address %s is not in subnet %s", addr, p.subnet)
	}
	off, ok := offsetOf(p.subnet, addr)
	if !ok || off < p.first || off > p.last {
		if off == 0 {
			return 0, errdefs.Invalid("address %s is the network address of %s", addr, p.subnet)
		}
		if addr.Is4() {
			return 0, errdefs.Invalid("address %s is the broadcast address of %s", addr, p.subnet)
		}
		return 0, errdefs.Invalid("address %s is beyond the allocatable part of %s", addr, p.subnet)
	}
	return off, nil
}

// RequestAddress implements api.Ipam.
func (a *Allocator) RequestAddress(req *api.RequestAddressRequest) (*api.RequestAddressResponse, error) {
	var want netip.Addr
	if req.Address != "" {
		var err error
		if want, err = parseAddr(req.Address); err != nil {
			return nil, err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p, err := a.lookup(req.PoolID)
	if err != nil {
		return nil, err
	}
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
	var off uint64
	if want.IsValid() {
		if off, err = p.offsetIn(want); err != nil {
			return nil, err
		}
		if p.bits.isSet(off) {
			return nil, errdefs.Conflict("address %s is already in use in %s", want, p.subnet)
		}
	} else {
		var ok bool
		if off, ok = p.bits.nextFree(p.lo, p.hi); !ok {
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
		return nil, err
	}
	if mac != "" {
		if old, ok := p.macs[mac]; ok {
			delete(p.byOff, old)
		}
		p.macs[mac], p.byOff[off] = off, mac
	}
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
	a.mu.Lock()
	defer a.mu.Unlock()
	p, err := a.lookup(req.PoolID)
	if errdefs.IsNotFound(err) {
		a.log.WithFields(logrus.Fields{"pool": req.PoolID, "address": addr}).Debug("release in unknown pool ignored")
		return nil
	}
	if err != nil {
		return err
	}
	if !p.subnet.Contains(addr) {
		return errdefs.Invalid("address %s is not in subnet %s", addr, p.subnet)
	}
	off, _ := offsetOf(p.subnet, addr)
	if !p.bits.clear(off) {
		return nil
	}
	if err := a.save(p, off, ""); err != nil {
		p.bits.set(off)
		return err
	}
	if mac, ok := p.byOff[off]; ok {
		delete(p.macs, mac)
		delete(p.byOff, off)
	}
	a.fault.At(fault.ReleaseAddressSaved)
	a.log.WithFields(logrus.Fields{"pool": p.id(), "address": addr}).Debug("address released")
	return nil
}

// save writes, in one transaction, the chunk holding off and the MAC record
// of the allocation: mac's record when an address is allocated for it, and
// the removal of off's record when it is released (mac ""). Caller holds
// a.mu; the maps are updated by the caller once save succeeded.
func (a *Allocator) save(p *pool, off uint64, mac string) error {
	ci := off >> chunkShift
	data := p.bits.chunkData(ci)
	err := a.store.Update(func(tx store.Tx) error {
		var err error
		if data == nil {
			err = tx.Delete(bucketBits, chunkKey(p.key, ci))
		} else {
			err = tx.Put(bucketBits, chunkKey(p.key, ci), data)
		}
		if err != nil {
			return err
		}
		if mac != "" {
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], off)
			return tx.Put(bucketMACs, p.key+"@"+mac, v[:])
		}
		if old, ok := p.byOff[off]; ok && !p.bits.isSet(off) {
			return tx.Delete(bucketMACs, p.key+"@"+old)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save allocations of %s: %w", p.id(), err)
	}
	return nil
}

// PoolInfo describes a pool for status output.
type PoolInfo struct {
	ID        string `json:"id"`
	Subnet    string `json:"subnet"`
	Range     string `json:"range,omitempty"`
	Allocated uint64 `json:"allocated"`
	// Size is how many addresses the pool can ever hand out, capped at
	// 2^63 for large IPv6 pools.
	Size uint64 `json:"size"`
}

// size is the number of offsets from first to last, capped at 2^63.
func (p *pool) size() uint64 {
	if n := p.last - p.first + 1; n > 0 && n <= 1<<63 {
		return n
	}
	return 1 << 63
}

// Pools lists the pools with their number of allocated addresses.
func (a *Allocator) Pools() []PoolInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]PoolInfo, 0, len(a.pools))
	for _, p := range a.pools {
		out = append(out, PoolInfo{ID: p.id(), Subnet: p.rec.Subnet, Range: p.rec.Range, Allocated: p.bits.used, Size: p.size()})
	}
	return out
}
