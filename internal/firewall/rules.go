package firewall

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mynet/mynet/internal/ids"
)

// Our chains.
const (
	ChainForward     = "MYNET-FORWARD"     // filter, jumped to from FORWARD
	ChainIsolation   = "MYNET-ISOLATION"   // filter, first in DOCKER-USER and in MYNET-FORWARD: drops only
	ChainIngress     = "MYNET-INGRESS"     // filter, in the guard: what may not enter each bridge
	ChainEgress      = "MYNET-EGRESS"      // filter, in the guard: what may not leave each bridge
	ChainBridges     = "MYNET-BRIDGES"     // filter: accept what the guard let through
	ChainAccept      = "MYNET-ACCEPT"      // filter: mark the connection ours, accept
	ChainDNAT        = "MYNET-DNAT"        // nat, from PREROUTING and OUTPUT: published ports
	ChainPostrouting = "MYNET-POSTROUTING" // nat, from POSTROUTING: masquerade, SNAT, hairpin
	ChainLoopback    = "MYNET-LOOPBACK"    // raw, from PREROUTING: ports published on loopback addresses
)

// ConnMark is the conntrack mark bit mynet sets on connections it accepted.
// Every later packet of such a connection is accepted by the first rule of
// MYNET-FORWARD, so the per-packet cost does not grow with the number of
// networks: only a connection's first packet walks the per-network rules.
const ConnMark = "0x1000000"

// tagPrefix starts the comment that marks a rule as a network's or an
// endpoint's.
const tagPrefix = "mynet:"

// Family is an IP version.
type Family int

// The families mynet programs.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string { return "IPv" + strconv.Itoa(int(f)) }

func (f Family) icmp() string {
	if f == IPv6 {
		return "ipv6-icmp"
	}
	return "icmp"
}

// Network is what the firewall needs to know of one network.
type Network struct {
	ID         string       // Docker's network ID; its first 12 characters tag the rules
	Bridge     string       // the network's bridge
	Subnet     netip.Prefix // IPv4 subnet, or zero with InhibitIPv4-like setups
	Subnet6    netip.Prefix // IPv6 subnet, or zero
	ICC        bool         // containers on the bridge may talk to each other
	Masquerade bool         // NAT traffic leaving through other interfaces
	Internal   bool         // no traffic in or out of the bridge at all
	// SNATSource, when valid, replaces MASQUERADE with SNAT to this IPv4
	// address (com.docker.network.host_ipv4).
	SNATSource netip.Addr
	// SNATSource6 is the same for IPv6 (com.docker.network.host_ipv6).
	SNATSource6 netip.Addr
	// Trusted are host interfaces whose traffic may reach published ports
	// on the containers' own addresses in nat mode, as the host itself may
	// (com.docker.network.bridge.trusted_host_interfaces).
	Trusted []string
	Routed  bool // IPv4 gateway mode "routed": no NAT, direct access to published ports
	Routed6 bool // the same for IPv6
	// Unprotected (gateway mode "nat-unprotected"): NAT as usual, and
	// routed traffic reaches every container port directly.
	Unprotected  bool
	Unprotected6 bool // the same for IPv6
}

// PortBinding is one published port of an endpoint.
type PortBinding struct {
	Proto         string     // tcp, udp or sctp
	HostIP        netip.Addr // zero: every host address
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
}

// Endpoint is what the firewall needs to know of one endpoint.
type Endpoint struct {
	NetworkID  string
	EndpointID string
	Ports      []PortBinding
}

