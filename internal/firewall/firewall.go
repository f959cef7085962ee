package firewall

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/sirupsen/logrus"
)

// batcher reads the whole ruleset of one family and writes a batch of
// changes atomically per table: iptables-save and iptables-restore --noflush.
type batcher interface {
	Save() (string, error)
	Restore(input string) error
}

// backend is one family's iptables.
type backend struct {
	family Family
	batch  batcher
	// ipt runs single iptables commands: the health check's look at the
	// chains. Batches of changes go through iptables-restore instead (see
	// doc.go). Nil in tests that fake the batcher.
	ipt *iptables.IPTables
}

// Firewall programs mynet's rules for IPv4 and, where the host has
// ip6tables, IPv6.
type Firewall struct {
	v4, v6 *backend // v6 is nil when the host has no ip6tables
	kind   string   // the backend in use: nft, legacy or system
	log    *logrus.Entry

	mu sync.Mutex // serializes our read-modify-write cycles on the rulesets
}

// Backends: which iptables binaries mynet runs.
const (
	BackendAuto   = "auto"   // the one the host's rules are in (see ChooseBackend)
	BackendNFT    = "nft"    // iptables-nft (nf_tables)
	BackendLegacy = "legacy" // iptables-legacy (x_tables)
	BackendSystem = "system" // plain `iptables`, whatever the host's alternatives say
)

// Config is what a Firewall is built from.
type Config struct {
	// Backend is auto (the default), nft, legacy or system.
	Backend string
	// Observe, when set, is told the duration of every iptables-save
	// ("save") and iptables-restore ("restore") run, per family.
	Observe func(family, op string, took time.Duration)
	Log     *logrus.Entry
}

// New returns a Firewall that drives iptables with the configured backend.
// Mixing backends breaks rules on both sides, so mynet must use the one
// dockerd uses; "auto" finds it.
func New(cfg Config) (*Firewall, error) {
	log := cfg.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	kind := cfg.Backend
	if kind == "" || kind == BackendAuto {
		kind = ChooseBackend(log)
	}
	v4, err := newExecBackend(IPv4, kind, cfg.Observe, log)
	if err != nil {
		return nil, err
	}
	v6, err := newExecBackend(IPv6, kind, cfg.Observe, log)
	if err != nil {
		log.WithError(err).Warn("no usable ip6tables; IPv6 networks cannot be created")
		v6 = nil
	}
	f := newFirewall(v4, v6, log)
	f.kind = kind
	return f, nil
}

// ChooseBackend picks the backend whose tables hold rules, as
// Kubernetes' iptables-wrapper does: when both iptables-nft and
// iptables-legacy exist, the one with more rules is the one in use (dockerd
// has put its rules there); with none anywhere, or only plain iptables, the
// host's default.
func ChooseBackend(log *logrus.Entry) string {
	count := func(cmd string) int {
		path, err := exec.LookPath(cmd)
		if err != nil {
			return -1
		}
		out, err := exec.Command(path).Output()
		if err != nil {
			return -1
		}
		return strings.Count(string(out), "\n-A ")
	}
	nft, legacy := count("iptables-nft-save"), count("iptables-legacy-save")
	choice := BackendSystem
	switch {
	case nft < 0 || legacy < 0:
	case legacy > nft:
		choice = BackendLegacy
	case nft > legacy:
		choice = BackendNFT
	}
	log.WithFields(logrus.Fields{"backend": choice, "nft_rules": nft, "legacy_rules": legacy}).Info("iptables backend chosen")
	return choice
}

