// Command bench is `make bench`: it measures mynet against Docker's built-in
// bridge driver on the same dockerd in the same run, with workloads run
// interleaved (bridge, mynet, bridge, mynet, ...) so drift hits both, prints
// one table of medians, ranges and mynet/bridge ratios, and writes it with
// the machine and the command to docs/benchmarks.md. It only reports; it
// never fails on a figure.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mynet/mynet/test/dockercli"
)

const (
	driver    = "mynet-bench" // the bench daemon's socket name
	toolImage = "mynet-bench/tools:1"
	prefix    = "mynet-bench-"
)

// options are the workload sizes; the defaults are the issue's.
type options struct {
	rounds, containers, networks int
	seconds                      int
	out                          string
	only                         string
	append                       bool // add a section to out instead of writing it
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 15, "rounds of each latency workload")
	flag.IntVar(&o.containers, "containers", 200, "containers on one network (workload 4)")
	flag.IntVar(&o.networks, "networks", 200, "networks (workload 5)")
	flag.IntVar(&o.seconds, "seconds", 5, "seconds of each iperf3 run")
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "where to write the report")
	flag.StringVar(&o.only, "only", "", "comma-separated workload numbers to run (default all)")
	flag.BoolVar(&o.append, "append", false, "append this run as a section of -out, named for the engine (make bench's second engine)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// row is one line of the table.
type row struct {
	name, unit    string
	mynet, bridge []float64 // samples; bridge empty when there is nothing to compare with
	note          string
	text          string // mynet's cell, when it is not a set of samples (p50 / p99)
}

type report struct{ rows []row }

func (r *report) add(name, unit string, mynet, bridge []float64, note string) {
	r.rows = append(r.rows, row{name: name, unit: unit, mynet: mynet, bridge: bridge, note: note})
	fmt.Fprintf(os.Stderr, "bench: %-60s mynet %s  bridge %s  %s\n", name, stat(mynet), stat(bridge), ratio(mynet, bridge))
}

// addText adds a row whose mynet cell is given as text.
func (r *report) addText(name, unit, text, note string) {
	r.rows = append(r.rows, row{name: name, unit: unit, text: text, note: note})
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

func stat(v []float64) string {
	switch len(v) {
	case 0:
		return "-"
	case 1:
		return num(v[0])
	}
	return fmt.Sprintf("%s (%s-%s)", num(median(v)), num(slices.Min(v)), num(slices.Max(v)))
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

func ratio(m, b []float64) string {
	if len(m) == 0 || len(b) == 0 || median(b) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", median(m)/median(b))
}

func (r *report) markdown() string {
	var sb strings.Builder
	sb.WriteString("| metric | unit | mynet median (min-max) | bridge median (min-max) | mynet/bridge | note |\n|---|---|---|---|---|---|\n")
	for _, x := range r.rows {
		cell := stat(x.mynet)
		if x.text != "" {
			cell = x.text
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s |\n", x.name, x.unit, cell, stat(x.bridge), ratio(x.mynet, x.bridge), x.note)
	}
	return sb.String()
}

func run(o options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root")
	}
	for _, cmd := range [][]string{{"bash", "test/e2e/setup.sh"}, {"bash", "test/bench/image.sh"}} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %v\n%s", cmd, err, out)
		}
	}
	tmp, err := os.MkdirTemp("", "mynet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "mynet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("build mynet: %v\n%s", err, out)
	}
	sock := "/run/docker/plugins/" + driver + ".sock"
	d := exec.Command(bin, "--socket", sock, "--state-dir", filepath.Join(tmp, "state"))
	var dlog bytes.Buffer
	d.Stdout, d.Stderr = &dlog, &dlog
	if err := d.Start(); err != nil {
		return err
	}
	defer func() {
		_ = d.Process.Signal(syscall.SIGTERM)
		_ = d.Wait()
	}()
	for range 100 {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cleanup()
	defer cleanup()

	w := &workloads{o: o, r: &report{}, daemonPid: d.Process.Pid}
	all := []struct {
		n  string
		fn func() error
	}{
		{"1", w.networkLatency}, {"2", w.attachCost}, {"3", w.connectDisconnect},
		{"4", w.manyContainers}, {"6", w.dataPlane}, {"5", w.manyNetworks},
		{"7", w.pluginSide}, {"8", w.ipam}, {"9", w.repairTime}, {"10", w.multiHost}, {"11", w.clusterScale},
		{"12", w.namesAcrossHosts}, {"13", w.encrypted}, {"14", w.ipv6AcrossHosts},
	}
	for _, x := range all {
		if o.only != "" && !slices.Contains(strings.Split(o.only, ","), x.n) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: workload %s\n", x.n)
		if err := x.fn(); err != nil {
			fmt.Fprintf(os.Stderr, "mynet log:\n%s\n", tail(dlog.String(), 4000))
			return fmt.Errorf("workload %s: %w", x.n, err)
		}
		if len(w.missing) > 0 {
			return fmt.Errorf("workload %s: its benchmarks did not report %s", x.n, strings.Join(w.missing, ", "))
		}
	}
	fmt.Print(w.r.markdown())
	switch {
	case o.out == "":
		return nil
	case o.append:
		f, err := os.OpenFile(o.out, os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteString(section(o, w.r))
		return err
	default:
		return os.WriteFile(o.out, []byte(document(o, w.r)), 0o644)
	}
}

// section is a run against a second engine, appended to the document.
func section(o options, r *report) string {
	ver, _ := docker("version", "--format", "{{.Server.Version}}")
	only := "all workloads"
	if o.only != "" {
		only = "workloads " + o.only
	}
	return fmt.Sprintf("\n## Against Docker Engine %s (%s)\n\nSame machine, %[2]s, %s UTC, in the engine's own namespace "+
		"(`test/engine/engine.sh run go run ./test/bench -append ...`; %d rounds, %d containers, %d networks, iperf3 %d s). "+
		"Docker's bridge here is Engine %s's.\n\n%s",
		ver, only, time.Now().UTC().Format("2006-01-02 15:04"), o.rounds, o.containers, o.networks, o.seconds, ver, r.markdown())
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// docker runs the docker CLI and returns its stdout.
func docker(args ...string) (string, error) {
	out, err := dockercli.Run(args...)
	if err != nil {
		return "", fmt.Errorf("docker %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// timed runs the docker CLI and returns its duration in milliseconds.
func timed(args ...string) (float64, error) {
	start := time.Now()
	_, err := docker(args...)
	return float64(time.Since(start).Microseconds()) / 1000, err
}

// cleanup removes, by name, every container and network the bench makes.
func cleanup() {
	if ids, _ := docker("ps", "-aq", "--filter", "name="+prefix); ids != "" {
		_, _ = docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	if ids, _ := docker("network", "ls", "-q", "--filter", "name="+prefix); ids != "" {
		for _, id := range strings.Fields(ids) {
			_, _ = docker("network", "rm", id)
		}
	}
	for _, n := range []string{"mnbench-a", "mnbench-b"} {
		_ = exec.Command("ip", "netns", "del", n).Run()
	}
	_ = exec.Command("ip", "link", "del", "mnbench-br").Run()
	_ = exec.Command("iptables", "-D", "FORWARD", "-i", "mnbench-br", "-o", "mnbench-br", "-j", "ACCEPT").Run()
}

func document(o options, r *report) string {
	var sb strings.Builder
	sh := func(name string, args ...string) string {
		out, _ := exec.Command(name, args...).Output()
		return strings.TrimSpace(string(out))
	}
	ver, _ := docker("version", "--format", "{{.Server.Version}}")
	mem := sh("sh", "-c", "free -h | awk '/Mem/ {print $2}'")
	fmt.Fprintf(&sb, "# Benchmarks\n\nLast run of `make bench` (`go run ./test/bench`), %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&sb, "Machine: %s cores, %s memory, kernel %s, Docker Engine %s, %s, mynet %s.\n\n",
		sh("nproc"), mem, sh("uname", "-r"), ver, sh("iptables", "--version"), sh("git", "describe", "--always", "--dirty"))
	fmt.Fprintf(&sb, "Command: `make bench` (defaults: %d rounds, %d containers, %d networks, iperf3 %d s). "+
		"Runs are interleaved bridge/mynet so machine drift hits both; the ratio is mynet's median over bridge's. "+
		"The benchmark reports and never asserts.\n\n", o.rounds, o.containers, o.networks, o.seconds)
	sb.WriteString(r.markdown())
	sb.WriteString("\nEarlier figures are in the git history of this file; what the figures are made of, measured by hand, is in [performance.md](performance.md).\n")
	return sb.String()
}
