package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"
)

// Encrypted cluster networks carry their VXLAN inside a WireGuard tunnel
// between hosts (internal/wgtunnel): each host has a tunnel address, its
// VTEP for those networks, from one pool for the whole cluster, chosen
// once (tunnels/pool: --cluster-tunnel-pool, or a /22 of the default
// subnet pool that overlaps no network and no host's route, claimed like
// a default subnet). A host's address is claimed under tunnels/addrs/<ip>
// (create-if-absent, guarded by its registration, never under a lease: it
// stays the host's while the host lives, and is claimed again from the
// host's saved value after etcd lost its data). The host's public key,
// WireGuard port and tunnel address go in its node record.

// WireGuardInfo is what a host's record says of its WireGuard device.
type WireGuardInfo struct {
	Key    string     `json:"key"` // its public key, base64
	Port   int        `json:"port"`
	Tunnel netip.Addr `json:"tunnel"`
}

const tunnelPoolSize = 22

func tunnelPoolKey() string              { return Prefix + "tunnels/pool" }
func tunnelAddrKey(ip netip.Addr) string { return Prefix + "tunnels/addrs/" + ip.String() }
func tunnelAddrsPrefix() string          { return Prefix + "tunnels/addrs/" }
func tunnelAddrOf(key string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(key[len(tunnelAddrsPrefix()):])
	return ip, err == nil
}

// tunnelPoolOwner marks the default-subnet claim of the tunnel pool (not a
// network name: ValidName refuses ':').
const tunnelPoolOwner = ":tunnels"

// TunnelPool returns the cluster's tunnel pool, choosing it when there is
// none yet: Config.TunnelPool if set, else a free /22 of the default pool.
func (c *Client) TunnelPool() (netip.Prefix, error) {
	var pool netip.Prefix
	err := c.call("the cluster's tunnel pool", func(ctx context.Context) error {
		var err error
		pool, err = c.tunnelPool(ctx)
		return err
	})
	return pool, err
}

func (c *Client) tunnelPool(ctx context.Context) (netip.Prefix, error) {
	b, ok, err := c.kv.get(ctx, tunnelPoolKey())
	if err != nil {
		return netip.Prefix{}, err
	}
	if !ok {
		want := c.cfg.TunnelPool
		if !want.IsValid() {
			if want, err = c.pickSubnetSized(ctx, tunnelPoolOwner, max(tunnelPoolSize, c.cfg.SubnetPool.Bits())); err != nil {
				return netip.Prefix{}, fmt.Errorf("choose the cluster's tunnel pool (give --cluster-tunnel-pool): %w", err)
			}
		}
		nb, _ := json.Marshal(want.Masked())
		if _, b, err = c.kv.create(ctx, tunnelPoolKey(), nb, 0); err != nil {
			return netip.Prefix{}, err
		}
		if b == nil {
			b = nb
		}
	}
	var pool netip.Prefix
	if err := json.Unmarshal(b, &pool); err != nil || !pool.Addr().Is4() || pool.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("the cluster's tunnel pool %s is not an IPv4 prefix of at most /30", b)
	}
	if c.cfg.TunnelPool.IsValid() && c.cfg.TunnelPool.Masked() != pool {
		return netip.Prefix{}, conflict("--cluster-tunnel-pool %s: the cluster's tunnel pool is %s (chosen by its first host): give that, or none", c.cfg.TunnelPool, pool)
	}
	return pool, nil
}

