package driver

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/netaddr"
)

// A remote endpoint record becomes an FDB and a neighbour entry on the
// VXLAN device and a gratuitous ARP to every local container, so one put
// in etcd could divert a network's traffic (a record for the gateway's
// address) or another host's. A record is accepted only if its address is
// a host address of the subnet, not the gateway's nor a local endpoint's;
// if the cluster's claim of that address names the record's node; and if
// its VTEP is the address that node registered. What is refused is logged
// and counted (RefusedRecords, the metric mynet_cluster_refused_records_total).

// recordFacts are what records are checked against: the claim of an
// address and the address a node registered (from one list each for a
// full list of records, one read of both for a watched record).
type recordFacts struct {
	claim func(ip netip.Addr) (cluster.Claim, bool, error)
	vtep  func(node string) (netip.Addr, bool, error)
}

// listFacts reads the network's claims and the registered nodes once, for
// checking a full list of records.
func (d *Driver) listFacts(cfg *NetworkConfig) (recordFacts, error) {
	claims, err := d.cluster.Client.Claims(cfg.Cluster)
	if err != nil {
		return recordFacts{}, err
	}
	nodes, err := d.cluster.Client.Nodes()
	if err != nil {
		return recordFacts{}, err
	}
	addrs := make(map[string]netip.Addr, len(nodes))
	for _, n := range nodes {
		addrs[n.Name] = n.Addr
	}
	return recordFacts{
		claim: func(ip netip.Addr) (cluster.Claim, bool, error) { c, ok := claims[ip]; return c, ok, nil },
		vtep:  func(node string) (netip.Addr, bool, error) { a, ok := addrs[node]; return a, ok, nil },
	}, nil
}

// eventFacts reads what one watched record needs, in one round trip, when
// it is first checked against them.
func (d *Driver) eventFacts(cfg *NetworkConfig, ep cluster.Endpoint) recordFacts {
	var once sync.Once
	var f cluster.RecordFacts
	var err error
	read := func() { once.Do(func() { f, err = d.cluster.Client.RecordFacts(cfg.Cluster, ep.IP, ep.Node, ep.Rev) }) }
	return recordFacts{
		claim: func(netip.Addr) (cluster.Claim, bool, error) { read(); return f.Claim, f.Claimed, err },
		vtep:  func(string) (netip.Addr, bool, error) { read(); return f.VTEP, f.Registered, err },
	}
}

// refusal says why a remote record is not accepted ("" when it is), in the
// words the log and the metric's reason label use.
func (d *Driver) refusal(cfg *NetworkConfig, ep cluster.Endpoint, facts recordFacts) (reason, detail string) {
	ip := ep.IP
	switch {
	case !cfg.Subnet.Contains(ip):
		return "outside_subnet", fmt.Sprintf("%s is not in the subnet %s", ip, cfg.Subnet)
	case ip == cfg.Subnet.Masked().Addr() || ip == netaddr.Last(cfg.Subnet):
		return "not_a_host_address", fmt.Sprintf("%s is the subnet's network or broadcast address", ip)
	case cfg.Gateway.IsValid() && ip == cfg.Gateway.Addr():
		return "gateway", fmt.Sprintf("%s is the gateway's address", ip)
	case d.localByIP(cfg.ID, ip) != nil:
		return "local_endpoint", fmt.Sprintf("%s is an endpoint of this host's", ip)
	}
	claim, claimed, err := facts.claim(ip)
	switch {
	case err != nil:
		return "unchecked", fmt.Sprintf("its claim could not be read: %v", err)
	case !claimed:
		return "no_claim", fmt.Sprintf("no host claims %s", ip)
	case claim.Node != ep.Node:
		return "claimed_elsewhere", fmt.Sprintf("%s is claimed by %s, not %s", ip, claim.Node, ep.Node)
	}
	vtep, registered, err := facts.vtep(ep.Node)
	switch {
	case err != nil:
		return "unchecked", fmt.Sprintf("node %s could not be read: %v", ep.Node, err)
	case !registered:
		return "unregistered_node", fmt.Sprintf("node %s is not registered", ep.Node)
	case vtep != ep.VTEP:
		return "wrong_vtep", fmt.Sprintf("its VTEP %s is not %s's registered address %s", ep.VTEP, ep.Node, vtep)
	}
	return "", ""
}

// accept checks a remote record, and logs and counts a refusal; a
// refusal that can change is held and checked again (held.go).
func (d *Driver) accept(cfg *NetworkConfig, ep cluster.Endpoint, facts recordFacts, log *logrus.Entry) bool {
	reason, detail := d.refusal(cfg, ep, facts)
	if reason == "" {
		d.held.drop(cfg.ID, ep.IP)
		return true
	}
	if changeable(reason) {
		d.held.refuse(cfg.ID, ep, reason)
		detail += " (checked again every 2 s)"
	}
	d.mu.Lock()
	d.refused[reason]++
	d.mu.Unlock()
	log.WithFields(logrus.Fields{"node": ep.Node, "address": ep.IP, "vtep": ep.VTEP, "reason": reason}).
		Warn("refused a remote endpoint record: " + detail)
	return false
}

// RefusedRecords counts the remote endpoint records refused, by reason.
func (d *Driver) RefusedRecords() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]uint64, len(d.refused))
	for k, v := range d.refused {
		out[k] = v
	}
	return out
}
