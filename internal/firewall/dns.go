package firewall

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A container on a cluster network asks Docker's embedded DNS (127.0.0.11,
// which Docker DNATs to its resolver inside the container's namespace).
// mynet puts its forwarder ahead of it, in the container's namespace: one
// rule at the top of nat OUTPUT sends UDP questions to 127.0.0.11:53 to the
// forwarder's port, except those the forwarder marks, its own questions to
// Docker's resolver, which go on to Docker's rules.

// DNSMark marks the forwarder's questions to Docker's resolver.
const DNSMark = 0x6d6e53

const dnsComment = "mynet:dns"

func dnsRule(port uint16) []string {
	return []string{"-d", "127.0.0.11/32", "-p", "udp", "-m", "udp", "--dport", "53",
		"-m", "mark", "!", "--mark", fmt.Sprintf("0x%x", DNSMark),
		"-m", "comment", "--comment", dnsComment,
		"-j", "DNAT", "--to-destination", "127.0.0.11:" + strconv.Itoa(int(port))}
}

// EnsureDNSRedirect makes the redirect to port the first rule of nat
// OUTPUT in the namespace enter runs its function in (netutil.InNetns of
// the container's sandbox), where Docker inserts its own jump at the top
// when it starts its resolver: it reports whether it had to change
// anything.
func (f *Firewall) EnsureDNSRedirect(enter func(func() error) error, port uint16) (changed bool, err error) {
	if f.v4 == nil || f.v4.ipt == nil {
		return false, errors.New("no iptables to redirect DNS with")
	}
	ipt := f.v4.ipt
	err = enter(func() error {
		rules, err := ipt.List("nat", "OUTPUT")
		if err != nil {
			return err
		}
		// iptables lists the rule in its own words (the comment quoted,
		// say): it is ours when it has our comment and our port.
		target := "--to-destination 127.0.0.11:" + strconv.Itoa(int(port))
		var ours []string
		first := ""
		for _, r := range rules {
			if !strings.HasPrefix(r, "-A ") {
				continue
			}
			if first == "" {
				first = r
			}
			if strings.Contains(r, dnsComment) {
				ours = append(ours, r)
			}
		}
		if len(ours) == 1 && first == ours[0] && strings.HasSuffix(first, target) {
			return nil
		}
		changed = true
		for _, r := range ours {
			if err := ipt.Delete("nat", "OUTPUT", ruleSpec(r)...); err != nil {
				return fmt.Errorf("remove a stale DNS redirect: %w", err)
			}
		}
		return ipt.Insert("nat", "OUTPUT", 1, dnsRule(port)...)
	})
	if err != nil {
		return changed, fmt.Errorf("redirect DNS to mynet's forwarder: %w", err)
	}
	return changed, nil
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
		for _, r := range rules {
			if strings.HasPrefix(r, "-A ") && strings.Contains(r, dnsComment) {
				if err := ipt.Delete("nat", "OUTPUT", ruleSpec(r)...); err != nil {
					return fmt.Errorf("remove the DNS redirect: %w", err)
				}
			}
		}
		return nil
	})
}

// ruleSpec is a listed rule ("-A OUTPUT ...") as arguments after the chain,
// with iptables' own quoting of the comment undone.
func ruleSpec(listed string) []string {
	f := strings.Fields(listed)
	var out []string
	for _, a := range f[2:] {
		out = append(out, strings.Trim(a, `"`))
	}
	return out
}
