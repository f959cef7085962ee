package firewall

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// RemoveBase takes mynet's chains and jumps away again (DOCKER-USER, which
// is dockerd's, stays). It is for a daemon that stops with no network left,
// so that uninstalling mynet leaves no rule behind. Rules of networks must
// be gone first. (Putting the base in place is part of every change and of
// Reconcile: see baseFixes.)
func (f *Firewall) RemoveBase() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.guard = nil
	var errs []error
	for _, b := range f.backends() {
		errs = append(errs, b.edit("remove mynet's chains", true, func(rs ruleset, bt *batch) error {
			for _, r := range rs.table("filter").rules["INPUT"] {
				if tag, ok := commentTag(r); ok && tag == VXLANTag {
					bt.delete("filter", r) // an earlier run's VXLAN guard
				}
			}
			for _, j := range baseJumps {
				for _, r := range rs.table(j.table).rules[j.chain] {
					if r == j.line {
						bt.delete(j.table, r)
					}
				}
			}
			for _, tname := range baseTables {
				t := rs.table(tname)
				for _, op := range []string{"-F ", "-X "} {
					for _, c := range baseChains[tname] {
						if c != DockerUser && t.chains[c] {
							bt.line(tname, op+c)
						}
					}
				}
			}
			return nil
		}))
	}
	return errors.Join(errs...)
}

// DefaultBridgeGroup is the device group (ip link set BR group N) mynet
// puts its bridges in unless told otherwise. The rules every network shares
// match it (-m devgroup), so a network needs only the rules that name its
// own bridge or subnet.
const DefaultBridgeGroup = 0x6d6e

// hexGroup is a device group as iptables-save prints it.
func hexGroup(group uint32) string { return fmt.Sprintf("0x%x", group) }

// groupMatch matches packets that enter (src) or leave (dst) through a
// device of the group.
func groupMatch(dir string, group uint32) string {
	return "-m devgroup --" + dir + "-group " + hexGroup(group)
}

// staticChains have fixed contents, rewritten whenever they differ.
func staticChains(group uint32) map[string][]string {
	return map[string][]string{
		ChainForward: {
			"-A " + ChainForward + " -m connmark --mark " + ConnMark + "/" + ConnMark + " -j ACCEPT",
			"-A " + ChainForward + " -j " + ChainIsolation,
			"-A " + ChainForward + " -j " + ChainBridges,
		},
		ChainIsolation: {
			"-A " + ChainIsolation + " -m connmark --mark " + ConnMark + "/" + ConnMark + " -j RETURN",
			"-A " + ChainIsolation + " -j " + ChainIngress,
			"-A " + ChainIsolation + " -j " + ChainEgress,
		},
		// What the guard let through to or from a mynet bridge.
		ChainBridges: {
			"-A " + ChainBridges + " " + groupMatch("src", group) + " -j " + ChainAccept,
			"-A " + ChainBridges + " " + groupMatch("dst", group) + " -j " + ChainAccept,
		},
		ChainAccept: {
			"-A " + ChainAccept + " -j CONNMARK --set-xmark " + ConnMark + "/" + ConnMark,
			"-A " + ChainAccept + " -j ACCEPT",
		},
	}
}

// BaseTag marks the rules every network shares that live in chains beside
// the networks' own rules.
const BaseTag = tagPrefix + "base"

// sharedRules are the rules tagged BaseTag: no new connection from a mynet
// bridge enters a Docker bridge unless it was DNATed to a published port,
// and the host's own connections DNATed into a mynet bridge (published
// ports reached on the host's addresses, loopback included) leave with the
// bridge's address, so that the answers come back through the host.
func sharedRules(group uint32, docker []string) []Rule {
	var rules []Rule
	for _, d := range docker {
		// A mynet bridge the user named like a Docker one (br-...) is
		// the networks' own rules' business, hence ! --dst-group.
		rules = append(rules, rule("filter", ChainEgress, BaseTag, "-o", d,
			"-m", "devgroup", "--src-group", hexGroup(group), "!", "--dst-group", hexGroup(group),
			"-m", "conntrack", "!", "--ctstate", "DNAT", "-j", "DROP"))
	}
	return append(rules, rule("nat", ChainPostrouting, BaseTag, "-m", "devgroup", "--dst-group", hexGroup(group),
		"-m", "addrtype", "--src-type", "LOCAL", "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"))
}