func newExecBackend(f Family, kind string, observe func(family, op string, took time.Duration), log *logrus.Entry) (*backend, error) {
	cmd := "iptables"
	if f == IPv6 {
		cmd = "ip6tables"
	}
	switch kind {
	case BackendNFT, BackendLegacy:
		cmd += "-" + kind
	case BackendSystem:
	default:
		return nil, fmt.Errorf("unknown iptables backend %q (want auto, nft, legacy or system)", kind)
	}
	bin, err := exec.LookPath(cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	proto := iptables.ProtocolIPv4
	if f == IPv6 {
		proto = iptables.ProtocolIPv6
	}
	ipt, err := iptables.New(iptables.IPFamily(proto), iptables.Path(bin), iptables.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	save, err := exec.LookPath(cmd + "-save")
	if err != nil {
		return nil, fmt.Errorf("%s-save: %w", cmd, err)
	}
	restore, err := exec.LookPath(cmd + "-restore")
	if err != nil {
		return nil, fmt.Errorf("%s-restore: %w", cmd, err)
	}
	v1, v2, v3 := ipt.GetIptablesVersion()
	log.WithFields(logrus.Fields{"family": f.String(), "binary": bin, "version": fmt.Sprintf("%d.%d.%d", v1, v2, v3)}).Debug("iptables found")
	var b batcher = execBatcher{save: save, restore: restore}
	if observe != nil {
		b = timedBatcher{b: b, family: f.String(), observe: observe}
	}
	return &backend{family: f, batch: b, ipt: ipt}, nil
}

func newFirewall(v4, v6 *backend, log *logrus.Entry) *Firewall {
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Firewall{v4: v4, v6: v6, log: log}
}

// HasIPv6 reports whether IPv6 rules can be programmed.
func (f *Firewall) HasIPv6() bool { return f.v6 != nil }

func (f *Firewall) backends() []*backend {
	if f.v6 == nil {
		return []*backend{f.v4}
	}
	return []*backend{f.v4, f.v6}
}

// EnsureBase makes mynet's chains, their fixed rules and the jumps to them
// exist and sit where they must: the guard (MYNET-ISOLATION) first in
// DOCKER-USER, which it creates when dockerd has not (yet), and the FORWARD
// jump first, or right after Docker's DOCKER-USER jump. It is cheap when all
// is in place (one iptables-save per family) and safe to call at any time;
// it is how mynet recovers from `iptables -F`, or from a dockerd restart
// that put its own jumps above mynet's.
func (f *Firewall) EnsureBase() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.backends() {
		saved, err := b.batch.Save()
		if err != nil {
			return fmt.Errorf("%s: read ruleset: %w", b.family, err)
		}
		var bt batch
		if !baseFixes(parseSave(saved), &bt) {
			continue
		}
		if err := bt.run(b.batch); err != nil {
			return fmt.Errorf("%s: set up mynet's chains: %w", b.family, err)
		}
		f.log.WithField("family", b.family.String()).Info("mynet chains and jumps (re)installed")
	}
	return nil
}

// RemoveBase takes mynet's chains and jumps away again (DOCKER-USER, which
// is dockerd's, stays). It is for a daemon that stops with no network left,
// so that uninstalling mynet leaves no rule behind. Rules of networks must
// be gone first.
func (f *Firewall) RemoveBase() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, b := range f.backends() {
		saved, err := b.batch.Save()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rs := parseSave(saved)
		var bt batch
		for _, j := range baseJumps {
			for _, r := range rs.table(j.table).rules[j.chain] {
				if r == j.line {
					bt.delete(j.table, r)
				}
			}
		}
		for _, tname := range []string{"filter", "nat"} {
			t := rs.table(tname)
			for _, c := range baseChains[tname] {
				if c != DockerUser && t.chains[c] {
					bt.line(tname, "-F "+c)
				}
			}
			for _, c := range baseChains[tname] {
				if c != DockerUser && t.chains[c] {
					bt.line(tname, "-X "+c)
				}
			}
		}
		if err := bt.run(b.batch); err != nil {
			errs = append(errs, fmt.Errorf("%s: remove mynet's chains: %w", b.family, err))
		}
	}
	return errors.Join(errs...)
}

// staticChains have fixed contents, rewritten whenever they differ.
var staticChains = map[string][]string{
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
	ChainAccept: {
		"-A " + ChainAccept + " -j CONNMARK --set-xmark " + ConnMark + "/" + ConnMark,
		"-A " + ChainAccept + " -j ACCEPT",
	},
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
}

// baseChains are made when missing. DOCKER-USER is dockerd's: mynet creates
// it only so that the guard is in place before dockerd starts, which then
// adopts the chain as it is.
var baseChains = map[string][]string{
	"filter": {ChainForward, ChainIsolation, ChainIngress, ChainEgress, ChainBridges, ChainAccept, DockerUser},
	"nat":    {ChainDNAT, ChainPostrouting},
}

