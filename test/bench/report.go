package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Directions a row is read in.
const (
	lower  = "lower"
	higher = "higher"
	flat   = "flat" // the last items against the first: neither way is better
	count  = ""     // a count, a size or a property
)

// row is one line of a table.
type row struct {
	name, unit    string
	better        string    // lower, higher, flat or count
	mynet, bridge []float64 // samples; bridge empty when there is nothing to compare with
	note          string
	text          string // mynet's cell, when it is not a set of samples
}

type report struct{ rows []row }

func (r *report) add(name, unit, better string, mynet, bridge []float64, note string) {
	r.rows = append(r.rows, row{name: name, unit: unit, better: better, mynet: mynet, bridge: bridge, note: note})
	fmt.Fprintf(os.Stderr, "bench: %-60s mynet %s  bridge %s  %s\n", name, stat(mynet), stat(bridge), ratio(mynet, bridge))
}

// addText adds a row whose mynet cell is given as text.
func (r *report) addText(name, unit, better, text, note string) {
	r.rows = append(r.rows, row{name: name, unit: unit, better: better, text: text, note: note})
	fmt.Fprintf(os.Stderr, "bench: %-60s mynet %s\n", name, text)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// stat is a set of samples as a cell: median (min-max, n).
func stat(v []float64) string {
	switch len(v) {
	case 0:
		return "-"
	case 1:
		return num(v[0])
	}
	return fmt.Sprintf("%s (%s-%s, n=%d)", num(median(v)), num(slices.Min(v)), num(slices.Max(v)), len(v))
}

// tails is a Go benchmark's p50 and tail of n samples as a cell: the tail
// is called p99 from 100 samples on, and is the maximum below that (the
// benchmarks' p99 of fewer samples is their largest or next to it).
func tails(p50, tail float64, n int) string {
	name := "p99"
	if n < 100 {
		name = "max"
	}
	return fmt.Sprintf("p50 %s / %s %s (n=%d)", num(p50), name, num(tail), n)
}

func num(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

// ratio is mynet's median over bridge's.
func ratio(m, b []float64) string {
	if len(m) == 0 || len(b) == 0 || median(b) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", median(m)/median(b))
}

func (r *report) markdown() string {
	var sb strings.Builder
	sb.WriteString("| metric | unit | better | mynet median (min-max, n) | bridge median (min-max, n) | mynet/bridge | note |\n|---|---|---|---|---|---|---|\n")
	for _, x := range r.rows {
		cell := stat(x.mynet)
		if x.text != "" {
			cell = x.text
		}
		better := x.better
		if better == count {
			better = "-"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s |\n", x.name, x.unit, better, cell, stat(x.bridge), ratio(x.mynet, x.bridge), x.note)
	}
	return sb.String()
}

// A part is one pass's section: the run against one engine. Its first
// line names the engine, which the assembled document's header stamps.
const partMark = "<!-- mynet-bench engine: "

var partRe = regexp.MustCompile(`^` + regexp.QuoteMeta(partMark) + `(.*) -->\n`)

// part renders this pass as a section of the document.
func part(o options, r *report) string {
	ver, _ := docker("version", "--format", "{{.Server.Version}}")
	only := "all workloads"
	if o.only != "" {
		only = "workloads " + o.only
	}
	return fmt.Sprintf("%s%s -->\n## Against Docker Engine %s (%s)\n\n%s UTC, %d rounds, %d containers, %d networks, iperf3 %d s. "+
		"Docker's bridge here is Engine %s's, on the same dockerd as mynet.\n\n%s",
		partMark, ver, ver, only, time.Now().UTC().Format("2006-01-02 15:04"), o.rounds, o.containers, o.networks, o.seconds, ver, r.markdown())
}

// assemble writes the document from the parts' files, in their order.
func assemble(out string, files []string) error {
	var parts, engines []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("a pass's part: %w", err)
		}
		m := partRe.FindStringSubmatch(string(b))
		if m == nil {
			return fmt.Errorf("%s is not a part of make bench (no %q line)", f, partMark)
		}
		engines = append(engines, m[1])
		parts = append(parts, strings.TrimPrefix(string(b), m[0]))
	}
	return os.WriteFile(out, []byte(document(engines, parts)), 0o644)
}

func document(engines, parts []string) string {
	var sb strings.Builder
	sh := func(name string, args ...string) string {
		out, _ := exec.Command(name, args...).Output()
		return strings.TrimSpace(string(out))
	}
	mem := sh("sh", "-c", "free -h | awk '/Mem/ {print $2}'")
	fmt.Fprintf(&sb, "# Benchmarks\n\nWritten whole by one `make bench` (`go run ./test/bench`, then `test/engine/bench.sh`), finished %s; "+
		"mynet %s; Docker Engine %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), sh("git", "describe", "--always", "--dirty"), strings.Join(engines, " and Docker Engine "))
	fmt.Fprintf(&sb, "Machine: %s cores, %s memory, kernel %s, %s.\n\n", sh("nproc"), mem, sh("uname", "-r"), sh("iptables", "--version"))
	sb.WriteString("How to read it: each row says which way is better (`flat`: the last items against the first, where the target is no growth). " +
		"Samples are given as median (min-max, n). A Go benchmark's tail is p99 from 100 samples on and the maximum below that. " +
		"mynet/bridge is mynet's median over bridge's; both drivers run in the same pass on the same dockerd, alternated per item " +
		"and per round in ABBA order (bridge, mynet, mynet, bridge, ...), so the machine's drift hits both. " +
		"`network rm` and `rm -f` are reported twice: until the command returns, and until the kernel has nothing of it left " +
		"(mynet replies first and deletes its links in the background; Docker's bridge deletes them before it replies). " +
		"The benchmark reports and never asserts.\n\n")
	for _, p := range parts {
		sb.WriteString(p)
		sb.WriteString("\n")
	}
	sb.WriteString("Earlier runs are in the git history of this file. Analyses made by hand (where a figure's time goes, " +
		"why a path costs what it does) are in [performance.md](performance.md), each with its date and command.\n")
	return sb.String()
}
