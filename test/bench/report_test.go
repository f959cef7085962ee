package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A tail is called the maximum below 100 samples and p99 from 100 on, and
// a cell of samples says how many.
func TestCellsSayTheirSampleCount(t *testing.T) {
	t.Parallel()
	if got := tails(1.5, 9, 30); got != "p50 1.50 / max 9.00 (n=30)" {
		t.Errorf("tails of 30 = %q", got)
	}
	if got := tails(1.5, 9, 300); got != "p50 1.50 / p99 9.00 (n=300)" {
		t.Errorf("tails of 300 = %q", got)
	}
	if got := stat([]float64{3, 1, 2, 10}); got != "2.50 (1.00-10.0, n=4)" {
		t.Errorf("stat = %q", got)
	}
	if got := ratio([]float64{1, 2, 3}, []float64{4, 4, 4}); got != "0.50" {
		t.Errorf("ratio = %q", got)
	}
}

// The drivers alternate ABBA: each first in every other round.
func TestOrderIsABBA(t *testing.T) {
	t.Parallel()
	var seq []string
	for i := range 4 {
		seq = append(seq, order(i)...)
	}
	want := "bridge mynet-bench mynet-bench bridge bridge mynet-bench mynet-bench bridge"
	if got := strings.Join(seq, " "); got != want {
		t.Errorf("order = %q, want %q", got, want)
	}
}

// The document is the parts in their order under one header that names
// every part's engine, and a file that is not a part is refused.
func TestAssembleJoinsThePartsAndStampsTheEngines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, engine, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(partMark+engine+" -->\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := write("a.md", "20.10.24", "## first\n"), write("b.md", "29.0.0", "## second\n")
	out := filepath.Join(dir, "out.md")
	if err := assemble(out, []string{a, b}); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile(out)
	s := string(doc)
	if !strings.Contains(s, "Docker Engine 20.10.24 and Docker Engine 29.0.0") {
		t.Errorf("header does not name both engines:\n%s", s)
	}
	if i, j := strings.Index(s, "## first"), strings.Index(s, "## second"); i < 0 || j < i {
		t.Errorf("parts missing or out of order:\n%s", s)
	}
	if strings.Contains(s, partMark) {
		t.Errorf("a part's mark left in the document:\n%s", s)
	}
	bad := filepath.Join(dir, "bad.md")
	_ = os.WriteFile(bad, []byte("# hand-written\n"), 0o644)
	if err := assemble(out, []string{a, bad}); err == nil || !strings.Contains(err.Error(), "not a part") {
		t.Errorf("a file that is not a part: %v", err)
	}
}
