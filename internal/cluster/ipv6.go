package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"
)

// A dual-stack cluster network's IPv6 subnet and gateway are settled on its
// configuration by the first host whose IPv6 pool asks (SettleSubnet6),
// as its IPv4 ones are by the first gateway request.
//
// A dual-stack cluster network created with --ipv6 and no IPv6 subnet gets
// a /64 (Config.SubnetSize6) of the cluster's default IPv6 pool, as an
// IPv4 one without --subnet gets a /24: the first that no cluster network
// uses, claimed under subnets/<subnet>. The pool itself is chosen once for
// the cluster, by the first host that needs it (its
// --cluster-default-ipv6-pool, or a random ULA /48 as RFC 4193 asks, so
// that two clusters, or a cluster and a site, seldom share one), and kept
// under ipv6-pool: every host's networks come from it whatever its own
// flag says.

func ipv6PoolKey() string { return Prefix + "ipv6-pool" }

// Pool6 is the cluster's default IPv6 pool as kept in etcd.
type Pool6 struct {
	Base netip.Prefix `json:"base"`
	Size int          `json:"size"`
}

// DefaultPool6 returns the cluster's default IPv6 pool, choosing it now
// (this host's proposal) if the cluster has none.
func (c *Client) DefaultPool6() (Pool6, error) {
	var p Pool6
	err := c.call("the cluster's default IPv6 pool", func(ctx context.Context) error {
		var err error
		p, err = c.ipv6Pool(ctx)
		return err
	})
	return p, err
}

func (c *Client) ipv6Pool(ctx context.Context) (Pool6, error) {
	key := ipv6PoolKey()
	read := func(b []byte) (Pool6, error) {
		var p Pool6
		if err := json.Unmarshal(b, &p); err != nil || !p.Base.Addr().Is6() || p.Size < p.Base.Bits() || p.Size > 64 {
			return Pool6{}, fmt.Errorf("the cluster's default IPv6 pool %s is not base and size (%q): delete it to choose again", key, b)
		}
		return p, nil
	}
	if b, ok, err := c.kv.get(ctx, key); err != nil {
		return Pool6{}, err
	} else if ok {
		return read(b)
	}
	want := Pool6{Base: c.cfg.SubnetPool6, Size: c.cfg.SubnetSize6}
	if want.Size == 0 {
		want.Size = 64
	}
	if !want.Base.IsValid() {
		want.Base = RandomULA()
	}
	b, _ := json.Marshal(want)
	created, existing, err := c.kv.create(ctx, key, b, 0)
	switch {
	case err != nil:
		return Pool6{}, err
	case created:
		c.log.WithFields(logrus.Fields{"pool": want.Base, "size": want.Size}).Info("the cluster's default IPv6 pool chosen")
		return want, nil
	}
	return read(existing) // another host's, chosen first
}

// RandomULA is a unique local /48: fd00::/8 and a random 40-bit global ID
// (RFC 4193 3.2).
func RandomULA() netip.Prefix {
	var b [16]byte
	b[0] = 0xfd
	_, _ = rand.Read(b[1:6])
	return netip.PrefixFrom(netip.AddrFrom16(b), 48)
}

