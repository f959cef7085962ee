package firewall

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"

	"github.com/coreos/go-iptables/iptables"
	"github.com/sirupsen/logrus"
)

// iptablesAPI is the part of go-iptables the firewall uses.
type iptablesAPI interface {
	ChainExists(table, chain string) (bool, error)
	NewChain(table, chain string) error
	List(table, chain string) ([]string, error)
	Insert(table, chain string, pos int, rulespec ...string) error
}

var _ iptablesAPI = (*iptables.IPTables)(nil)

// batcher reads the whole ruleset and writes a batch of changes atomically:
// iptables-save and iptables-restore --noflush.
type batcher interface {
	Save() (string, error)
	Restore(input string) error
}

// Firewall programs mynet's IPv4 rules.
type Firewall struct {
	ipt   iptablesAPI
	batch batcher
	log   *logrus.Entry

	mu sync.Mutex // serializes our read-modify-write cycles on the ruleset
}

// New returns a Firewall that drives the host's iptables binaries (the
// backend, nf_tables or legacy, is whatever `iptables` is on this host).
func New(log *logrus.Entry) (*Firewall, error) {
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	save, err := exec.LookPath("iptables-save")
	if err != nil {
		return nil, fmt.Errorf("iptables-save: %w", err)
	}
	restore, err := exec.LookPath("iptables-restore")
	if err != nil {
		return nil, fmt.Errorf("iptables-restore: %w", err)
	}
	return newFirewall(ipt, execBatcher{save: save, restore: restore}, log), nil
}

func newFirewall(ipt iptablesAPI, b batcher, log *logrus.Entry) *Firewall {
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Firewall{ipt: ipt, batch: b, log: log}
}

// EnsureBase makes our chains and the jumps to them exist. It is cheap when
// everything is in place and safe to call at any time.
func (f *Firewall) EnsureBase() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range []struct{ table, chain, from string }{
		{"filter", ChainForward, "FORWARD"},
		{"nat", ChainPostrouting, "POSTROUTING"},
	} {
		ok, err := f.ipt.ChainExists(c.table, c.chain)
		if err != nil {
			return fmt.Errorf("check chain %s/%s: %w", c.table, c.chain, err)
		}
		if !ok {
			if err := f.ipt.NewChain(c.table, c.chain); err != nil {
				return fmt.Errorf("create chain %s/%s: %w", c.table, c.chain, err)
			}
		}
		rules, err := f.ipt.List(c.table, c.from)
		if err != nil {
			return fmt.Errorf("list %s/%s: %w", c.table, c.from, err)
		}
		jump := "-A " + c.from + " -j " + c.chain
		if slices.Contains(rules, jump) {
			continue
		}
		// rules[0] is the policy line ("-P FORWARD DROP"); rule n is at rules[n].
		pos := 1
		if c.from == "FORWARD" {
			if i := slices.Index(rules, "-A FORWARD -j DOCKER-USER"); i > 0 {
				pos = i + 1
			}
		}
		if err := f.ipt.Insert(c.table, c.from, pos, "-j", c.chain); err != nil {
			return fmt.Errorf("add jump %s/%s -> %s: %w", c.table, c.from, c.chain, err)
		}
		f.log.WithFields(logrus.Fields{"table": c.table, "chain": c.from, "position": pos}).Info("added jump to " + c.chain)
	}
	return nil
}

// AddNetwork installs the network's rules, replacing any rules that carry
// its tag, in one atomic batch.
func (f *Firewall) AddNetwork(n Network) error {
	if err := n.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.apply(Tag(n.ID), n.Rules())
}

// RemoveNetwork deletes every rule that carries the network's tag. A network
// without rules is not an error.
func (f *Firewall) RemoveNetwork(networkID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.apply(Tag(networkID), nil)
}

// apply deletes the rules tagged tag and appends add, in one restore.
// Caller holds f.mu.
func (f *Firewall) apply(tag string, add []Rule) error {
	saved, err := f.batch.Save()
	if err != nil {
		return fmt.Errorf("read ruleset: %w", err)
	}
	tables := map[string][]string{}
	var order []string
	addLine := func(table, line string) {
		if _, ok := tables[table]; !ok {
			order = append(order, table)
		}
		tables[table] = append(tables[table], line)
	}
	for table, lines := range taggedRules(saved, tag) {
		for _, l := range lines {
			addLine(table, "-D"+strings.TrimPrefix(l, "-A"))
		}
	}
	for _, r := range add {
		addLine(r.Table, r.String())
	}
	if len(order) == 0 {
		return nil
	}
	var b strings.Builder
	for _, t := range order {
		fmt.Fprintf(&b, "*%s\n%s\nCOMMIT\n", t, strings.Join(tables[t], "\n"))
	}
	if err := f.batch.Restore(b.String()); err != nil {
		return fmt.Errorf("apply rules %s: %w", tag, err)
	}
	return nil
}

// taggedRules returns, per table, the "-A" lines of an iptables-save dump
// whose comment is exactly tag.
func taggedRules(saved, tag string) map[string][]string {
	out := map[string][]string{}
	table := ""
	sc := bufio.NewScanner(strings.NewReader(saved))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, "-A ") && hasComment(line, tag):
			out[table] = append(out[table], line)
		}
	}
	return out
}

func hasComment(line, tag string) bool {
	return strings.Contains(line, ` --comment "`+tag+`"`)
}

// Tags lists the network tags present in the ruleset (for reconciling).
func (f *Firewall) Tags() (map[string]bool, error) {
	saved, err := f.batch.Save()
	if err != nil {
		return nil, fmt.Errorf("read ruleset: %w", err)
	}
	out := map[string]bool{}
	marker := ` --comment "` + tagPrefix
	for _, line := range strings.Split(saved, "\n") {
		i := strings.Index(line, marker)
		if i < 0 || !strings.HasPrefix(line, "-A ") {
			continue
		}
		rest := line[i+len(marker)-len(tagPrefix):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			out[rest[:j]] = true
		}
	}
	return out, nil
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
