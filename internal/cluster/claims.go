package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// addrClaim is the value of an address key.
type addrClaim struct {
	Node  string `json:"node"`
	Owner string `json:"owner"` // what this host claimed it for (an endpoint's MAC, "gateway")
}

func addrKey(net string, ip netip.Addr) string { return networkKey(net) + "addrs/" + ip.String() }

// ErrNotRegistered says this host's registration is not in the cluster:
// not made yet, or gone with etcd's data (or a forget). No address is
// claimed then: an etcd that lost its data would grant every claim,
// another host's live addresses included, until the hosts have claimed
// their addresses again after registering anew.
var ErrNotRegistered = errors.New("this host is not registered in the cluster")

// ClaimAddress claims ip in the network for this host, with one
// create-if-absent transaction that also requires this host's registration
// to be there under its lease: of hosts racing for one address exactly one
// wins, and a cluster that lost its data grants nothing until this host
// registered again (a claim waits for a registration under way, up to the
// call timeout). A claim this host already holds for the same owner is a
// success (a retried call); holder names who has it otherwise.
func (c *Client) ClaimAddress(net string, ip netip.Addr, owner string) (ok bool, holder string, err error) {
	mine, _ := json.Marshal(addrClaim{Node: c.cfg.Node, Owner: owner})
	err = c.call("claim "+ip.String()+" in cluster network "+net, func(ctx context.Context) error {
		lease, err := c.waitLease(ctx)
		if err != nil {
			return err
		}
		created, existing, registered, err := c.kv.createGuarded(ctx, addrKey(net, ip), mine, nodeKey(c.cfg.Node), lease)
		if err != nil {
			return err
		}
		if !registered {
			c.lostRegistration()
			return fmt.Errorf("%w: its record is gone from etcd (etcd lost its data, or the host was forgotten); it registers again and reclaims its addresses: retry in a few seconds", ErrNotRegistered)
		}
		if created || string(existing) == string(mine) {
			ok = true
			return nil
		}
		var have addrClaim
		_ = json.Unmarshal(existing, &have)
		holder = have.Node
		return nil
	})
	return ok, holder, err
}

// AdoptClaim makes a claim of this host's for ip, made for another owner,
// owner's (compare-and-swap): it is for a claim the allocator finds in its
// way for an address the host does not hold, left by a claim whose answer
// was lost (etcd applied it after the call timed out) or by a crash before
// the local save. A claim of another host's is never taken: ok is false.
func (c *Client) AdoptClaim(net string, ip netip.Addr, owner string) (ok bool, err error) {
	mine, _ := json.Marshal(addrClaim{Node: c.cfg.Node, Owner: owner})
	err = c.call("adopt this host's claim of "+ip.String()+" in cluster network "+net, func(ctx context.Context) error {
		b, found, err := c.kv.get(ctx, addrKey(net, ip))
		if err != nil || !found {
			return err
		}
		var have addrClaim
		if json.Unmarshal(b, &have) != nil || have.Node != c.cfg.Node {
			return nil
		}
		ok, err = c.kv.replaceIf(ctx, addrKey(net, ip), b, mine)
		return err
	})
	return ok, err
}

// ReleaseAddress gives a claim of this host's back (compare-and-delete: a
// claim another host holds is left alone).
func (c *Client) ReleaseAddress(net string, ip netip.Addr, owner string) error {
	mine, _ := json.Marshal(addrClaim{Node: c.cfg.Node, Owner: owner})
	return c.call("release "+ip.String()+" in cluster network "+net, func(ctx context.Context) error {
		_, err := c.kv.deleteIf(ctx, addrKey(net, ip), mine)
		return err
	})
}

// Claimed lists the addresses claimed in the network, by any host, with
// the host that holds each.
func (c *Client) Claimed(net string) (map[netip.Addr]string, error) {
	claims, err := c.Claims(net)
	out := make(map[netip.Addr]string, len(claims))
	for ip, cl := range claims {
		out[ip] = cl.Node
	}
	return out, err
}