// ruleset is a parsed iptables-save: per table, the declared chains and the
// rule lines of each chain in order.
type ruleset map[string]*table

type table struct {
	chains map[string]bool
	rules  map[string][]string
}

func parseSave(saved string) ruleset {
	rs := ruleset{}
	var t *table
	sc := bufio.NewScanner(strings.NewReader(saved))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			t = &table{chains: map[string]bool{}, rules: map[string][]string{}}
			rs[line[1:]] = t
		case t == nil:
		case strings.HasPrefix(line, ":"):
			t.chains[strings.Fields(line[1:])[0]] = true
		case strings.HasPrefix(line, "-A "):
			chain := strings.Fields(line)[1]
			t.rules[chain] = append(t.rules[chain], line)
		}
	}
	return rs
}

func (rs ruleset) table(name string) *table {
	if t := rs[name]; t != nil {
		return t
	}
	return &table{chains: map[string]bool{}, rules: map[string][]string{}}
}

// baseFixes adds to bt what brings the base layout into place, and
// reports whether anything was needed.
func baseFixes(rs ruleset, bt *batch) bool {
	fixed := false
	for _, tname := range []string{"filter", "nat"} {
		t := rs.table(tname)
		for _, c := range baseChains[tname] {
			want, static := staticChains[c]
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

// AddNetwork installs the network's rules in every family it has a subnet
// in, replacing rules that carry its tag (not its endpoints').
func (f *Firewall) AddNetwork(n Network) error {
	if err := n.Validate(); err != nil {
		return err
	}
	if n.Subnet6.IsValid() && f.v6 == nil {
		return errors.New("this host has no usable ip6tables for an IPv6 network")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.families(n) {
		if err := f.apply(b, exactTag(Tag(n.ID)), n.Rules(b.family)); err != nil {
			return err
		}
	}
	return nil
}

// families are the backends of the families a network has a subnet in:
// an IPv4-only network never touches ip6tables.
func (f *Firewall) families(n Network) []*backend {
	var out []*backend
	for _, b := range f.backends() {
		if n.subnet(b.family).IsValid() {
			out = append(out, b)
		}
	}
	return out
}

// RemoveNetwork deletes every rule of the network and of its endpoints, in
// the families it has. A network without rules is not an error; rules left
// anywhere else are Reconcile's to find.
func (f *Firewall) RemoveNetwork(n Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	net := Tag(n.ID)
	match := func(tag string) bool { return tag == net || strings.HasPrefix(tag, net+":") }
	var errs []error
	for _, b := range f.families(n) {
		errs = append(errs, f.apply(b, match, nil))
	}
	return errors.Join(errs...)
}

// SetEndpoint replaces the endpoint's rules (its published ports) with those
// for e; with no ports it removes them.
func (f *Firewall) SetEndpoint(n Network, e Endpoint) error {
	if err := e.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.families(n) {
		if err := f.apply(b, exactTag(EndpointTag(e.NetworkID, e.EndpointID)), e.Rules(n, b.family)); err != nil {
			return err
		}
	}
	return nil
}

func exactTag(tag string) func(string) bool { return func(t string) bool { return t == tag } }

// apply deletes the rules whose tag matches and adds the given ones, in one
// restore, which also repairs the base layout if it needs it: one
// iptables-save and one iptables-restore in all. Caller holds f.mu.
func (f *Firewall) apply(b *backend, match func(tag string) bool, add []Rule) error {
	saved, err := b.batch.Save()
	if err != nil {
		return fmt.Errorf("%s: read ruleset: %w", b.family, err)
	}
	var bt batch
	rs := parseSave(saved)
	if len(add) > 0 && baseFixes(rs, &bt) {
		f.log.WithField("family", b.family.String()).Info("mynet chains and jumps (re)installed")
	}
	for tname, t := range rs {
		for _, lines := range t.rules {
			for _, l := range lines {
				if tag, ok := commentTag(l); ok && match(tag) {
					bt.delete(tname, l)
				}
			}
		}
	}
	bt.add(add)
	if err := bt.run(b.batch); err != nil {
		return fmt.Errorf("%s: apply rules: %w", b.family, err)
	}
	return nil
}

// batch collects the lines of one iptables-restore run, per table: chain
// declarations first, then commands in order.
type batch struct {
	order  []string
	decls  map[string][]string
	tables map[string][]string
}

func (bt *batch) touch(table string) {
	if bt.tables == nil {
		bt.tables, bt.decls = map[string][]string{}, map[string][]string{}
	}
	if _, ok := bt.tables[table]; !ok {
		bt.order = append(bt.order, table)
		bt.tables[table] = nil
	}
}

func (bt *batch) line(table, line string) {
	bt.touch(table)
	bt.tables[table] = append(bt.tables[table], line)
}

// declare creates a chain (which, with --noflush, must not exist yet).
func (bt *batch) declare(table, chain string) {
	bt.touch(table)
	bt.decls[table] = append(bt.decls[table], ":"+chain+" - [0:0]")
}

// delete deletes a rule given as iptables-save prints it.
func (bt *batch) delete(table, saved string) { bt.line(table, "-D"+strings.TrimPrefix(saved, "-A")) }

// add appends rules; those marked First are inserted at the top of their
// chain, in reverse so that they end up in the given order.
func (bt *batch) add(rules []Rule) {
	for _, r := range rules {
		if !r.First {
			bt.line(r.Table, r.String())
		}
	}
	for i := len(rules) - 1; i >= 0; i-- {
		if r := rules[i]; r.First {
			bt.line(r.Table, "-I "+r.Chain+" 1"+strings.TrimPrefix(r.String(), "-A "+r.Chain))
		}
	}
}

func (bt *batch) empty() bool { return len(bt.order) == 0 }

func (bt *batch) run(b batcher) error {
	if bt.empty() {
		return nil
	}
	order := slices.Clone(bt.order)
	slices.Sort(order) // deterministic: filter before nat
	var sb strings.Builder
	for _, t := range order {
		fmt.Fprintf(&sb, "*%s\n", t)
		for _, l := range append(slices.Clone(bt.decls[t]), bt.tables[t]...) {
			sb.WriteString(l + "\n")
		}
		sb.WriteString("COMMIT\n")
	}
	return b.Restore(sb.String())
}

// State is one network with its endpoints, as the firewall should have it.
type State struct {
	Network   Network
	Endpoints []Endpoint
}

// Report says what a Reconcile repaired.
type Report struct {
	BaseFixed    bool     // chains or jumps had to be (re)installed
	Reapplied    []string // tags whose rules were missing or different
	OrphansFound []string // tags of networks or endpoints that no longer exist
}

// Changed reports whether anything was repaired.
func (r Report) Changed() bool {
	return r.BaseFixed || len(r.Reapplied) > 0 || len(r.OrphansFound) > 0
}

// Reconcile makes the rulesets exactly what the given states want, in one
// iptables-save and at most one iptables-restore per family: the base
// layout is repaired, every network's and endpoint's rules are rewritten
// where they are missing or differ (after `iptables -F`, say), and rules
// tagged for networks or endpoints that no longer exist are removed.
func (f *Firewall) Reconcile(states []State) (Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rep Report
	for _, b := range f.backends() {
		saved, err := b.batch.Save()
		if err != nil {
			return rep, fmt.Errorf("%s: read ruleset: %w", b.family, err)
		}
		rs := parseSave(saved)
		var bt batch
		if baseFixes(rs, &bt) {
			rep.BaseFixed = true
		}
		// What is there, per tag, in save order; and what should be.
		have := map[string][]string{}
		haveTable := map[string]map[string][]string{}
		for tname, t := range rs {
			for _, chain := range slices.Sorted(maps.Keys(t.rules)) {
				for _, l := range t.rules[chain] {
					if tag, ok := commentTag(l); ok {
						have[tag] = append(have[tag], l)
						if haveTable[tag] == nil {
							haveTable[tag] = map[string][]string{}
						}
						haveTable[tag][tname] = append(haveTable[tag][tname], l)
					}
				}
			}
		}
		want := map[string][]Rule{}
		for _, st := range states {
			want[Tag(st.Network.ID)] = st.Network.Rules(b.family)
			for _, e := range st.Endpoints {
				want[EndpointTag(e.NetworkID, e.EndpointID)] = e.Rules(st.Network, b.family)
			}
		}
		for _, tag := range slices.Sorted(maps.Keys(have)) {
			if _, ok := want[tag]; !ok {
				rep.OrphansFound = append(rep.OrphansFound, tag)
				for tname, lines := range haveTable[tag] {
					for _, l := range lines {
						bt.delete(tname, l)
					}
				}
			}
		}
		for _, tag := range slices.Sorted(maps.Keys(want)) {
			rules := want[tag]
			if sameRules(have[tag], rules) {
				continue
			}
			rep.Reapplied = append(rep.Reapplied, tag)
			for tname, lines := range haveTable[tag] {
				for _, l := range lines {
					bt.delete(tname, l)
				}
			}
			bt.add(rules)
		}
		if err := bt.run(b.batch); err != nil {
			return rep, fmt.Errorf("%s: reconcile rules: %w", b.family, err)
		}
	}
	// A tag repaired in both families is reported once.
	slices.Sort(rep.Reapplied)
	rep.Reapplied = slices.Compact(rep.Reapplied)
	slices.Sort(rep.OrphansFound)
	rep.OrphansFound = slices.Compact(rep.OrphansFound)
	return rep, nil
}

// sameRules compares the lines present for a tag with the rules wanted,
// ignoring order across chains but not within one.
func sameRules(have []string, want []Rule) bool {
	if len(have) != len(want) {
		return false
	}
	w := make([]string, len(want))
	for i, r := range want {
		w[i] = r.String()
	}
	h := slices.Clone(have)
	slices.Sort(h)
	slices.Sort(w)
	return slices.Equal(h, w)
}

// commentTag returns the mynet tag of an iptables-save line, if it has one.
func commentTag(line string) (string, bool) {
	const marker = ` --comment "` + tagPrefix
	i := strings.Index(line, marker)
	if i < 0 {
		return "", false
	}
	rest := line[i+len(marker)-len(tagPrefix):]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

type execBatcher struct{ save, restore string }

func (e execBatcher) Save() (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(e.save)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", e.save, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (e execBatcher) Restore(input string) error {
	var errb bytes.Buffer
	cmd := exec.Command(e.restore, "--noflush", "--wait")
	cmd.Stdin = strings.NewReader(input)
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", e.restore, err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// timedBatcher tells an observer how long each save and restore took.
type timedBatcher struct {
	b       batcher
	family  string
	observe func(family, op string, took time.Duration)
}

func (t timedBatcher) Save() (string, error) {
	start := time.Now()
	out, err := t.b.Save()
	t.observe(t.family, "save", time.Since(start))
	return out, err
}

func (t timedBatcher) Restore(input string) error {
	start := time.Now()
	err := t.b.Restore(input)
	t.observe(t.family, "restore", time.Since(start))
	return err
}

// Health is what Check found.
type Health struct {
	Backend string `json:"backend"` // nft, legacy or system
	Version string `json:"version"` // of the IPv4 iptables
	IPv6    bool   `json:"ipv6"`
	// BaseInstalled says whether mynet's chains are in place (they are not
	// before the first network, nor after the last one is gone).
	BaseInstalled bool `json:"base_installed"`
}

// Check runs iptables once per family to see that the backend answers and
// whether mynet's chains are there. An error means iptables cannot be run
// or read: no network can be created or repaired until it is fixed.
func (f *Firewall) Check() (Health, error) {
	h := Health{Backend: f.kind, IPv6: f.v6 != nil, BaseInstalled: true}
	for _, b := range f.backends() {
		if b.ipt == nil {
			continue
		}
		if b.family == IPv4 {
			v1, v2, v3 := b.ipt.GetIptablesVersion()
			h.Version = fmt.Sprintf("%d.%d.%d", v1, v2, v3)
		}
		ok, err := b.ipt.ChainExists("filter", ChainForward)
		if err != nil {
			return h, fmt.Errorf("%s: iptables does not answer: %w", b.family, err)
		}
		h.BaseInstalled = h.BaseInstalled && ok
	}
	return h, nil
}
