package firewall

import (
	"fmt"
	"net/netip"
	"strconv"
)

// VXLANTag marks the rule that keeps non-members from speaking VXLAN to
// this host.
const VXLANTag = tagPrefix + "vxlan"

// VXLANGuard says which VXLAN traffic a host with cluster networks takes:
// to its underlay address Local on Port, only from the addresses in the
// ipset Set (the cluster's members, which the daemon keeps current); the
// rest is dropped before it reaches a VXLAN device. One rule, whatever the
// number of hosts.
type VXLANGuard struct {
	Local netip.Addr
	Port  int
	Set   string
}

func (g VXLANGuard) rules() []Rule {
	r := rule("filter", "INPUT", VXLANTag, "-d", hostPrefix(g.Local), "-p", "udp", "-m", "udp", "--dport", strconv.Itoa(g.Port),
		"-m", "set", "!", "--match-set", g.Set, "src", "-j", "DROP")
	r.First = true
	return []Rule{r}
}

func (g VXLANGuard) validate() error {
	if !g.Local.Is4() || g.Port <= 0 || g.Port > 65535 || !safeToken(g.Set) || len(g.Set) > 31 {
		return fmt.Errorf("invalid VXLAN guard %+v", g)
	}
	return nil
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
	if g != nil && f.guard != nil && *g == *f.guard {
		return nil
	}
	err := f.apply(f.v4, exactTag(VXLANTag), func(ruleset) []Rule {
		if g == nil {
			return nil
		}
		return g.rules()
	})
	if err != nil {
		return err
	}
	f.guard = g
	return nil
}

// guardRules are what the guard wants in a family (IPv4 only; none without
// a guard). Caller holds f.mu.
func (f *Firewall) guardRules(fam Family) []Rule {
	if f.guard == nil || fam != IPv4 {
		return nil
	}
	return f.guard.rules()
}
