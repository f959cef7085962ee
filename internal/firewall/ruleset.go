package firewall

import (
	"bufio"
	"fmt"
	"slices"
	"strings"
)

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

// edit is the one read-modify-write cycle on a family's ruleset: one
// iptables-save, fn adds the changes to a batch, and at most one
// iptables-restore --noflush runs them atomically per table. what names
// the change in errors. Caller holds the Firewall's mu.
func (b *backend) edit(what string, fn func(rs ruleset, bt *batch) error) error {
	saved, err := b.batch.Save()
	if err != nil {
		return fmt.Errorf("%s: read ruleset: %w", b.family, err)
	}
	var bt batch
	if err := fn(parseSave(saved), &bt); err != nil {
		return err
	}
	if err := bt.run(b.batch); err != nil {
		return fmt.Errorf("%s: %s: %w", b.family, what, err)
	}
	return nil
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
