package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// goBench runs a Go benchmark and returns its metrics by name, per line.
func (w *workloads) goBench(pkg, name, benchtime string) (benchResults, error) {
	// -cpu fixes the suffix go test gives each name ("-2" on a machine
	// with 2 cores, none with 1), which the results are read without.
	procs := runtime.GOMAXPROCS(0)
	out, err := exec.Command("go", "test", "-run", "^$", "-bench", name, "-benchtime", benchtime, "-cpu", strconv.Itoa(procs), pkg).CombinedOutput()
	if err != nil {
		return benchResults{}, fmt.Errorf("go test -bench %s %s: %v\n%s", name, pkg, err, out)
	}
	suffix := ""
	if procs > 1 {
		suffix = "-" + strconv.Itoa(procs)
	}
	res := benchResults{byName: map[string]map[string]float64{}, missing: &w.missing}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				m[f[i+1]] = v
			}
		}
		res.byName[strings.TrimSuffix(f[0], suffix)] = m
	}
	return res, nil
}

// benchResults are a go test -bench run's metrics, by benchmark name.
// A benchmark or metric asked for that the run did not report is
// recorded in missing, which fails the workload (never a 0 in the table).
type benchResults struct {
	byName  map[string]map[string]float64
	missing *[]string
}

// metrics are one benchmark's.
type metrics struct {
	name    string
	m       map[string]float64
	missing *[]string
}

func (r benchResults) bench(name string) metrics {
	m, ok := r.byName[name]
	if !ok {
		*r.missing = append(*r.missing, name+" (not run)")
	}
	return metrics{name: name, m: m, missing: r.missing}
}

// has tells whether the benchmark reported key (for what it reports only
// in some runs).
func (x metrics) has(key string) bool {
	_, ok := x.m[key]
	return ok
}

// get is the metric's value, recorded as missing when it was not reported.
func (x metrics) get(key string) float64 {
	v, ok := x.m[key]
	if !ok && x.m != nil {
		*x.missing = append(*x.missing, x.name+" "+key)
	}
	return v
}
