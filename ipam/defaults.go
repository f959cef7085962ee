package ipam

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PoolSet is a range of equally sized subnets that pools without --subnet
// are taken from, like dockerd's default-address-pools: Base split into
// subnets of Size bits.
type PoolSet struct {
	Base netip.Prefix
	Size int
}

// DefaultLocalPools are Docker's own defaults for local networks, so a
// network without --subnet gets the kind of subnet users know from Docker.
// Subnets already routed on the host (docker0 has 172.17.0.0/16) are skipped.
var DefaultLocalPools = []PoolSet{
	{netip.MustParsePrefix("172.17.0.0/16"), 16},
	{netip.MustParsePrefix("172.18.0.0/15"), 16}, // 172.18 - 172.19
	{netip.MustParsePrefix("172.20.0.0/14"), 16}, // 172.20 - 172.23
	{netip.MustParsePrefix("172.24.0.0/13"), 16}, // 172.24 - 172.31
	{netip.MustParsePrefix("192.168.0.0/16"), 20},
}

// DefaultGlobalPools are Docker's defaults for the global address space.
var DefaultGlobalPools = []PoolSet{
	{netip.MustParsePrefix("10.0.0.0/8"), 24},
}

// validate checks that the set can be split as described.
func (s PoolSet) validate() error {
	if !s.Base.IsValid() || s.Base.Masked() != s.Base {
		return fmt.Errorf("pool set base %s is not a network address", s.Base)
	}
	if s.Size < s.Base.Bits() || s.Size > s.Base.Addr().BitLen()-2 {
		return fmt.Errorf("pool set %s: size /%d must be between /%d and /%d", s.Base, s.Size, s.Base.Bits(), s.Base.Addr().BitLen()-2)
	}
	if s.Size-s.Base.Bits() > 24 {
		return fmt.Errorf("pool set %s: splitting into /%d gives too many subnets", s.Base, s.Size)
	}
	return nil
}

// each calls fn for every subnet of the set in address order until fn
// returns false.
func (s PoolSet) each(fn func(netip.Prefix) bool) {
	n := uint64(1) << (s.Size - s.Base.Bits())
	step := uint64(1) << (s.Base.Addr().BitLen() - s.Size)
	if s.Base.Addr().BitLen()-s.Size >= 64 {
		step = 0 // cannot happen for validated IPv4 sets; IPv6 sets are not offered
	}
	for i := range n {
		if !fn(netip.PrefixFrom(addrAt(s.Base, i*step), s.Size)) {
			return
		}
	}
}

// ParsePoolSet reads one pool set in dockerd's --default-address-pool
// syntax: "base=10.10.0.0/16,size=24". Only IPv4 sets are taken, as
// Docker's default pools are.
func ParsePoolSet(s string) (PoolSet, error) {
	var set PoolSet
	var haveBase, haveSize bool
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return set, fmt.Errorf("%q: want base=CIDR,size=N", s)
		}
		switch strings.ToLower(k) {
		case "base":
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return set, fmt.Errorf("%q: base: %w", s, err)
			}
			if !p.Addr().Is4() {
				return set, fmt.Errorf("%q: base must be an IPv4 prefix", s)
			}
			set.Base, haveBase = p, true
		case "size":
			n, err := strconv.Atoi(v)
			if err != nil {
				return set, fmt.Errorf("%q: size %q is not a number", s, v)
			}
			set.Size, haveSize = n, true
		default:
			return set, fmt.Errorf("%q: unknown field %q (want base and size)", s, k)
		}
	}
	if !haveBase || !haveSize {
		return set, fmt.Errorf("%q: want both base=CIDR and size=N", s)
	}
	if err := set.validate(); err != nil {
		return set, err
	}
	return set, nil
}
