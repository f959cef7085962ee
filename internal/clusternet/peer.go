package clusternet

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/netutil"
)

// Peer is a container on another host, on one cluster network, as this
// host knows it: from its record in etcd (cluster.Peer), programmed on the
// network's VXLAN device (netutil.Peer) and answered by name. Saved as
// JSON in the store: its fields' names are kept across versions.
type Peer struct {
	Node string     `json:"node"`
	IP   netip.Addr `json:"ip"`
	MAC  string     `json:"mac"`
	VTEP netip.Addr `json:"vtep"`
	// Name is the container's name, when its host gave one that is a valid
	// DNS label; Aliases its other names (valid DNS names, lower case).
	Name    string   `json:"name,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
}

func (p Peer) equal(o Peer) bool {
	return p.Node == o.Node && p.IP == o.IP && p.MAC == o.MAC && p.VTEP == o.VTEP && p.Name == o.Name && slices.Equal(p.Aliases, o.Aliases)
}

// kernel is what the VXLAN device holds of the peer.
func (p Peer) kernel() netutil.Peer {
	mac, _ := net.ParseMAC(p.MAC)
	return netutil.Peer{IP: p.IP, MAC: mac, VTEP: p.VTEP}
}

// leaving is what the VXLAN device holds of old, a peer whose entries go:
// on a dual-stack network its container's other address may still use
// its MAC, whose fdb entry then stays. (A scan of the peers, on dual-stack
// networks only.) Caller holds prog.
func (n *Network) leaving(old Peer) netutil.Peer {
	k := old.kernel()
	if !n.cfg.Subnet6.IsValid() {
		return k
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for ip, p := range n.peers {
		if ip != old.IP && p.MAC == old.MAC && p.VTEP == old.VTEP {
			k.SharedMAC = true
			break
		}
	}
	return k
}

// keys are the names a peer is answered by: its name and its aliases.
func (p Peer) keys() []string {
	if p.Name == "" {
		return p.Aliases
	}
	return append([]string{p.Name}, p.Aliases...)
}

// peerOf is a peer's record as a Peer; a name that is not a valid DNS
// label is dropped (the peer is kept).
func peerOf(r cluster.Peer) Peer {
	p := Peer{Node: r.Node, IP: r.IP, MAC: r.MAC, VTEP: r.VTEP}
	if ValidDNSName(r.Name) {
		p.Name = strings.ToLower(r.Name)
	}
	p.Aliases = DNSNames(r.Aliases, p.Name)
	return p
}

// ValidDNSName reports whether name is one DNS label that Docker could
// have given a container: 1 to 63 letters, digits, '-' and '_', not
// starting with '-'.
func ValidDNSName(name string) bool {
	if name == "" || len(name) > 63 || name[0] == '-' {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// DNSNames are the valid DNS names of names, lower case, sorted, once
// each, without except.
func DNSNames(names []string, except string) []string {
	var out []string
	for _, n := range names {
		n = strings.ToLower(n)
		if n == except || !validDNSPath(n) || slices.Contains(out, n) {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// validDNSPath: labels as ValidDNSName, separated by dots, 253 bytes at most.
func validDNSPath(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, l := range strings.Split(name, ".") {
		if !ValidDNSName(l) {
			return false
		}
	}
	return true
}
