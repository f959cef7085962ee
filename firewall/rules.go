package firewall

import (
	"fmt"
	"net/netip"
	"strings"
)

// Our chains.
const (
	ChainForward     = "MYNET-FORWARD"
	ChainPostrouting = "MYNET-POSTROUTING"
)

// tagPrefix starts the comment that marks a rule as a network's.
const tagPrefix = "mynet:"

// Network is what the firewall needs to know of one network.
type Network struct {
	ID         string       // Docker's network ID; its first 12 characters tag the rules
	Bridge     string       // the network's bridge
	Subnet     netip.Prefix // IPv4 subnet
	ICC        bool         // containers on the bridge may talk to each other
	Masquerade bool         // NAT traffic leaving through other interfaces
	Internal   bool         // no traffic in or out of the bridge at all
}

// Rule is one iptables rule of ours.
type Rule struct {
	Table string
	Chain string
	Spec  []string // match and target, as after "-A CHAIN"
}

// String renders the rule as iptables-save prints it (comments quoted), which
// iptables-restore reads back.
func (r Rule) String() string {
	parts := append([]string{"-A", r.Chain}, r.Spec...)
	for i := 1; i < len(parts); i++ {
		if parts[i-1] == "--comment" {
			parts[i] = `"` + parts[i] + `"`
		}
	}
	return strings.Join(parts, " ")
}

// Tag returns the comment that marks the rules of the network with this ID.
func Tag(networkID string) string {
	if len(networkID) > 12 {
		networkID = networkID[:12]
	}
	return tagPrefix + networkID
}

// Validate checks what the rules are built from, so no value can smuggle
// extra arguments into an iptables command line.
func (n Network) Validate() error {
	if n.ID == "" || strings.ContainsAny(n.ID, " \t\n\"'") {
		return fmt.Errorf("invalid network ID %q", n.ID)
	}
	if n.Bridge == "" || len(n.Bridge) > 15 || strings.ContainsAny(n.Bridge, " \t\n\"'!/:") {
		return fmt.Errorf("invalid bridge name %q", n.Bridge)
	}
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() {
		return fmt.Errorf("invalid IPv4 subnet %v", n.Subnet)
	}
	return nil
}

// Rules returns the complete rule set of a network, in order.
func (n Network) Rules() []Rule {
	tag := []string{"-m", "comment", "--comment", Tag(n.ID)}
	fwd := func(spec ...string) Rule {
		return Rule{Table: "filter", Chain: ChainForward, Spec: withTag(spec, tag)}
	}
	iccTarget := "ACCEPT"
	if !n.ICC {
		iccTarget = "DROP"
	}
	if n.Internal {
		// Only traffic between the bridge's own ports; everything else
		// entering or leaving the bridge is dropped here.
		return []Rule{
			fwd("-i", n.Bridge, "-o", n.Bridge, "-j", iccTarget),
			fwd("-i", n.Bridge, "!", "-o", n.Bridge, "-j", "DROP"),
			fwd("!", "-i", n.Bridge, "-o", n.Bridge, "-j", "DROP"),
		}
	}
	rules := []Rule{
		fwd("-o", n.Bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"),
		fwd("-i", n.Bridge, "-o", n.Bridge, "-j", iccTarget),
		fwd("-i", n.Bridge, "!", "-o", n.Bridge, "-j", "ACCEPT"),
	}
	if n.Masquerade {
		rules = append(rules, Rule{Table: "nat", Chain: ChainPostrouting,
			Spec: withTag([]string{"-s", n.Subnet.String(), "!", "-o", n.Bridge}, tag, "-j", "MASQUERADE")})
	}
	return rules
}

// withTag puts the comment match before the target ("-j ..."), where
// iptables-save prints it.
func withTag(spec, tag []string, target ...string) []string {
	out := make([]string, 0, len(spec)+len(tag)+len(target))
	if len(target) == 0 {
		for i := range spec {
			if spec[i] == "-j" {
				target = spec[i:]
				spec = spec[:i]
				break
			}
		}
	}
	out = append(out, spec...)
	out = append(out, tag...)
	return append(out, target...)
}
