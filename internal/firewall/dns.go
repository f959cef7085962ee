package firewall

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// A container on a cluster network asks Docker's embedded DNS (127.0.0.11,
// which Docker DNATs to its resolver inside the container's namespace).
// mynet puts its forwarder ahead of it, in the container's namespace, with
// an nftables table of its own, DNSTable (netutil.DNSNAT), whose nat chain
// comes before Docker's DNAT whatever Docker put it in. The redirect lets
// through the questions the forwarder marks with DNSMark, its own to
// Docker's resolver.
//
// Versions before the table kept the redirect as two iptables rules at the
// top of the namespace's nat OUTPUT (commented mynet:dns, matching the
// ipset mynet-dns, so they lapse with it); RemoveOldDNSRedirect removes
// them where a forwarder opens.

// DNSMark marks the forwarder's questions to Docker's resolver.
const DNSMark = 0x6d6e53

// DNSTable is the nftables table (family ip) of the redirect in a
// container's namespace.
const DNSTable = "mynet-dns"

// oldDNSLeaseSet is the ipset the rules of earlier versions matched.
const oldDNSLeaseSet = "mynet-dns"

const dnsComment = "mynet:dns"

// dnsRule is an earlier version's leased redirect of proto to port.
func dnsRule(proto string, port uint16) []string {
	return []string{"-d", "127.0.0.11/32", "-p", proto, "-m", proto, "--dport", "53",
		"-m", "mark", "!", "--mark", fmt.Sprintf("0x%x", DNSMark),
		"-m", "set", "--match-set", oldDNSLeaseSet, "dst",
		"-m", "comment", "--comment", dnsComment,
		"-j", "DNAT", "--to-destination", "127.0.0.11:" + strconv.Itoa(int(port))}
}

// legacyDNSRule is the redirect of versions before the lease (no set
// match).
func legacyDNSRule(port uint16) []string {
	return []string{"-d", "127.0.0.11/32", "-p", "udp", "-m", "udp", "--dport", "53",
		"-m", "mark", "!", "--mark", fmt.Sprintf("0x%x", DNSMark),
		"-m", "comment", "--comment", dnsComment,
		"-j", "DNAT", "--to-destination", "127.0.0.11:" + strconv.Itoa(int(port))}
}

// listedDNSRule is what is read back of one of our redirects: its
// protocol and port (the only things taken from the listed text, checked
// against what they may be) and whether it has the lease's set match.
type listedDNSRule struct {
	proto  string
	port   uint16
	leased bool
}

var dnsTarget = regexp.MustCompile(`--to-destination 127\.0\.0\.11:([0-9]{1,5})$`)

// parseDNSRule reads one listed rule ("-A OUTPUT ..."): ok when it is ours.
func parseDNSRule(listed string) (r listedDNSRule, ok bool) {
	if !strings.HasPrefix(listed, "-A ") || !strings.Contains(listed, dnsComment) {
		return r, false
	}
	m := dnsTarget.FindStringSubmatch(listed)
	if m == nil {
		return r, false
	}
	p, err := strconv.ParseUint(m[1], 10, 16)
	if err != nil {
		return r, false
	}
	proto := "udp"
	if strings.Contains(listed, " -p tcp ") {
		proto = "tcp"
	}
	return listedDNSRule{proto: proto, port: uint16(p), leased: strings.Contains(listed, "--match-set "+oldDNSLeaseSet+" dst")}, true
}

// deleteDNSRules deletes each of ours by its exact spec, rebuilt from its
// port: nothing read back from the container's ruleset becomes arguments.
func deleteDNSRules(ipt interface {
	Delete(table, chain string, rulespec ...string) error
}, ours []listedDNSRule) error {
	for _, r := range ours {
		spec := legacyDNSRule(r.port)
		if r.leased {
			spec = dnsRule(r.proto, r.port)
		}
		if err := ipt.Delete("nat", "OUTPUT", spec...); err != nil {
			return fmt.Errorf("remove a DNS redirect (%s) to port %d: %w", r.proto, r.port, err)
		}
	}
	return nil
}

// RemoveOldDNSRedirect removes earlier versions' redirect rules from the
// namespace enter runs in; none there is done.
func (f *Firewall) RemoveOldDNSRedirect(enter func(func() error) error) error {
	if f.v4 == nil || f.v4.ipt == nil {
		return nil
	}
	ipt := f.v4.ipt
	return enter(func() error {
		rules, err := ipt.List("nat", "OUTPUT")
		if err != nil {
			return err
		}
		var ours []listedDNSRule
		for _, l := range rules {
			if r, ok := parseDNSRule(l); ok {
				ours = append(ours, r)
			}
		}
		return deleteDNSRules(ipt, ours)
	})
}
