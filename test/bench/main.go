// Command bench is `make bench`: it measures mynet against Docker's built-in
// bridge driver on the same dockerd in the same run, the two alternated per
// item and per round in ABBA order so drift hits both, and prints one table
// of medians, ranges, sample counts and mynet/bridge ratios. Each pass (one
// per engine) writes a part (-part); -assemble joins the parts into
// docs/benchmarks.md, stamped with the commit and every engine's version,
// so that one make bench writes the whole file. It only reports; it never
// fails on a figure.
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

	"github.com/mynet/mynet/internal/netutil"
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
	part                         string // write this pass as a part of the document, for -assemble
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 15, "rounds of each latency workload")
	flag.IntVar(&o.containers, "containers", 200, "containers on one network (workload 4)")
	flag.IntVar(&o.networks, "networks", 200, "networks (workload 5)")
	flag.IntVar(&o.seconds, "seconds", 5, "seconds of each iperf3 run")
	flag.StringVar(&o.out, "out", "/tmp/mynet-bench.md", "where to write this pass alone as a document (make bench writes docs/benchmarks.md from its parts)")
	flag.StringVar(&o.only, "only", "", "comma-separated workload numbers to run (default all)")
	flag.StringVar(&o.part, "part", "", "write this pass as a part of the document (make bench's passes), not -out")
	join := flag.Bool("assemble", false, "write -out from the parts given as arguments, in their order, and run nothing")
	flag.Parse()
	var err error
	if *join {
		err = assemble(o.out, flag.Args())
	} else {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
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

	links, err := netutil.New()
	if err != nil {
		return err
	}
	defer links.Close()
	fl, err := startFloor(links)
	if err != nil {
		return err
	}
	// Its networks go before it does (cleanup asks dockerd, which asks it).
	defer func() { cleanup(); fl.stop() }()
	w := &workloads{o: o, r: &report{}, daemonPid: d.Process.Pid, links: links}
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
	p := part(o, w.r)
	switch {
	case o.part != "":
		return os.WriteFile(o.part, []byte(p), 0o644)
	case o.out == "":
		return nil
	default:
		tmp := filepath.Join(tmp, "part.md")
		if err := os.WriteFile(tmp, []byte(p), 0o644); err != nil {
			return err
		}
		return assemble(o.out, []string{tmp})
	}
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
	x, _, err := timedOut(args...)
	return x, err
}

// timedOut is timed with the command's output.
func timedOut(args ...string) (float64, string, error) {
	start := time.Now()
	out, err := docker(args...)
	return msSince(start), out, err
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

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