// sharedMissing adds the BaseTag rules to bt when rs has none of them and
// reports whether it did. A network's change only needs them there;
// keeping them current (Docker's bridges come and go) is Reconcile's.
func sharedMissing(rs ruleset, bt *batch, want func() []Rule) bool {
	for _, t := range rs {
		for _, c := range []string{ChainEgress, ChainPostrouting} {
			for _, l := range t.rules[c] {
				if tag, ok := commentTag(l); ok && tag == BaseTag {
					return false
				}
			}
		}
	}
	bt.add(want())
	return true
}

// jump is a rule of ours in a chain that is not ours.
type jump struct {
	table, chain, line string
	first              bool   // must be first, not just present
	after              string // with first: may follow this rule, when it is first
}

// DockerUser is Docker's chain for rules that must precede its own.
const DockerUser = "DOCKER-USER"

var baseJumps = []jump{
	{"filter", DockerUser, "-A " + DockerUser + " -j " + ChainIsolation, true, ""},
	{"filter", "FORWARD", "-A FORWARD -j " + ChainForward, true, "-A FORWARD -j " + DockerUser},
	{"nat", "PREROUTING", "-A PREROUTING -m addrtype --dst-type LOCAL -j " + ChainDNAT, false, ""},
	{"nat", "OUTPUT", "-A OUTPUT -m addrtype --dst-type LOCAL -j " + ChainDNAT, false, ""},
	{"nat", "POSTROUTING", "-A POSTROUTING -j " + ChainPostrouting, false, ""},
	{"raw", "PREROUTING", "-A PREROUTING -j " + ChainLoopback, false, ""},
}

// baseTables are the tables mynet has chains in.
var baseTables = []string{"filter", "nat", "raw"}

// baseChains are made when missing. DOCKER-USER is dockerd's: mynet creates
// it only so that the guard is in place before dockerd starts, which then
// adopts the chain as it is.
var baseChains = map[string][]string{
	"filter": {ChainForward, ChainIsolation, ChainIngress, ChainEgress, ChainBridges, ChainAccept, DockerUser},
	"nat":    {ChainDNAT, ChainPostrouting},
	"raw":    {ChainLoopback},
}

// baseFixes adds to bt what brings mynet's chains, their fixed rules and
// the jumps to them into place, and reports whether anything was needed:
// the guard (MYNET-ISOLATION) first in DOCKER-USER, which it creates when
// dockerd has not (yet), and the FORWARD jump first, or right after
// Docker's DOCKER-USER jump. It is how mynet recovers from `iptables -F`,
// or from a dockerd restart that put its own jumps above mynet's.
func baseFixes(rs ruleset, bt *batch, group uint32) bool {
	fixed := false
	static := staticChains(group)
	for _, tname := range baseTables {
		t := rs.table(tname)
		for _, c := range baseChains[tname] {
			want, static := static[c]
			switch {
			case !t.chains[c]:
				bt.declare(tname, c)
				for _, l := range want {
					bt.line(tname, l)
				}
				fixed = true
			case static && !slices.Equal(t.rules[c], want):
				bt.line(tname, "-F "+c)
				for _, l := range want {
					bt.line(tname, l)
				}
				// What the flush removes is not there for the rest of
				// this edit to delete (networks' rules an older mynet
				// kept in a chain now static, say).
				t.rules[c] = nil
				fixed = true
			}
		}
		for _, j := range baseJumps {
			if j.table != tname {
				continue
			}
			for _, l := range jumpFix(t.rules[j.chain], j) {
				bt.line(tname, l)
				fixed = true
			}
		}
	}
	return fixed
}

// jumpFix returns the lines that make j appear exactly once, and first
// (or right after j.after) when it must.
func jumpFix(rules []string, j jump) []string {
	count := 0
	for _, r := range rules {
		if r == j.line {
			count++
		}
	}
	if !j.first {
		if count == 0 {
			return []string{j.line}
		}
		return nil
	}
	want := 0
	if len(rules) > 0 && j.after != "" && rules[0] == j.after {
		want = 1
	}
	if count == 1 && len(rules) > want && rules[want] == j.line {
		return nil
	}
	var out []string
	for range count {
		out = append(out, "-D"+strings.TrimPrefix(j.line, "-A"))
	}
	rest := slices.DeleteFunc(slices.Clone(rules), func(r string) bool { return r == j.line })
	pos := 1
	if len(rest) > 0 && j.after != "" && rest[0] == j.after {
		pos = 2
	}
	return append(out, fmt.Sprintf("-I %s %d%s", j.chain, pos, strings.TrimPrefix(j.line, "-A "+j.chain)))
}
