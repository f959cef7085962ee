package main

import (
	"strings"
	"testing"
)

// goBench reads a real go test -bench run's metrics by name, whatever the
// machine's core count (go test's name suffix), and a metric or benchmark
// the run did not report is recorded as missing, never read as 0.
func TestGoBenchReadsMetricsAndFailsOnMissing(t *testing.T) {
	w := &workloads{}
	res, err := w.goBench("../../internal/clusternet", "BenchmarkResolveName", "100x")
	if err != nil {
		t.Fatal(err)
	}
	m := res.bench("BenchmarkResolveName/endpoints=1000")
	if v := m.get("ns/question"); v <= 0 || len(w.missing) != 0 {
		t.Fatalf("ns/question = %v, missing %v; read %v", v, w.missing, res.byName)
	}
	m.get("no-such-metric")
	res.bench("BenchmarkNoSuch")
	if got := strings.Join(w.missing, "; "); got != "BenchmarkResolveName/endpoints=1000 no-such-metric; BenchmarkNoSuch (not run)" {
		t.Errorf("missing = %q", got)
	}
}
