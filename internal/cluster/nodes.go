package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// NodeInfo is a host's record.
type NodeInfo struct {
	Name string     `json:"name"`
	Addr netip.Addr `json:"addr"`
	// WireGuard is the host's tunnel for encrypted networks (tunnels.go);
	// nil while it has none.
	WireGuard *WireGuardInfo `json:"wireguard,omitempty"`
}

func nodeKey(node string) string { return Prefix + "nodes/" + node }

// Register puts this host's record under a lease and keeps the lease alive
// until ctx ends. A previous lease (a restart's, from the host's own state)
// that is still alive is reused, so peers see no churn. It returns the
// lease in use and a channel closed when the lease is lost (etcd expired it
// while this host was cut off): then register again and re-publish.
func (c *Client) Register(ctx context.Context, previous int64) (int64, <-chan struct{}, error) {
	var lease int64
	// Once: a create retried after its answer was lost would find this
	// host's own record and take it for another host's.
	err := c.callOnce("register node "+c.cfg.Node, func(cctx context.Context) error {
		if previous != 0 {
			remaining, granted, err := c.kv.leaseTTL(cctx, previous)
			switch {
			case err != nil:
				return err
			case remaining > 0 && granted != c.cfg.TTL.Truncate(time.Second):
				// Restarted with another --cluster-ttl: a new lease
				// (revoking the old takes this host's record with it).
				if err := c.kv.revoke(cctx, previous); err != nil {
					return err
				}
			case remaining > 0:
				lease = previous
			}
		}
		b, _ := json.Marshal(c.nodeInfo())
		if lease != 0 {
			return c.kv.put(cctx, nodeKey(c.cfg.Node), b, lease)
		}
		// A new lease: the record must not exist. One that does is
		// another live host's (a dead host's went with its lease), and
		// two hosts under one name would withdraw each other's records.
		var err error
		if lease, err = c.kv.grant(cctx, c.cfg.TTL); err != nil {
			return err
		}
		created, existing, err := c.kv.create(cctx, nodeKey(c.cfg.Node), b, lease)
		if err != nil || created {
			return err
		}
		var other NodeInfo
		_ = json.Unmarshal(existing, &other)
		if other.Addr == c.cfg.Advertise {
			// This host's own record under a lease it lost track of (an
			// older backup restored, a lease kept alive past a crash):
			// taken over, only while it still holds what was read.
			if ok, err := c.kv.replaceIfLease(cctx, nodeKey(c.cfg.Node), existing, b, lease); err != nil || ok {
				if ok {
					c.log.Info("took over this host's own earlier record in the cluster (same name and underlay address)")
				}
				return err
			}
		}
		_ = c.kv.revoke(cctx, lease)
		lease = 0
		return &clusterError{kind: ErrNodeNameInUse, msg: fmt.Sprintf(
			"node name %q is in use by another live host (underlay address %s): give this host a --node-name of its own (the default is the hostname), or stop mynet on that host first",
			c.cfg.Node, other.Addr)}
	})
	if err != nil {
		return 0, nil, err
	}
	if err := c.call("read the cluster's epoch", c.ensureEpoch); err != nil {
		return 0, nil, err
	}
	kept, err := c.kv.keepAlive(ctx, lease)
	if err != nil {
		return 0, nil, err
	}
	// Lost when the keep-alive ends, or when a call finds the record gone
	// (lostRegistration).
	lost := make(chan struct{})
	var once sync.Once
	end := func() { once.Do(func() { close(lost) }) }
	go func() {
		select {
		case <-kept:
		case <-lost:
		}
		end()
	}()
	c.mu.Lock()
	c.lease, c.drop = lease, end
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
	c.mu.Unlock()
	c.log.WithFields(logrus.Fields{"lease": lease, "reused": lease == previous}).Info("registered in the cluster")
	return lease, lost, nil
}

// Lease is this host's current lease (0 while it is not registered).
func (c *Client) Lease() int64 { return c.currentLease() }

func (c *Client) currentLease() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lease
}

// Nodes lists the hosts whose lease is alive.
func (c *Client) Nodes() ([]NodeInfo, error) {
	var out []NodeInfo
	err := c.call("list nodes", func(ctx context.Context) error {
		pairs, _, err := c.kv.list(ctx, Prefix+"nodes/")
		for _, p := range pairs {
			var n NodeInfo
			if json.Unmarshal(p.Value, &n) == nil {
				out = append(out, n)
			}
		}
		return err
	})
	return out, err
}

// NodeAddress returns the underlay address a live host registered, if it
// is registered.
func (c *Client) NodeAddress(node string) (addr netip.Addr, found bool, err error) {
	err = c.call("read node "+node, func(ctx context.Context) error {
		b, ok, err := c.kv.get(ctx, nodeKey(node))
		if err != nil || !ok {
			return err
		}
		var n NodeInfo
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("decode node %s: %w", node, err)
		}
		addr, found = n.Addr, true
		return nil
	})
	return addr, found, err
}

// Forget removes a dead host for good: its record, its endpoints, its block
// affinities and every address it claimed, in every network (in transactions of at most 128
// operations). It returns how many keys went. A host whose lease is alive
// is refused (ErrNodeAlive): its containers use those addresses. force
// forgets it all the same, for a host known dead whose lease has not run
// out yet.
func (c *Client) Forget(node string, force bool) (int, error) {
	var keys []string
	err := c.call("forget node "+node, func(ctx context.Context) error {
		if b, alive, err := c.kv.get(ctx, nodeKey(node)); err != nil {
			return err
		} else if alive && !force {
			var n NodeInfo
			_ = json.Unmarshal(b, &n)
			return &clusterError{kind: ErrNodeAlive, msg: fmt.Sprintf(
				"host %s is alive (its mynet, at %s, holds its lease), and its containers use the addresses it claimed: "+
					"stop mynet on it first (systemctl stop mynet, or docker plugin disable) and wait for its --cluster-ttl, "+
					"or give --force if the host is known dead", node, n.Addr)}
		}
		pairs, _, err := c.kv.list(ctx, Prefix+"networks/")
		if err != nil {
			return err
		}
		for _, p := range pairs {
			rest := strings.TrimPrefix(p.Key, Prefix+"networks/")
			_, tail, _ := strings.Cut(rest, "/")
			switch {
			case strings.HasPrefix(tail, "endpoints/"+node+"/"), tail == "hosts/"+node,
				strings.HasPrefix(tail, "blocks/") && string(p.Value) == node:
				keys = append(keys, p.Key)
			case strings.HasPrefix(tail, "addrs/"):
				var a addrClaim
				if json.Unmarshal(p.Value, &a) == nil && a.Node == node {
					keys = append(keys, p.Key)
				}
			}
		}
		tunnels, _, err := c.kv.list(ctx, tunnelAddrsPrefix())
		if err != nil {
			return err
		}
		for _, p := range tunnels {
			if string(p.Value) == node {
				keys = append(keys, p.Key)
			}
		}
		keys = append(keys, nodeKey(node), Prefix+"marks/"+node)
		return c.kv.deleteKeys(ctx, keys)
	})
	return len(keys), err
}
