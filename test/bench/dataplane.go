package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// pair starts an iperf3+rr server and a client container on a network,
// both pinned to CPU 0, and returns throughput (Gbit/s) and round trip (us).
func (w *workloads) pair(network string) (float64, float64, error) {
	srv, cli := prefix+"srv", prefix+"cli"
	defer docker("rm", "-f", srv, cli)
	if _, err := docker("run", "-d", "--name", srv, "--cpuset-cpus", "0", "--network", network, toolImage,
		"sh", "-c", "rr serve 7000 & exec iperf3 -s"); err != nil {
		return 0, 0, err
	}
	ip, err := docker("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", network), srv)
	if err != nil {
		return 0, 0, err
	}
	if _, err := docker("run", "-d", "--name", cli, "--cpuset-cpus", "0", "--network", network, toolImage, "sleep", "3600"); err != nil {
		return 0, 0, err
	}
	return measure(func(args ...string) (string, error) { return docker(append([]string{"exec", cli}, args...)...) }, ip, w.o.seconds)
}

var bpsRe = regexp.MustCompile(`"bits_per_second":\s*([0-9.e+]+)`)

// measure runs iperf3 and rr from a client (exec) against ip.
func measure(exec func(args ...string) (string, error), ip string, seconds int) (float64, float64, error) {
	var out string
	var err error
	for range 25 { // the server may still be starting
		// iperf3 -J can exit 0 with an "error" in its JSON (server not up yet).
		if out, err = exec("iperf3", "-c", ip, "-t", strconv.Itoa(seconds), "-J"); err == nil && !strings.Contains(out, `"error":`) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return 0, 0, err
	}
	m := bpsRe.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, 0, fmt.Errorf("no throughput in iperf3 output: %.300q", out)
	}
	bps, _ := strconv.ParseFloat(m[len(m)-1][1], 64) // the receiver's summary comes last
	rtt, err := exec("rr", "ping", ip+":7000", "20000")
	if err != nil {
		return 0, 0, err
	}
	us, _ := strconv.ParseFloat(strings.TrimSpace(rtt), 64)
	return bps / 1e9, us, nil
}

// floor measures the same between two bare namespaces on a bare bridge.
func (w *workloads) floor() (float64, float64, error) {
	cmds := [][]string{
		{"ip", "netns", "add", "mnbench-a"}, {"ip", "netns", "add", "mnbench-b"},
		{"ip", "link", "add", "mnbench-br", "type", "bridge"}, {"ip", "link", "set", "mnbench-br", "up"},
		// br_netfilter sends bridged traffic through FORWARD, whose policy
		// dockerd sets to DROP: the floor needs one accept, as any bridge does.
		{"iptables", "-I", "FORWARD", "-i", "mnbench-br", "-o", "mnbench-br", "-j", "ACCEPT"},
	}
	for i, ns := range []string{"mnbench-a", "mnbench-b"} {
		h, p := fmt.Sprintf("mnbench-h%d", i), fmt.Sprintf("mnbench-p%d", i)
		cmds = append(cmds,
			[]string{"ip", "link", "add", h, "type", "veth", "peer", "name", p},
			[]string{"ip", "link", "set", h, "master", "mnbench-br", "up"},
			[]string{"ip", "link", "set", p, "netns", ns},
			[]string{"ip", "-n", ns, "addr", "add", fmt.Sprintf("192.0.2.%d/24", i+1), "dev", p},
			[]string{"ip", "-n", ns, "link", "set", p, "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("%v: %v %s", c, err, out)
		}
	}
	// iperf3 -1 serves one test and exits; rr is stopped by its handle.
	ipf := exec.Command("ip", "netns", "exec", "mnbench-a", "taskset", "-c", "0", "iperf3", "-s", "-1")
	rrs := exec.Command("ip", "netns", "exec", "mnbench-a", "taskset", "-c", "0", rrPath(), "serve", "7000")
	var srvLog strings.Builder
	for _, c := range []*exec.Cmd{ipf, rrs} {
		c.Stdout, c.Stderr = &srvLog, &srvLog
		if err := c.Start(); err != nil {
			return 0, 0, err
		}
		defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	}
	t, r, err := measure(func(args ...string) (string, error) {
		full := append([]string{"netns", "exec", "mnbench-b", "taskset", "-c", "0"}, args...)
		if args[0] == "rr" {
			full[len(full)-len(args)] = rrPath()
		}
		out, err := exec.Command("ip", full...).Output()
		return string(out), err
	}, "192.0.2.1", w.o.seconds)
	if err != nil {
		return 0, 0, fmt.Errorf("%w (servers said: %q)", err, srvLog.String())
	}
	return t, r, nil
}

// rrPath is rr built for the host, beside the bench's temporary files.
func rrPath() string { return "/tmp/mynet-bench-rr" }

// 6. Data plane between two containers on one network, and the floor.
func (w *workloads) dataPlane() error {
	if out, err := exec.Command("go", "build", "-o", rrPath(), "./test/bench/rr").CombinedOutput(); err != nil {
		return fmt.Errorf("build rr: %v %s", err, out)
	}
	for _, d := range drivers {
		if _, err := docker("network", "create", "-d", d, "--subnet", subnet(d, 3), netName(d, "dp")); err != nil {
			return err
		}
	}
	tput, rtt := map[string][]float64{}, map[string][]float64{}
	for i := range 8 {
		for _, d := range order(i) {
			t, r, err := w.pair(netName(d, "dp"))
			if err != nil {
				return err
			}
			tput[d], rtt[d] = append(tput[d], t), append(rtt[d], r)
		}
	}
	ft, fr, err := w.floor()
	cleanup()
	if err != nil {
		return err
	}
	w.r.add("6. TCP throughput, two containers on one network (one CPU)", "Gbit/s", higher, tput[driver], tput["bridge"],
		fmt.Sprintf("floor (bare namespaces on a bare bridge): %s; target: ratio >= 0.97", num(ft)))
	w.r.add("6. TCP request/response round trip (each sample the median of 20000)", "us", lower, rtt[driver], rtt["bridge"],
		fmt.Sprintf("floor: %s", num(fr)))
	return nil
}