// Rule is one iptables rule of ours.
type Rule struct {
	Table string
	Chain string
	Spec  []string // match and target, as after "-A CHAIN"
	// First puts the rule at the top of its chain instead of the end: an
	// endpoint's exceptions in MYNET-INGRESS must precede the networks' DROPs.
	First bool
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
func Tag(networkID string) string { return tagPrefix + ids.Short(networkID) }

// EndpointTag returns the comment that marks an endpoint's rules.
func EndpointTag(networkID, endpointID string) string {
	return tagPrefix + ids.Short(networkID) + ":" + ids.Short(endpointID)
}

// safeToken accepts a value for an iptables command line: not empty, not
// starting with '-' (it would read as an option), no quote, space, '!' or
// separator.
func safeToken(s string) bool {
	return s != "" && s[0] != '-' && !strings.ContainsAny(s, " \t\n\"'!/:\\")
}

// Validate checks what the rules are built from, so no value can smuggle
// extra arguments into an iptables command line.
func (n Network) Validate() error {
	if !safeToken(n.ID) {
		return fmt.Errorf("invalid network ID %q", n.ID)
	}
	if !safeToken(n.Bridge) || len(n.Bridge) > 15 {
		return fmt.Errorf("invalid bridge name %q", n.Bridge)
	}
	if n.Subnet.IsValid() && !n.Subnet.Addr().Is4() {
		return fmt.Errorf("invalid IPv4 subnet %v", n.Subnet)
	}
	if n.Subnet6.IsValid() && !n.Subnet6.Addr().Is6() {
		return fmt.Errorf("invalid IPv6 subnet %v", n.Subnet6)
	}
	if !n.Subnet.IsValid() && !n.Subnet6.IsValid() {
		return fmt.Errorf("network %s has no subnet", n.ID)
	}
	if n.SNATSource.IsValid() && !n.SNATSource.Is4() {
		return fmt.Errorf("invalid SNAT source %v", n.SNATSource)
	}
	if n.SNATSource6.IsValid() && (!n.SNATSource6.Is6() || n.SNATSource6.Is4In6()) {
		return fmt.Errorf("invalid IPv6 SNAT source %v", n.SNATSource6)
	}
	for _, t := range n.Trusted {
		if !safeToken(t) || len(t) > 15 {
			return fmt.Errorf("invalid trusted interface name %q", t)
		}
	}
	return nil
}

// Validate checks an endpoint's bindings.
func (e Endpoint) Validate() error {
	if !safeToken(e.NetworkID) || !safeToken(e.EndpointID) {
		return fmt.Errorf("invalid network or endpoint ID %q/%q", e.NetworkID, e.EndpointID)
	}
	for _, p := range e.Ports {
		switch p.Proto {
		case "tcp", "udp", "sctp":
		default:
			return fmt.Errorf("invalid protocol %q", p.Proto)
		}
		if p.HostPort == 0 || p.ContainerPort == 0 || !p.ContainerIP.IsValid() {
			return fmt.Errorf("incomplete port binding %+v", p)
		}
		if p.HostIP.IsValid() && p.HostIP.Is4() != p.ContainerIP.Is4() {
			return fmt.Errorf("port binding %+v mixes IPv4 and IPv6", p)
		}
	}
	return nil
}

func (n Network) subnet(f Family) netip.Prefix {
	if f == IPv6 {
		return n.Subnet6
	}
	return n.Subnet
}

func (n Network) routed(f Family) bool {
	if f == IPv6 {
		return n.Routed6
	}
	return n.Routed
}

func (n Network) unprotected(f Family) bool {
	if f == IPv6 {
		return n.Unprotected6
	}
	return n.Unprotected
}

// DefaultDockerBridges are the interfaces of Docker's own bridge networks
// that mynet knows without looking (docker0 and the br-<id> of user-defined
// ones), which mynet networks are isolated from in both directions. Bridges
// Docker names otherwise are learned from its rules (dockerbridges.go).
var DefaultDockerBridges = []string{"docker0", "br-+"}

// Rules returns the rule set of a network for one family, in order. A
// family the network has no subnet in gets no rules. What all networks
// share (accepting what the guard lets through, isolation from Docker's
// bridges, the host's own DNATed connections) matches the bridges' device
// group instead (base.go), so a network in NAT mode has three rules: the
// guard's drop into its bridge, its masquerade and its hairpin.
func (n Network) Rules(f Family) []Rule {
	subnet := n.subnet(f)
	if !subnet.IsValid() {
		return nil
	}
	tag := Tag(n.ID)
	br := n.Bridge
	in := func(spec ...string) Rule { return rule("filter", ChainIngress, tag, spec...) }
	out := func(spec ...string) Rule { return rule("filter", ChainEgress, tag, spec...) }
	post := func(spec ...string) Rule { return rule("nat", ChainPostrouting, tag, spec...) }

	// The guard (MYNET-INGRESS, MYNET-EGRESS) only drops or returns; what
	// it lets through to or from a mynet bridge MYNET-BRIDGES accepts.
	var rules []Rule
	if !n.ICC {
		rules = append(rules, in("-i", br, "-o", br, "-j", "DROP"))
	}
	// What enters the bridge from elsewhere; its own ports' traffic is the
	// ICC rule's.
	switch {
	case n.Internal:
		// Nothing enters or leaves the bridge; its containers only see each other.
		rules = append(rules, in("!", "-i", br, "-o", br, "-j", "DROP"),
			out("-i", br, "!", "-o", br, "-j", "DROP"))
		return rules
	case n.routed(f):
		// Routed: no NAT; hosts that route to the subnet reach published
		// ports (the endpoints' RETURNs, first in the chain) and ping.
		rules = append(rules, in("!", "-i", br, "-o", br, "!", "-p", f.icmp(), "-j", "DROP"))
		return rules
	case n.unprotected(f):
		// Everything that is routed to the bridge enters it.
	default:
		// NAT: only connections DNATed to a published port.
		rules = append(rules, in("!", "-i", br, "-o", br, "-m", "conntrack", "!", "--ctstate", "DNAT", "-j", "DROP"))
	}

	switch {
	case !n.Masquerade:
	case f == IPv4 && n.SNATSource.IsValid():
		rules = append(rules, post("-s", subnet.String(), "!", "-o", br, "-j", "SNAT", "--to-source", n.SNATSource.String()))
	case f == IPv6 && n.SNATSource6.IsValid():
		rules = append(rules, post("-s", subnet.String(), "!", "-o", br, "-j", "SNAT", "--to-source", n.SNATSource6.String()))
	default:
		rules = append(rules, post("-s", subnet.String(), "!", "-o", br, "-j", "MASQUERADE"))
	}
	// Published ports reached from a container of the same network
	// (hairpin): answers must come back through the host, so the source
	// becomes the bridge's address. (From the host itself: sharedRules.)
	return append(rules, post("-s", subnet.String(), "-o", br, "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"))
}

// Rules returns an endpoint's rules for one family: a DNAT per published
// port (NAT mode; with an accept per trusted interface, and a drop of what
// arrives from elsewhere for a port published on a loopback address), or
// an accept per published port (routed mode).
func (e Endpoint) Rules(n Network, f Family) []Rule {
	if n.Internal || !n.subnet(f).IsValid() {
		return nil
	}
	tag := EndpointTag(e.NetworkID, e.EndpointID)
	var rules []Rule
	for _, p := range e.Ports {
		if p.ContainerIP.Is4() != (f == IPv4) {
			continue
		}
		port := strconv.Itoa(int(p.ContainerPort))
		if n.routed(f) {
			r := rule("filter", ChainIngress, tag, "-d", hostPrefix(p.ContainerIP), "-o", n.Bridge,
				"-p", p.Proto, "-m", p.Proto, "--dport", port, "-j", "RETURN")
			r.First = true
			rules = append(rules, r)
			continue
		}
		if !n.unprotected(f) {
			// nat: routed traffic does not reach container addresses,
			// but from a trusted interface it reaches published ports.
			for _, t := range n.Trusted {
				r := rule("filter", ChainIngress, tag, "-i", t, "-d", hostPrefix(p.ContainerIP), "-o", n.Bridge,
					"-p", p.Proto, "-m", p.Proto, "--dport", port, "-j", "RETURN")
				r.First = true
				rules = append(rules, r)
			}
		}
		spec := []string{}
		if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
			spec = append(spec, "-d", hostPrefix(p.HostIP))
		}
		dest := p.ContainerIP.String() + ":" + port
		if f == IPv6 {
			dest = "[" + p.ContainerIP.String() + "]:" + port
		}
		hostPort := strconv.Itoa(int(p.HostPort))
		spec = append(spec, "-p", p.Proto, "-m", p.Proto, "--dport", hostPort,
			"-j", "DNAT", "--to-destination", dest)
		rules = append(rules, rule("nat", ChainDNAT, tag, spec...))
		if p.HostIP.IsLoopback() {
			// A port published on a loopback address is the host's
			// alone: the DNAT above would also take a packet for it that
			// another host routed here, so such packets are dropped
			// before NAT sees them (as Docker's bridge does).
			rules = append(rules, rule("raw", ChainLoopback, tag, "-d", hostPrefix(p.HostIP), "!", "-i", "lo",
				"-p", p.Proto, "-m", p.Proto, "--dport", hostPort, "-j", "DROP"))
		}
	}
	return rules
}

func hostPrefix(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

// rule builds a rule whose comment goes before the target ("-j ..."), where
// iptables-save prints it.
func rule(table, chain, tag string, spec ...string) Rule {
	out := make([]string, 0, len(spec)+4)
	for i := range spec {
		if spec[i] == "-j" {
			out = append(out, spec[:i]...)
			out = append(out, "-m", "comment", "--comment", tag)
			out = append(out, spec[i:]...)
			return Rule{Table: table, Chain: chain, Spec: out}
		}
	}
	panic("firewall: rule without target: " + strings.Join(spec, " "))
}