// pickSubnet6 claims the first free subnet of the cluster's default IPv6
// pool for the network (or its own earlier pick).
func (c *Client) pickSubnet6(ctx context.Context, name string) (netip.Prefix, error) {
	pool, err := c.ipv6Pool(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	return c.pickFrom(ctx, name, pool.Base, pool.Size)
}

// candidates6 yields an IPv6 pool's subnets of size bits (at most 64), in
// order.
func candidates6(pool netip.Prefix, size int) func(func(netip.Prefix) bool) {
	return func(yield func(netip.Prefix) bool) {
		if !pool.Addr().Is6() || size < pool.Bits() || size > 64 {
			return
		}
		a := pool.Masked().Addr().As16()
		hi := binary.BigEndian.Uint64(a[:8])
		step := uint64(1) << (64 - size)
		var n uint64 = 1 << 63 // 2^(size-bits) subnets, but no more than uint64 counts
		if size-pool.Bits() < 63 {
			n = uint64(1) << (size - pool.Bits())
		}
		for i := uint64(0); i < n; i++ {
			binary.BigEndian.PutUint64(a[:8], hi+i*step)
			if !yield(netip.PrefixFrom(netip.AddrFrom16(a), size)) {
				return
			}
		}
	}
}

// SettleSubnet6 returns the cluster network's configuration with its IPv6
// subnet and gateway, making them subnet and gateway (zero: the subnet's
// first address) if the network has none yet; a subnet or gateway that
// differs from the cluster's is refused with what to change. A zero
// subnet takes the cluster's, or one of the default IPv6 pool
// (below). The network must exist (its IPv4 pool comes first, as
// Docker asks for it first).
func (c *Client) SettleSubnet6(name string, subnet netip.Prefix, gateway netip.Addr) (NetworkSpec, error) {
	if err := ValidName(name); err != nil {
		return NetworkSpec{}, err
	}
	if !subnet.IsValid() {
		return c.settleDefault6(name)
	}
	if !subnet.Addr().Is6() || subnet.Addr().Is4In6() {
		return NetworkSpec{}, conflict("cluster network %s: %s is not an IPv6 subnet", name, subnet)
	}
	subnet = subnet.Masked()
	if gateway.IsValid() && !subnet.Contains(gateway) {
		return NetworkSpec{}, conflict("IPv6 gateway %s is not in subnet %s", gateway, subnet)
	}
	var got NetworkSpec
	var refused error
	err := c.settle(name, "IPv6 subnet", func(spec *NetworkSpec) bool {
		got, refused = *spec, nil
		switch {
		case spec.Subnet6.IsValid() && spec.Subnet6 != subnet:
			refused = conflict("cluster network %s has IPv6 subnet %s; this host asked for %s: create it with --subnet %s", name, spec.Subnet6, subnet, spec.Subnet6)
			return false
		case spec.Subnet6.IsValid() && gateway.IsValid() && spec.Gateway6 != gateway:
			refused = conflict("cluster network %s has IPv6 gateway %s; this host asked for %s: create it with --gateway %s (or none)", name, spec.Gateway6, gateway, spec.Gateway6)
			return false
		case spec.Subnet6.IsValid():
			return false
		}
		spec.Subnet6, spec.Gateway6 = subnet, gateway
		if !gateway.IsValid() {
			spec.Gateway6 = subnet.Addr().Next()
		}
		got = *spec
		return true
	})
	if err == nil {
		err = refused
	}
	return got, err
}

// settleDefault6 is SettleSubnet6 without a subnet: the cluster's, or a
// subnet of the default IPv6 pool picked now (given back if another
// host settled another first).
func (c *Client) settleDefault6(name string) (NetworkSpec, error) {
	spec, found, err := c.LookupNetwork(name)
	switch {
	case err != nil:
		return NetworkSpec{}, err
	case !found:
		return NetworkSpec{}, conflict("cluster network %s has no configuration in the cluster", name)
	case spec.Subnet6.IsValid():
		return spec, nil
	}
	var picked netip.Prefix
	if err := c.call("IPv6 subnet of cluster network "+name, func(ctx context.Context) error {
		picked, err = c.pickSubnet6(ctx, name)
		return err
	}); err != nil {
		return NetworkSpec{}, err
	}
	spec, err = c.SettleSubnet6(name, picked, netip.Addr{})
	if spec.Subnet6 != picked {
		_ = c.call("release a default subnet", func(ctx context.Context) error {
			c.releaseSubnet(ctx, name, picked)
			return nil
		})
	}
	if err != nil && spec.Subnet6.IsValid() && spec.Subnet6 != picked {
		return spec, nil // another host's pick won: this host takes it
	}
	return spec, err
}
