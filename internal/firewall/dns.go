package firewall

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A container on a cluster network asks Docker's embedded DNS (127.0.0.11,
// which Docker DNATs to its resolver inside the container's namespace).
// mynet puts its forwarder ahead of it, in the container's namespace: two
// rules at the top of nat OUTPUT send UDP and TCP questions to
// 127.0.0.11:53 to the forwarder's ports, except those the forwarder marks,
// its own questions to Docker's resolver, which go on to Docker's rules.
//
// The rule fails open by construction: it matches only while 127.0.0.11 is
// in the namespace's timed set DNSLeaseSet, whose element expires within a
// second unless the forwarder, alive and serving, renews it. Whatever ends
// or freezes mynet (kill -9, a panic, SIGSTOP, a blocked goroutine, a
// rollback to a version that knows nothing of it), the rule stops matching
// by itself and the container's questions reach Docker's rules as they
// would without mynet.

// DNSMark marks the forwarder's questions to Docker's resolver.
const DNSMark = 0x6d6e53

// DNSLeaseSet is the timed ipset in a container's namespace that keeps the
// redirect alive (netutil.TimedSet).
const DNSLeaseSet = "mynet-dns"

const dnsComment = "mynet:dns"

func dnsRule(proto string, port uint16) []string {
	return []string{"-d", "127.0.0.11/32", "-p", proto, "-m", proto, "--dport", "53",
		"-m", "mark", "!", "--mark", fmt.Sprintf("0x%x", DNSMark),
		"-m", "set", "--match-set", DNSLeaseSet, "dst",
		"-m", "comment", "--comment", dnsComment,
		"-j", "DNAT", "--to-destination", "127.0.0.11:" + strconv.Itoa(int(port))}
}

// legacyDNSRule is the redirect of versions before the lease (no set
// match), removed when found.
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
	return listedDNSRule{proto: proto, port: uint16(p), leased: strings.Contains(listed, "--match-set "+DNSLeaseSet+" dst")}, true
}

// EnsureDNSRedirect makes the redirects to the forwarder's ports on
// 127.0.0.11 (UDP, then TCP) the
// first rules of nat OUTPUT in the namespace enter runs its function in
// (netutil.InNetns of the container's sandbox), where Docker inserts its
// own jump at the top when it starts its resolver: it reports whether it
// had to change anything. The set DNSLeaseSet must exist there.
func (f *Firewall) EnsureDNSRedirect(enter func(func() error) error, udpPort, tcpPort uint16) (changed bool, err error) {
	if f.v4 == nil || f.v4.ipt == nil {
		return false, errors.New("no iptables to redirect DNS with")
	}
	ipt := f.v4.ipt
	want := []listedDNSRule{{proto: "udp", port: udpPort, leased: true}, {proto: "tcp", port: tcpPort, leased: true}}
	err = enter(func() error {
		rules, err := ipt.List("nat", "OUTPUT")
		if err != nil {
			return err
		}
		var ours, first []listedDNSRule
		others := false
		for _, l := range rules {
			if !strings.HasPrefix(l, "-A ") {
				continue
			}
			r, ok := parseDNSRule(l)
			if !ok {
				others = true
				continue
			}
			ours = append(ours, r)
			if !others {
				first = append(first, r)
			}
		}
		if slices.Equal(ours, want) && slices.Equal(first, want) {
			return nil
		}
		changed = true
		if err := deleteDNSRules(ipt, ours); err != nil {
			return err
		}
		for i := len(want) - 1; i >= 0; i-- {
			if err := ipt.Insert("nat", "OUTPUT", 1, dnsRule(want[i].proto, want[i].port)...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return changed, fmt.Errorf("redirect DNS to mynet's forwarder: %w", err)
	}
	return changed, nil
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

// RemoveDNSRedirect removes the redirect from the namespace enter runs in;
// none there is done.
func (f *Firewall) RemoveDNSRedirect(enter func(func() error) error) error {
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
