package ipam

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mynet/mynet/internal/netaddr"

	"github.com/mynet/mynet/internal/errdefs"
)

// poolRecord is a pool as persisted.
type poolRecord struct {
	Space  string `json:"space"`
	Subnet string `json:"subnet"`
	Range  string `json:"range,omitempty"`
	V6     bool   `json:"v6,omitempty"`
	// Only6: the pool of an IPv6-only cluster network (no IPv4 pool).
	Only6   bool `json:"only6,omitempty"`
	Default bool `json:"default,omitempty"` // picked from the default sets (no --subnet)
	// Cluster names the cluster network whose pool this is; Gateway, VNI
	// and Port (its VXLAN port; 0: IANA's, a network made before mynet had
	// its own) are the cluster's, kept here so a restart with etcd down
	// still knows.
	Cluster string `json:"cluster,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	VNI     uint32 `json:"vni,omitempty"`
	Port    int    `json:"port,omitempty"`
}

// gatewayKey stands in for a MAC: a pool has one gateway, so a repeated
// gateway request is a retry.
const gatewayKey = "gateway"

// pool is one address pool. The fields down to last are fixed when it is
// made (rec's Gateway and VNI excepted: they change under mu, and cnet
// publishes them); the rest is guarded by the pool's own mu, which is held
// across a change's store write and, for a cluster pool, its etcd round
// trips: a pool waits only on its own cluster network.
type pool struct {
	rec    poolRecord
	key    string
	subnet netip.Prefix
	rng    netip.Prefix // zero when the pool has no sub-range
	lo, hi uint64       // offsets the allocator picks from
	first  uint64       // lowest offset that may ever be handed out
	last   uint64       // highest offset that may ever be handed out
	// used mirrors bits.used, and busy says an address or a MAC record is
	// in the pool, for status and unusedTwin, which never wait on mu.
	used atomic.Uint64
	busy atomic.Bool
	// cnet is the cluster network as ClusterOf answers it (nil: a local
	// pool), published whenever rec's Gateway and VNI change.
	cnet atomic.Pointer[ClusterNetwork]

	// names are the container names Docker gave with addresses (Engine 29's
	// com.docker.network.endpoint.name), for the driver's endpoint records
	// (EndpointName); in memory only, the driver keeps them. Guarded by
	// namesMu, never p.mu: the driver asks while the pool may wait on etcd.
	namesMu sync.Mutex
	names   map[netip.Addr]string

	mu   sync.Mutex
	gone bool // released: a request that found the pool before gets NotFound
	bits *bitmap
	// macs maps an endpoint's MAC to the offset allocated for it, and byOff
	// back, so that dockerd's retry of a RequestAddress whose answer was
	// lost (the daemon crashed, say) gets the same address, not a second.
	macs  map[string]uint64
	byOff map[uint64]string
	// elsewhere marks offsets another host holds (cluster pools), learnt
	// when a claim fails; in memory only, as the other host may release it.
	elsewhere map[uint64]bool
	// reclaimed says the pool's addresses were checked against the
	// cluster's claims since this host last registered (claims.go);
	// conflicts are those of its addresses another host's claim holds.
	reclaimed bool
	conflicts map[netip.Addr]string
	// remote are other hosts' endpoints' addresses as this host knew them
	// at its last registration (ClusterRegistered).
	remote []netip.Addr
	// holdUntil: after etcd lost its data, until then the pool hands out
	// addresses of its own blocks only, while the other hosts claim
	// theirs again (claims.go).
	holdUntil time.Time
	// blocks are the affinities of the cluster network's address blocks
	// (block index -> host) as last read; a block has 1<<blockBits
	// offsets (blocks.go).
	blocks    map[uint64]string
	blockBits uint
}

// settle updates busy after a change. Caller holds p.mu.
func (p *pool) settle() {
	p.used.Store(p.bits.used)
	p.busy.Store(p.bits.used > 0 || len(p.macs) > 0)
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
	p.macs, p.byOff, p.elsewhere = map[string]uint64{}, map[uint64]string{}, map[uint64]bool{}
	p.blocks, p.blockBits = map[uint64]string{}, blockBitsOf(subnet)
	p.publishCluster()
	return p, nil
}

func poolKey(space string, subnet netip.Prefix) string { return space + "/" + subnet.String() }

func (p *pool) id() string {
	if p.rng.IsValid() {
		return p.key + "/" + p.rng.String()
	}
	return p.key
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

// unusedTwin returns a pool no address was ever taken from that an
// identical RequestPool created: the same space, family and range, and the
// same subnet, or any default one when none is asked for. Caller holds a.mu.
func (a *Allocator) unusedTwin(space string, subnet, rng netip.Prefix, v6 bool) *pool {
	for _, p := range a.pools {
		if p.rec.Space != space || p.rec.V6 != v6 || p.rng != rng || p.busy.Load() {
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

// parseAddr reads an address given bare or in CIDR form.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netaddr.Parse(s)
	if err != nil {
		return netip.Addr{}, errdefs.Invalid("invalid IP address %q", s)
	}
	return a, nil
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

// size is the number of offsets from first to last, capped at 2^63.
func (p *pool) size() uint64 {
	if n := p.last - p.first + 1; n > 0 && n <= 1<<63 {
		return n
	}
	return 1 << 63
}

// poolFor finds the pool of a pool ID and returns it with its mu held.
func (a *Allocator) poolFor(id string) (*pool, error) {
	space, subnet, err := parsePoolID(id)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	p := a.pools[poolKey(space, subnet)]
	a.mu.Unlock()
	if p != nil {
		p.mu.Lock()
		if !p.gone {
			return p, nil
		}
		p.mu.Unlock()
	}
	return nil, errdefs.NotFound("address pool %s not found", id)
}

// allPools lists the pools, for the calls that visit each.
func (a *Allocator) allPools() []*pool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*pool, 0, len(a.pools))
	for _, p := range a.pools {
		out = append(out, p)
	}
	// IPv4 pools first: a cluster network's IPv4 pool makes its
	// configuration again (after etcd lost it) before its IPv6 pool, which
	// settles its IPv6 subnet in it, reclaims.
	slices.SortFunc(out, func(x, y *pool) int { return cmp.Compare(b2i(x.rec.V6), b2i(y.rec.V6)) })
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
