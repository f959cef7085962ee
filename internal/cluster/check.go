package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// CheckReport is what Check found in the cluster's records, per kind.
type CheckReport struct {
	// ClaimsWithoutEndpoint are claims whose host publishes no endpoint of
	// that address: a container being created, or a claim its host left
	// (it releases its own at its next reclaim; a dead host's stay until
	// forget).
	ClaimsWithoutEndpoint []string `json:"claims_without_endpoint,omitempty"`
	// EndpointsWithoutClaim are endpoint records whose address no claim of
	// the same host backs: peers refuse them.
	EndpointsWithoutClaim []string `json:"endpoints_without_claim,omitempty"`
	// Duplicates are addresses with endpoint records of more than one host.
	Duplicates []string `json:"duplicate_records,omitempty"`
	// GoneHosts are hosts with records but no live registration (gone past
	// their TTL): `mynet cluster forget NODE` once they are gone for good.
	GoneHosts []string `json:"hosts_gone,omitempty"`
	// Fixed are what --fix removed.
	Fixed []string `json:"fixed,omitempty"`
}

// Clean reports whether Check found nothing.
func (r CheckReport) Clean() bool {
	return len(r.ClaimsWithoutEndpoint)+len(r.EndpointsWithoutClaim)+len(r.Duplicates)+len(r.GoneHosts) == 0
}

// Check reads every cluster network's claims and endpoint records and the
// live hosts, in one list each, and reports what does not agree. With fix,
// it deletes the endpoint records no claim of their host backs (the
// duplicates among them), each only while it holds what was read; claims
// and gone hosts are only reported (a host releases its own; forget is for
// a host gone for good).
func (c *Client) Check(fix bool) (CheckReport, error) {
	var rep CheckReport
	err := c.call("check the cluster's records", func(ctx context.Context) error {
		nodes, _, err := c.kv.list(ctx, Prefix+"nodes/")
		if err != nil {
			return err
		}
		alive := map[string]bool{}
		for _, p := range nodes {
			alive[strings.TrimPrefix(p.Key, Prefix+"nodes/")] = true
		}
		pairs, _, err := c.kv.list(ctx, Prefix+"networks/")
		if err != nil {
			return err
		}
		type record struct {
			key   string
			value []byte
			ep    Peer
		}
		claims := map[string]map[netip.Addr]addrClaim{} // network -> address -> claim
		records := map[string]map[netip.Addr][]record{}
		withRecords := map[string]bool{}
		for _, p := range pairs {
			net, tail, _ := strings.Cut(strings.TrimPrefix(p.Key, Prefix+"networks/"), "/")
			switch {
			case strings.HasPrefix(tail, "addrs/"):
				ip, err := netip.ParseAddr(strings.TrimPrefix(tail, "addrs/"))
				if err != nil {
					continue
				}
				var a addrClaim
				_ = json.Unmarshal(p.Value, &a)
				if claims[net] == nil {
					claims[net] = map[netip.Addr]addrClaim{}
				}
				claims[net][ip] = a
				withRecords[a.Node] = true
			case strings.HasPrefix(tail, "endpoints/"):
				ep, ok := parsePeer(net, p.Key, p.Value)
				if !ok {
					continue
				}
				if records[net] == nil {
					records[net] = map[netip.Addr][]record{}
				}
				records[net][ep.IP] = append(records[net][ep.IP], record{p.Key, p.Value, ep})
				withRecords[ep.Node] = true
			}
		}
		for net, byIP := range records {
			for ip, recs := range byIP {
				if len(recs) > 1 {
					var who []string
					for _, r := range recs {
						who = append(who, r.ep.Node)
					}
					slices.Sort(who)
					rep.Duplicates = append(rep.Duplicates, fmt.Sprintf("%s %s: records of %s", net, ip, strings.Join(who, ", ")))
				}
				for _, r := range recs {
					if cl, ok := claims[net][ip]; ok && cl.Node == r.ep.Node {
						continue
					}
					rep.EndpointsWithoutClaim = append(rep.EndpointsWithoutClaim, fmt.Sprintf("%s %s of %s", net, ip, r.ep.Node))
					if fix {
						if done, err := c.kv.deleteIf(ctx, r.key, r.value); err != nil {
							return err
						} else if done {
							rep.Fixed = append(rep.Fixed, "removed the record "+r.key)
						}
					}
				}
			}
		}
		for net, byIP := range claims {
			for ip, cl := range byIP {
				if !slices.ContainsFunc(records[net][ip], func(r record) bool { return r.ep.Node == cl.Node }) {
					rep.ClaimsWithoutEndpoint = append(rep.ClaimsWithoutEndpoint, fmt.Sprintf("%s %s claimed by %s", net, ip, cl.Node))
				}
			}
		}
		for node := range withRecords {
			if !alive[node] {
				rep.GoneHosts = append(rep.GoneHosts, node)
			}
		}
		for _, l := range [][]string{rep.ClaimsWithoutEndpoint, rep.EndpointsWithoutClaim, rep.Duplicates, rep.GoneHosts, rep.Fixed} {
			slices.Sort(l)
		}
		return nil
	})
	return rep, err
}