// RecordFacts reads, in one round trip, what a watched endpoint record of
// node for ip is checked against: the address's claim, and the underlay
// address node registered (if it is registered), as of revision rev (the
// record's; 0: now). The record's host wrote both before the record, so
// the member that sent the change has them, and answers without waiting
// for writes under way.
func (c *Client) RecordFacts(net string, ip netip.Addr, node string, rev int64) (f RecordFacts, err error) {
	err = c.call("read the claim of "+ip.String()+" and node "+node, func(ctx context.Context) error {
		vals, err := c.kv.getMany(ctx, rev, addrKey(net, ip), nodeKey(node))
		if err != nil {
			return err
		}
		if vals[0] != nil {
			var a addrClaim
			_ = json.Unmarshal(vals[0], &a)
			f.Claim, f.Claimed = Claim(a), true
		}
		if vals[1] != nil {
			var n NodeInfo
			if err := json.Unmarshal(vals[1], &n); err != nil {
				return fmt.Errorf("decode node %s: %w", node, err)
			}
			f.VTEP, f.Registered = n.Addr, true
			if n.WireGuard != nil {
				f.Tunnel = n.WireGuard.Tunnel
			}
		}
		return nil
	})
	return f, err
}

// RecordFacts are what RecordFacts reads.
type RecordFacts struct {
	Claim      Claim
	Claimed    bool
	VTEP       netip.Addr
	Tunnel     netip.Addr // the node's tunnel address, if it has one
	Registered bool
}

// Claim is an address claim: the host that holds it and what for (the
// endpoint's MAC, or the address itself when Docker gave none).
type Claim struct {
	Node, Owner string
}

// ClaimOf returns the claim of one address, if there is one.
func (c *Client) ClaimOf(net string, ip netip.Addr) (cl Claim, found bool, err error) {
	err = c.call("read the claim of "+ip.String()+" in cluster network "+net, func(ctx context.Context) error {
		b, ok, err := c.kv.get(ctx, addrKey(net, ip))
		if err != nil || !ok {
			return err
		}
		var a addrClaim
		_ = json.Unmarshal(b, &a)
		cl, found = Claim(a), true
		return nil
	})
	return cl, found, err
}

// Claims lists the network's address claims, by any host, in one read.
func (c *Client) Claims(net string) (map[netip.Addr]Claim, error) {
	a, err := c.AllocationOf(net)
	return a.Claims, err
}

// A network's addresses are split in blocks (the allocator sizes them from
// the subnet, the same on every host), and a host claims a block's
// affinity before it hands out addresses from it: hosts then take
// addresses each from blocks of their own, and a claim seldom meets one of
// another host's. A block's affinity is only where a host looks first; the
// address claims stay what makes an address one host's (a host whose
// blocks are full takes a free address from another's block), so a lost
// block record (etcd lost its data) costs nothing but a new block claim.
func blockKey(net string, first netip.Addr) string {
	return networkKey(net) + "blocks/" + first.String()
}

// ClaimBlock claims the affinity of the block starting at first for this
// host, create-if-absent and under the same guard as an address claim;
// holder names who has it otherwise.
func (c *Client) ClaimBlock(net string, first netip.Addr) (ok bool, holder string, err error) {
	err = c.call("claim block "+first.String()+" of cluster network "+net, func(ctx context.Context) error {
		lease, err := c.waitLease(ctx)
		if err != nil {
			return err
		}
		created, existing, registered, err := c.kv.createGuarded(ctx, blockKey(net, first), []byte(c.cfg.Node), nodeKey(c.cfg.Node), lease)
		if err != nil {
			return err
		}
		if !registered {
			c.lostRegistration()
			return fmt.Errorf("%w: its record is gone from etcd: it registers again: retry in a few seconds", ErrNotRegistered)
		}
		ok = created || string(existing) == c.cfg.Node
		holder = string(existing)
		return nil
	})
	return ok, holder, err
}

// Allocation is a network's address claims and block affinities at one
// revision.
type Allocation struct {
	Claims map[netip.Addr]Claim
	Blocks map[netip.Addr]string // a block's first address -> the host it is affine to
}

// AllocationOf reads the network's claims and block affinities in one
// round trip.
func (c *Client) AllocationOf(net string) (Allocation, error) {
	out := Allocation{Claims: map[netip.Addr]Claim{}, Blocks: map[netip.Addr]string{}}
	err := c.call("list addresses of cluster network "+net, func(ctx context.Context) error {
		lists, _, err := c.kv.listMany(ctx, networkKey(net)+"addrs/", networkKey(net)+"blocks/")
		if err != nil {
			return err
		}
		for _, p := range lists[0] {
			if ip, err := netip.ParseAddr(p.Key[strings.LastIndexByte(p.Key, '/')+1:]); err == nil {
				var a addrClaim
				_ = json.Unmarshal(p.Value, &a)
				out.Claims[ip] = Claim(a)
			}
		}
		for _, p := range lists[1] {
			if ip, err := netip.ParseAddr(p.Key[strings.LastIndexByte(p.Key, '/')+1:]); err == nil {
				out.Blocks[ip] = string(p.Value)
			}
		}
		return nil
	})
	return out, err
}
