package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// A cluster network created without --subnet gets one from the cluster's
// default pool (Config.SubnetPool, /SubnetSize each, like Docker's
// overlay: /24s of 10.0.0.0/8): the first that overlaps no other cluster
// network and no route of any registered host, claimed under
// subnets/<subnet> so that two networks created at once never get the same.

func subnetKey(p netip.Prefix) string {
	return Prefix + "subnets/" + strings.ReplaceAll(p.String(), "/", "_")
}

func parseSubnetKey(key string) (netip.Prefix, bool) {
	s, ok := strings.CutPrefix(key, Prefix+"subnets/")
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(strings.ReplaceAll(s, "_", "/"))
	return p, err == nil
}

func routesKey(node string) string { return Prefix + "routes/" + node }

// PublishRoutes records the prefixes routed on this host (its local
// networks, Docker's among them), under its lease, so that no host picks a
// default subnet that overlaps them. Register first.
func (c *Client) PublishRoutes(routes []netip.Prefix) error {
	lease := c.currentLease()
	if lease == 0 {
		return fmt.Errorf("publish routes: %w (this host is not registered in the cluster yet)", ErrUnavailable)
	}
	var v4 []netip.Prefix
	for _, r := range routes {
		if r.Addr().Is4() && r.Bits() > 0 {
			v4 = append(v4, r.Masked())
		}
	}
	slices.SortFunc(v4, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	v4 = slices.Compact(v4)
	b, _ := json.Marshal(v4)
	return c.call("publish this host's routes", func(ctx context.Context) error {
		return c.kv.put(ctx, routesKey(c.cfg.Node), b, lease)
	})
}

// usedSubnets is every prefix a default subnet must not overlap: the
// cluster networks' subnets, the picks under way and every host's routes;
// mine is a pick of the network's own of the family of v4 (another
// host's, racing to create it), if any.
func (c *Client) usedSubnets(ctx context.Context, name string, v4 bool) (used []netip.Prefix, mine netip.Prefix, err error) {
	lists, _, err := c.kv.listMany(ctx, Prefix+"vnis/", Prefix+"subnets/", Prefix+"routes/")
	if err != nil {
		return nil, netip.Prefix{}, err
	}
	var cfgKeys []string
	for _, p := range lists[0] {
		cfgKeys = append(cfgKeys, networkKey(string(p.Value))+"config")
	}
	for _, p := range lists[1] {
		if s, ok := parseSubnetKey(p.Key); ok {
			used = append(used, s)
			if string(p.Value) == name && s.Addr().Is4() == v4 {
				mine = s
			}
		}
	}
	for _, p := range lists[2] {
		var routes []netip.Prefix
		if json.Unmarshal(p.Value, &routes) == nil {
			used = append(used, routes...)
		}
	}
	if len(cfgKeys) > 0 {
		vals, err := c.kv.getMany(ctx, 0, cfgKeys...)
		if err != nil {
			return nil, netip.Prefix{}, err
		}
		for _, v := range vals {
			var spec NetworkSpec
			if v == nil || json.Unmarshal(v, &spec) != nil {
				continue
			}
			for _, s := range []netip.Prefix{spec.Subnet, spec.Subnet6} {
				if s.IsValid() {
					used = append(used, s)
				}
			}
		}
	}
	return used, mine, nil
}

// pickSubnet claims the first free subnet of the default pool for the
// network (or the one a try of its own already claimed).
func (c *Client) pickSubnet(ctx context.Context, name string) (netip.Prefix, error) {
	return c.pickSubnetSized(ctx, name, c.cfg.SubnetSize)
}

// pickSubnetSized is pickSubnet with subnets of size bits.
func (c *Client) pickSubnetSized(ctx context.Context, name string, size int) (netip.Prefix, error) {
	pool := c.cfg.SubnetPool
	if !pool.IsValid() {
		return netip.Prefix{}, conflict("cluster network %s does not exist yet: the first host must give its IPv4 --subnet (this host has no default cluster pool)", name)
	}
	return c.pickFrom(ctx, name, pool, size)
}

// pickFrom claims for the network the first subnet of pool, size bits
// long, that overlaps nothing in use (or returns its own earlier pick of
// that family).
func (c *Client) pickFrom(ctx context.Context, name string, pool netip.Prefix, size int) (netip.Prefix, error) {
	used, mine, err := c.usedSubnets(ctx, name, pool.Addr().Is4())
	if err != nil || mine.IsValid() {
		return mine, err
	}
	for cand := range candidates(pool, size) {
		if slices.ContainsFunc(used, cand.Overlaps) {
			continue
		}
		ok, holder, err := c.kv.create(ctx, subnetKey(cand), []byte(name), 0)
		if err != nil {
			return netip.Prefix{}, err
		}
		if ok || string(holder) == name {
			return cand, nil
		}
		used = append(used, cand)
	}
	return netip.Prefix{}, conflict("no free /%d left in the default cluster pool %s for network %s: give --subnet", size, pool, name)
}

// candidates yields pool's subnets of size bits, in order: IPv4 ones up
// to /30, IPv6 ones up to /64 (their count is not bounded here: the
// caller stops at the first free one).
func candidates(pool netip.Prefix, size int) func(func(netip.Prefix) bool) {
	if pool.Addr().Is6() {
		return candidates6(pool, size)
	}
	return func(yield func(netip.Prefix) bool) {
		if !pool.Addr().Is4() || size < pool.Bits() || size > 30 {
			return
		}
		base := pool.Masked().Addr().As4()
		start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		step := uint64(1) << (32 - size)
		n := uint64(1) << (size - pool.Bits())
		for i := range n {
			v := uint64(start) + i*step
			a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
			if !yield(netip.PrefixFrom(a, size)) {
				return
			}
		}
	}
}

// releaseSubnet gives back a default subnet's claim that the network no
// longer needs (it lost the race to create the network, or is gone).
func (c *Client) releaseSubnet(ctx context.Context, name string, subnet netip.Prefix) {
	if subnet.IsValid() {
		_, _ = c.kv.deleteIf(ctx, subnetKey(subnet), []byte(name))
	}
}
