package firewall

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
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

// edit is the one read-modify-write cycle on a family's ruleset: fn adds
// the changes to a batch, and at most one iptables-restore --noflush runs
// them atomically per table. what names the change in errors. Caller holds
// the Firewall's mu.
//
// With fresh, the ruleset fn sees is read with iptables-save. Without, it
// is the one of the last edit with that edit's own changes applied, when
// there is one: iptables-save costs time in proportion to every rule on
// the host (25 ms more at 2000 rules here), which made each network
// create slower than the one before. What others changed meanwhile is not
// in it: a change of ours that no longer fits (a rule to delete is gone, a
// chain was removed) fails the restore, and the edit runs once more on a
// fresh read; the rest (a jump moved by a dockerd restart, say) is
// Reconcile's, which always reads fresh, on its timer and on events.
func (b *backend) edit(what string, fresh bool, fn func(rs ruleset, bt *batch) error) error {
	rs := b.cached
	b.cached = nil
	fromCache := !fresh && rs != nil
	if !fromCache {
		saved, err := b.batch.Save()
		if err != nil {
			return fmt.Errorf("%s: read ruleset: %w", b.family, err)
		}
		rs = parseSave(saved)
	}
	var bt batch
	if err := fn(rs, &bt); err != nil {
		return err
	}
	if err := bt.run(b.batch); err != nil {
		if fromCache {
			return b.edit(what, true, fn)
		}
		return fmt.Errorf("%s: %s: %w", b.family, what, err)
	}
	if bt.applyTo(rs) {
		b.cached = rs
	}
	return nil
}

// applyTo makes rs what the kernel has after bt ran on it, and reports
// whether it could: it knows -A, -I, -D and -F lines and declarations.
func (bt *batch) applyTo(rs ruleset) bool {
	for _, tname := range bt.order {
		t := rs[tname]
		if t == nil {
			t = &table{chains: map[string]bool{}, rules: map[string][]string{}}
			rs[tname] = t
		}
		for _, d := range bt.decls[tname] {
			t.chains[strings.Fields(d[1:])[0]] = true
		}
		for _, l := range bt.tables[tname] {
			f := strings.Fields(l)
			if len(f) < 2 {
				return false
			}
			chain := f[1]
			switch f[0] {
			case "-A":
				t.rules[chain] = append(t.rules[chain], l)
			case "-D":
				i := slices.Index(t.rules[chain], "-A"+strings.TrimPrefix(l, "-D"))
				if i < 0 {
					return false
				}
				t.rules[chain] = slices.Delete(t.rules[chain], i, i+1)
			case "-I":
				if len(f) < 3 {
					return false
				}
				pos, err := strconv.Atoi(f[2])
				if err != nil || pos < 1 || pos > len(t.rules[chain])+1 {
					return false
				}
				saved := "-A " + chain + strings.TrimPrefix(l, "-I "+chain+" "+f[2])
				t.rules[chain] = slices.Insert(t.rules[chain], pos-1, saved)
			case "-F":
				t.rules[chain] = nil
			default:
				return false
			}
		}
	}
	return true
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
