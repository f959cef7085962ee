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