// ClaimTunnel claims this host's tunnel address: saved (its address from
// before, when valid) if it is free or already this host's, else the
// address this host holds, else the first free one from a hash of its
// name. It returns the address with the pool's length.
func (c *Client) ClaimTunnel(saved netip.Addr) (netip.Prefix, error) {
	var got netip.Prefix
	err := c.call("claim this host's tunnel address", func(ctx context.Context) error {
		pool, err := c.tunnelPool(ctx)
		if err != nil {
			return err
		}
		lease, err := c.waitLease(ctx)
		if err != nil {
			return err
		}
		try := func(ip netip.Addr) (bool, error) {
			created, existing, registered, err := c.kv.createGuarded(ctx, tunnelAddrKey(ip), []byte(c.cfg.Node), nodeKey(c.cfg.Node), lease)
			if err == nil && !registered {
				c.lostRegistration()
				err = fmt.Errorf("%w: its record is gone from etcd; it registers again first", ErrNotRegistered)
			}
			return err == nil && (created || string(existing) == c.cfg.Node), err
		}
		if saved.IsValid() && pool.Contains(saved) {
			if ok, err := try(saved); err != nil || ok {
				got = netip.PrefixFrom(saved, pool.Bits())
				return err
			}
			c.log.WithField("tunnel", saved).Warn("this host's tunnel address from before is another host's now: taking another")
		}
		lists, _, err := c.kv.listMany(ctx, tunnelAddrsPrefix(), Prefix+"nodes/")
		if err != nil {
			return err
		}
		held, nodes := lists[0], lists[1]
		taken := map[netip.Addr]bool{}
		// A live host's address is never taken, even when its claim is not
		// there (etcd lost its data, and that host has not claimed it again
		// yet: its record, made anew at its registration, says it).
		for _, p := range nodes {
			var n NodeInfo
			if json.Unmarshal(p.Value, &n) == nil && n.Name != c.cfg.Node && n.WireGuard != nil {
				taken[n.WireGuard.Tunnel] = true
			}
		}
		for _, p := range held {
			ip, ok := tunnelAddrOf(p.Key)
			if ok && string(p.Value) == c.cfg.Node && ip != saved && pool.Contains(ip) {
				got = netip.PrefixFrom(ip, pool.Bits())
				return nil
			}
			taken[ip] = true
		}
		for ip := range tunnelCandidates(pool, c.cfg.Node) {
			if taken[ip] {
				continue
			}
			if ok, err := try(ip); err != nil || ok {
				got = netip.PrefixFrom(ip, pool.Bits())
				return err
			}
		}
		return conflict("no tunnel address left in the cluster's tunnel pool %s", pool)
	})
	return got, err
}

// tunnelCandidates yields the pool's host addresses, starting at one from
// a hash of node, so that hosts starting at once mostly do not race.
func tunnelCandidates(pool netip.Prefix, node string) func(func(netip.Addr) bool) {
	return func(yield func(netip.Addr) bool) {
		size := uint32(1) << (32 - pool.Bits())
		if size < 4 {
			return
		}
		h := fnv.New32a()
		h.Write([]byte(node))
		hosts := size - 2
		start := h.Sum32() % hosts
		base := pool.Masked().Addr().As4()
		first := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		for i := range hosts {
			v := first + 1 + (start+i)%hosts
			if !yield(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})) {
				return
			}
		}
	}
}

// SetWireGuard puts this host's WireGuard key, port and tunnel address in
// its node record, now (when it is registered) and at every registration.
func (c *Client) SetWireGuard(info WireGuardInfo) error {
	c.mu.Lock()
	c.wg = &info
	lease := c.lease
	c.mu.Unlock()
	if lease == 0 {
		return nil
	}
	b, _ := json.Marshal(c.nodeInfo())
	return c.call("publish this host's WireGuard key", func(ctx context.Context) error {
		return c.kv.put(ctx, nodeKey(c.cfg.Node), b, lease)
	})
}

// nodeInfo is this host's record.
func (c *Client) nodeInfo() NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return NodeInfo{Name: c.cfg.Node, Addr: c.cfg.Advertise, WireGuard: c.wg}
}

// TunnelClaims lists the hosts' tunnel addresses, with the host holding
// each.
func (c *Client) TunnelClaims() (map[netip.Addr]string, error) {
	out := map[netip.Addr]string{}
	err := c.call("list the hosts' tunnel addresses", func(ctx context.Context) error {
		held, _, err := c.kv.list(ctx, tunnelAddrsPrefix())
		for _, p := range held {
			if ip, ok := tunnelAddrOf(p.Key); ok {
				out[ip] = string(p.Value)
			}
		}
		return err
	})
	return out, err
}

// ReleaseTunnel gives back a tunnel address this host claimed and does
// not use.
func (c *Client) ReleaseTunnel(ip netip.Addr) error {
	return c.call("release tunnel address "+ip.String(), func(ctx context.Context) error {
		_, err := c.kv.deleteIf(ctx, tunnelAddrKey(ip), []byte(c.cfg.Node))
		return err
	})
}

// WatchNodes calls fn after every change of the hosts' records (a host
// registered or gone, a key rotated) from now until ctx ends or the watch
// fails, and returns the error (ErrCompacted: call it again).
func (c *Client) WatchNodes(ctx context.Context, fn func()) error {
	var rev int64
	err := c.call("list nodes", func(cctx context.Context) error {
		var err error
		_, rev, err = c.kv.list(cctx, Prefix+"nodes/")
		return err
	})
	if err != nil {
		return err
	}
	for b := range c.kv.watch(ctx, Prefix+"nodes/", rev) {
		if b.Err != nil {
			return b.Err
		}
		if len(b.Events) > 0 {
			fn()
		}
	}
	return ctx.Err()
}
