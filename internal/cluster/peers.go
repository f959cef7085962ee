package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// Peer is a container's address on a cluster network, published by its
// host so the others can reach it over VXLAN.
type Peer struct {
	Network string     `json:"-"`
	Node    string     `json:"node"`
	IP      netip.Addr `json:"ip"`
	MAC     string     `json:"mac"`
	VTEP    netip.Addr `json:"vtep"` // the host's underlay address
	// Name is the container's name, for the names other hosts answer
	// (Engine 29 gives it; "" otherwise).
	Name string `json:"name,omitempty"`
	// Aliases are the other names Docker's resolver answers for it on the
	// network (network aliases, Compose's service names, its short ID),
	// learned from the host's Engine.
	Aliases []string `json:"aliases,omitempty"`
	// Rev is the revision of a watched record's change (0 otherwise).
	Rev int64 `json:"-"`
}

func endpointKey(net, node string, ip netip.Addr) string {
	return networkKey(net) + "endpoints/" + node + "/" + ip.String()
}

// PublishPeer announces one of this host's endpoints (Register first).
// The record is under no lease: a host cut off from etcd longer than its
// TTL still has its containers, which its peers keep reaching over the
// underlay. Its liveness is its node record's, which is under the lease;
// its records go when it removes its endpoints, withdraws them at its next
// start, or is forgotten.
//
// Its VTEP is this host's underlay address, unless ep gives another (an
// encrypted network's: the host's tunnel address).
func (c *Client) PublishPeer(ep Peer) error {
	lease := c.currentLease()
	if lease == 0 {
		return fmt.Errorf("publish endpoint %s: %w (this host is not registered in the cluster yet)", ep.IP, ErrUnavailable)
	}
	ep.Node = c.cfg.Node
	if !ep.VTEP.IsValid() {
		ep.VTEP = c.cfg.Advertise
	}
	b, _ := json.Marshal(ep)
	return c.call("publish endpoint "+ep.IP.String(), func(ctx context.Context) error {
		return c.kv.put(ctx, endpointKey(ep.Network, ep.Node, ep.IP), b, 0)
	})
}

// UnpublishPeer withdraws one of this host's endpoints.
func (c *Client) UnpublishPeer(net string, ip netip.Addr) error {
	return c.call("withdraw endpoint "+ip.String(), func(ctx context.Context) error {
		return c.kv.deleteKeys(ctx, []string{endpointKey(net, c.cfg.Node, ip)})
	})
}

// parsePeer reads an endpoint key; ok is false for other keys.
func parsePeer(net, key string, value []byte) (Peer, bool) {
	rest, ok := strings.CutPrefix(key, networkKey(net)+"endpoints/")
	if !ok {
		return Peer{}, false
	}
	node, ipText, ok := strings.Cut(rest, "/")
	if !ok {
		return Peer{}, false
	}
	ip, err := netip.ParseAddr(ipText)
	if err != nil {
		return Peer{}, false
	}
	ep := Peer{Network: net, Node: node, IP: ip}
	if value != nil {
		_ = json.Unmarshal(value, &ep)
		ep.Network, ep.Node, ep.IP = net, node, ip
	}
	return ep, true
}

// Endpoints lists every host's endpoints of the network at one revision,
// from which WatchPeers continues.
func (c *Client) Peers(net string) ([]Peer, int64, error) {
	var out []Peer
	var rev int64
	err := c.call("list endpoints of cluster network "+net, func(ctx context.Context) error {
		pairs, r, err := c.kv.list(ctx, networkKey(net)+"endpoints/")
		rev = r
		for _, p := range pairs {
			if ep, ok := parsePeer(net, p.Key, p.Value); ok {
				out = append(out, ep)
			}
		}
		return err
	})
	return out, rev, err
}

// WatchPeers calls fn for every endpoint published (deleted false) or
// withdrawn (deleted true; only Network, Node and IP are set) after rev,
// until ctx ends or the watch fails; it returns the error, ErrCompacted when
// the caller must list again.
func (c *Client) WatchPeers(ctx context.Context, net string, rev int64, fn func(ep Peer, deleted bool)) error {
	for b := range c.kv.watch(ctx, networkKey(net)+"endpoints/", rev) {
		if b.Err != nil {
			return b.Err
		}
		for _, ev := range b.Events {
			if ep, ok := parsePeer(net, ev.Key, ev.Value); ok {
				ep.Rev = ev.Rev
				fn(ep, ev.Delete)
			}
		}
	}
	return ctx.Err()
}
