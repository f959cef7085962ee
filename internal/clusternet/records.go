package clusternet

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/netaddr"
)

// A peer's record becomes an FDB and a neighbour entry on the VXLAN device
// and a gratuitous ARP to every local container, so one put in etcd could
// divert a network's traffic (a record for the gateway's address) or
// another host's. A record is accepted only if its address is a host
// address of the subnet, not the gateway's nor a local endpoint's; if the
// cluster's claim of that address names the record's node; and if its
// VTEP, of this host's underlay's family, is the address that node
// registered (its tunnel address, for an
// encrypted network). What is refused is logged and
// counted (Table.Refused, the metric mynet_cluster_refused_records_total).

// facts are what records are checked against: the claim of an address and
// the address a node registered (from one list each for a full list of
// records, one read of both for a watched record).
type facts struct {
	claim func(ip netip.Addr) (cluster.Claim, bool, error)
	vtep  func(node string) (netip.Addr, bool, error)
}

// listFacts reads the network's claims and the registered nodes once, for
// checking a full list of records.
func (n *Network) listFacts() (facts, error) {
	client := n.t.cfg.Client
	claims, err := client.Claims(n.cfg.Cluster)
	if err != nil {
		return facts{}, err
	}
	nodes, err := client.Nodes()
	if err != nil {
		return facts{}, err
	}
	addrs := make(map[string]netip.Addr, len(nodes))
	for _, node := range nodes {
		switch {
		case !n.cfg.Encrypted:
			addrs[node.Name] = node.Addr
		case node.WireGuard != nil:
			addrs[node.Name] = node.WireGuard.Tunnel
		}
	}
	return facts{
		claim: func(ip netip.Addr) (cluster.Claim, bool, error) { c, ok := claims[ip]; return c, ok, nil },
		vtep:  func(node string) (netip.Addr, bool, error) { a, ok := addrs[node]; return a, ok, nil },
	}, nil
}

// eventFacts reads what one watched record needs, in one round trip, when
// it is first checked against them.
func (n *Network) eventFacts(r cluster.Peer) facts {
	var once sync.Once
	var f cluster.RecordFacts
	var err error
	read := func() {
		once.Do(func() { f, err = n.t.cfg.Client.RecordFacts(n.cfg.Cluster, r.IP, r.Node, r.Rev) })
	}
	return facts{
		claim: func(netip.Addr) (cluster.Claim, bool, error) { read(); return f.Claim, f.Claimed, err },
		vtep: func(string) (netip.Addr, bool, error) {
			read()
			if n.cfg.Encrypted {
				return f.Tunnel, f.Registered && f.Tunnel.IsValid(), err
			}
			return f.VTEP, f.Registered, err
		},
	}
}

// refusal says why a peer's record is not accepted ("" when it is), in the
// words the log and the metric's reason label use.
func (n *Network) refusal(r cluster.Peer, f facts) (reason, detail string) {
	ip, subnet, gateway := r.IP, n.cfg.Subnet, n.cfg.Gateway
	if ip.Is6() {
		subnet, gateway = n.cfg.Subnet6, n.cfg.Gateway6
	}
	switch {
	case !subnet.IsValid() || !subnet.Contains(ip):
		return "outside_subnet", fmt.Sprintf("%s is not in the network's subnet %s", ip, subnet)
	case ip == subnet.Masked().Addr() || ip.Is4() && ip == netaddr.Last(subnet):
		return "not_a_host_address", fmt.Sprintf("%s is the subnet's network or broadcast address", ip)
	case gateway.IsValid() && ip == gateway.Addr():
		return "gateway", fmt.Sprintf("%s is the gateway's address", ip)
	}
	if _, ok := n.locals.Local(ip); ok {
		return "local_endpoint", fmt.Sprintf("%s is an endpoint of this host's", ip)
	}
	if here := n.vtep(); here.IsValid() && r.VTEP.Is4() != here.Is4() {
		// A VXLAN device's tunnels are of its source's family.
		return "vtep_family", fmt.Sprintf("its VTEP %s and this host's %s are of two families: the hosts of a cluster must all advertise IPv4 addresses, or all IPv6 ones", r.VTEP, here)
	}
	claim, claimed, err := f.claim(ip)
	switch {
	case err != nil:
		return "unchecked", fmt.Sprintf("its claim could not be read: %v", err)
	case !claimed:
		return "no_claim", fmt.Sprintf("no host claims %s", ip)
	case claim.Node != r.Node:
		return "claimed_elsewhere", fmt.Sprintf("%s is claimed by %s, not %s", ip, claim.Node, r.Node)
	}
	vtep, registered, err := f.vtep(r.Node)
	switch {
	case err != nil:
		return "unchecked", fmt.Sprintf("node %s could not be read: %v", r.Node, err)
	case !registered:
		return "unregistered_node", fmt.Sprintf("node %s is not registered", r.Node)
	case vtep != r.VTEP:
		return "wrong_vtep", fmt.Sprintf("its VTEP %s is not %s's registered address %s", r.VTEP, r.Node, vtep)
	}
	return "", ""
}

// accept checks a peer's record, and logs and counts a refusal; a refusal
// that can change is held and checked again (held.go).
func (n *Network) accept(r cluster.Peer, f facts) bool {
	reason, detail := n.refusal(r, f)
	if reason == "" {
		n.held.drop(r.IP)
		return true
	}
	if changeable(reason) {
		n.held.refuse(r, reason)
		detail += " (checked again every 2 s)"
	}
	n.t.countRefused(reason)
	n.log.WithFields(logrus.Fields{"node": r.Node, "address": r.IP, "vtep": r.VTEP, "reason": reason}).
		Warn("refused a peer's record: " + detail)
	return false
}
