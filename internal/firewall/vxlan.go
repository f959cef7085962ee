package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// VXLANTag marks the rule that keeps non-members from speaking VXLAN to
// this host.
const VXLANTag = tagPrefix + "vxlan"

// VXLANGuard says which VXLAN traffic a host with cluster networks takes:
// to its underlay address Local on mynet's VXLAN ports (Ports: one, but for
// networks made before mynet had a port of its own), only from the
// addresses in the ipset Set (the cluster's members, which the daemon keeps
// current); the rest is dropped before it reaches a VXLAN device. One rule
// per port, whatever the number of hosts. Other ports (Docker overlay's
// 4789) are not mynet's to guard.
//
// Sealed ports are encrypted networks' VXLAN, which may only travel inside
// the WireGuard device Tunnel: dropped when it comes in on, or would go
// out of, any other link (fail closed: never in clear on the underlay,
// whatever happens to the device or the routes).
type VXLANGuard struct {
	Local  netip.Addr
	Ports  []int // sorted, no duplicates
	Set    string
	Sealed []int // sorted, no duplicates
	Tunnel string
}

// rules are the guard's rules in a family: the members' rule in the
// family of Local (an IPv6 underlay's in ip6tables, against an IPv6 set);
// the sealed ports' in IPv4, the family of the tunnel's addresses, which
// an encrypted network's VXLAN is sent to.
func (g VXLANGuard) rules(fam Family) []Rule {
	var out []Rule
	if fam == IPv4 {
		out = append(out, g.sealedRules()...)
	}
	if (fam == IPv6) != g.Local.Is6() {
		return out
	}
	for _, port := range g.Ports {
		r := rule("filter", "INPUT", VXLANTag, "-d", hostPrefix(g.Local), "-p", "udp", "-m", "udp", "--dport", strconv.Itoa(port),
			"-m", "set", "!", "--match-set", g.Set, "src", "-j", "DROP")
		r.First = true
		out = append(out, r)
	}
	return out
}

func (g VXLANGuard) sealedRules() []Rule {
	var out []Rule
	for _, port := range g.Sealed {
		in := rule("filter", "INPUT", VXLANTag, "-p", "udp", "-m", "udp", "--dport", strconv.Itoa(port), "!", "-i", g.Tunnel, "-j", "DROP")
		in.First = true
		outr := rule("filter", "OUTPUT", VXLANTag, "-p", "udp", "-m", "udp", "--dport", strconv.Itoa(port), "!", "-o", g.Tunnel, "-j", "DROP")
		outr.First = true
		out = append(out, in, outr)
	}
	return out
}

func (g VXLANGuard) validate() error {
	ok := (len(g.Ports) > 0 || len(g.Sealed) > 0) && validPorts(g.Ports) && validPorts(g.Sealed)
	if len(g.Ports) > 0 {
		ok = ok && g.Local.IsValid() && !g.Local.Is4In6() && safeToken(g.Set) && len(g.Set) <= 31
	}
	if len(g.Sealed) > 0 {
		ok = ok && safeToken(g.Tunnel) && g.Tunnel != "" && len(g.Tunnel) <= 15
	}
	if !ok {
		return fmt.Errorf("invalid VXLAN guard %+v", g)
	}
	return nil
}

func validPorts(ports []int) bool {
	ok := slices.IsSorted(ports)
	for i, p := range ports {
		ok = ok && p > 0 && p <= 65535 && (i == 0 || p != ports[i-1])
	}
	return ok
}

func (g VXLANGuard) equal(o VXLANGuard) bool {
	return g.Local == o.Local && g.Set == o.Set && slices.Equal(g.Ports, o.Ports) && g.Tunnel == o.Tunnel && slices.Equal(g.Sealed, o.Sealed)
}

// SetVXLANGuard installs the guard (nil removes it); Reconcile keeps it
// from then on. The ipset must exist first.
func (f *Firewall) SetVXLANGuard(g *VXLANGuard) error {
	if g != nil {
		if err := g.validate(); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if g == nil && f.guard == nil {
		return nil
	}
	if g != nil && f.guard != nil && g.equal(*f.guard) {
		return nil
	}
	if g != nil && g.Local.Is6() && len(g.Ports) > 0 && f.v6 == nil {
		return fmt.Errorf("the VXLAN guard of IPv6 underlay address %s needs ip6tables, which this host does not have", g.Local)
	}
	for _, b := range f.backends() {
		err := f.apply(b, exactTag(VXLANTag), func(ruleset) []Rule {
			if g == nil {
				return nil
			}
			return g.rules(b.family)
		})
		if err != nil {
			return err
		}
	}
	f.guard = g
	return nil
}

// guardRules are what the guard wants in a family (none without a
// guard). Caller holds f.mu.
func (f *Firewall) guardRules(fam Family) []Rule {
	if f.guard == nil {
		return nil
	}
	return f.guard.rules(fam)
}
