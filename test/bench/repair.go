package main

import (
	"fmt"
	"net"
	"os/exec"
	"time"
)

// 9. Repair of a deleted bridge: `ip link del` of a mynet network's bridge
// to the container answering TCP from the host again, which needs the
// bridge, its gateway address and the veth back on it. mynet repairs on the
// kernel's link event; the periodic reconcile (10 s here) is only the
// backstop. Docker's bridge driver does not rebuild a deleted bridge at all,
// so there is no ratio.
func (w *workloads) repairTime() error {
	n, c := prefix+"repair", prefix+"repair1"
	id, err := docker("network", "create", "-d", driver, "--subnet", "10.239.0.0/24", n)
	if err != nil {
		return err
	}
	defer docker("network", "rm", n)
	if _, err := docker("run", "-d", "--name", c, "--network", n, toolImage, "httpd", "-f", "-p", "8080", "-h", "/"); err != nil {
		return err
	}
	defer docker("rm", "-f", c)
	ip, err := docker("inspect", "-f", "{{(index .NetworkSettings.Networks \""+n+"\").IPAddress}}", c)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(ip, "8080")
	if _, err := reachable(addr, 10*time.Second); err != nil {
		return fmt.Errorf("container never answered: %w", err)
	}
	bridge := "mn-" + id[:12]
	var samples []float64
	for range w.o.rounds {
		start := time.Now()
		if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil {
			return fmt.Errorf("ip link del %s: %v: %s", bridge, err, out)
		}
		if _, err := reachable(addr, 30*time.Second); err != nil {
			return fmt.Errorf("after deleting %s: %w", bridge, err)
		}
		samples = append(samples, float64(time.Since(start).Microseconds())/1000)
		time.Sleep(200 * time.Millisecond) // let the rebuilt bridge settle before the next round
	}
	w.r.add("9. bridge deleted -> container reachable again", "ms", lower, samples, nil,
		"target < 1000; before link events: up to --reconcile-interval (10 s); Docker's bridge: never")
	return nil
}

// reachable connects to addr until it answers, and says how long that took.
func reachable(addr string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		c, err := net.DialTimeout("tcp", addr, 50*time.Millisecond)
		if err == nil {
			c.Close()
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, err
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// 10. Multi-host (cluster networks over VXLAN): test/multihost's
// BenchmarkCrossHost, two hosts in namespaces with a real etcd, against a
// bare VXLAN pair between the same namespaces.
func (w *workloads) multiHost() error {
	res, err := w.goBench("./test/multihost", "BenchmarkCrossHost", "1x")
	if err != nil {
		return err
	}
	m := res.bench("BenchmarkCrossHost")
	if m.m == nil {
		return fmt.Errorf("BenchmarkCrossHost reported nothing")
	}
	// The benchmark's ratio is the median of per-round ratios (each round
	// runs both paths back to back); the ratio of the medians beside it.
	both := func(value, floor, perRound string, inverse bool) string {
		v, f := m.get(value), m.get(floor)
		of := v / f
		if inverse {
			of = f / v
		}
		return fmt.Sprintf("%s (floor %s; median of per-round ratios %.2fx, ratio of medians %.2fx)", num(v), num(f), m.get(perRound), of)
	}
	rounds := fmt.Sprintf("%d rounds", int(m.get("rounds")))
	w.r.addText("10. cross-host TCP throughput (floor: bare VXLAN pair)", "Gbit/s", higher,
		both("cross-Gbit/s", "floor-Gbit/s", "throughput-vs-floor", false), rounds+"; ratio mynet/floor; target >= 0.95x")
	w.r.addText("10. cross-host TCP round trip (floor: bare VXLAN pair)", "us", lower,
		both("cross-rtt-us", "floor-rtt-us", "rtt-floor-over-cross", true), rounds+"; ratio floor/mynet; target >= 0.95x")
	w.r.addText("10. the same, hosts with bridge-nf-call-iptables=0: throughput", "Gbit/s", higher,
		both("cross-Gbit/s-nf-off", "floor-Gbit/s-nf-off", "throughput-vs-floor-nf-off", false), rounds+"; bridged frames skip iptables (host-wide; see README, Performance)")
	w.r.addText("10. the same, hosts with bridge-nf-call-iptables=0: round trip", "us", lower,
		both("cross-rtt-us-nf-off", "floor-rtt-us-nf-off", "rtt-floor-over-cross-nf-off", true), rounds+"; ratio floor/mynet")
	w.r.addText("10. Join on one host -> first reply from another", "ms", lower,
		tails(m.get("join-first-reply-p50-ms"), m.get("join-first-reply-p99-ms"), int(m.get("join-samples"))), "target p99 < 100; includes moving and configuring the veth as dockerd does")
	w.r.addText("10. CreateEndpoint in a cluster network", "ms", lower,
		tails(m.get("create-endpoint-p50-ms"), m.get("create-endpoint-p99-ms"), int(m.get("create-samples"))), "target p99 < 10")
	return nil
}

// 11. Cluster scale: one real daemon on a network of 100 simulated hosts'
// endpoints in a real etcd, at 1k, 10k and 100k peers
// (test/multihost BenchmarkClusterScale).
func (w *workloads) clusterScale() error {
	res, err := w.goBench("./test/multihost", "BenchmarkClusterScale", "1x")
	if err != nil {
		return err
	}
	m := res.bench("BenchmarkClusterScale")
	if m.m == nil {
		return fmt.Errorf("BenchmarkClusterScale reported nothing")
	}
	for _, size := range []string{"1k", "10k", "100k"} {
		if !m.has("startup-s-" + size) { // sizes the run skipped
			continue
		}
		events := int(m.get("events-" + size))
		w.r.addText("11. "+size+" peers: start-up to every peer listed and programmed (the daemon's own list and program)", "s", lower,
			fmt.Sprintf("%s (%s)", num(m.get("startup-s-"+size)), num(m.get("startup-sync-s-"+size))),
			fmt.Sprintf("%.0f%% of the entries new to the kernel; target at 100k: < 10", m.get("new-share-"+size)*100))
		w.r.addText("11. "+size+" peers: restart, every entry in place", "s", lower, num(m.get("restart-s-"+size)), "")
		w.r.addText("11. "+size+" peers: a watched change that publishes a peer", "us", flat,
			tails(m.get("publish-p50-us-"+size), m.get("publish-p99-us-"+size), events),
			"from the watch's delivery to the kernel's entry; one etcd read (the record's claim and host); target p99 < 2000 at every size")
		w.r.addText("11. "+size+" peers: a watched change that withdraws a peer", "us", flat,
			tails(m.get("withdraw-p50-us-"+size), m.get("withdraw-p99-us-"+size), events),
			"no claim to check, one etcd read (the epoch at the deletion's revision: removed by a user or lost with etcd's data); the save to disk is batched (100 ms) and in neither row")
		w.r.addText("11. "+size+" peers: daemon memory, resident / peak of the first start-up / peak of the restart", "MiB", lower,
			num(m.get("rss-MiB-"+size))+" / "+num(m.get("first-peak-rss-MiB-"+size))+" / "+num(m.get("peak-rss-MiB-"+size)), "target < 200")
	}
	w.r.addText("11. etcd requests per RequestAddress / per CreateEndpoint", "requests", lower,
		num(m.get("etcd-requests-per-request-address"))+" / "+num(m.get("etcd-requests-per-create-endpoint")), "etcd's own count of unary calls, 30 of each at the largest size")
	return nil
}

// 13. Encrypted cluster networks: test/multihost's BenchmarkEncrypted, a
// plain and an encrypted network between the same two host namespaces, in
// alternating rounds (WireGuard in userspace where the kernel has none).
func (w *workloads) encrypted() error {
	res, err := w.goBench("./test/multihost", "BenchmarkEncrypted", "1x")
	if err != nil {
		return err
	}
	m := res.bench("BenchmarkEncrypted")
	if m.m == nil {
		return fmt.Errorf("BenchmarkEncrypted reported nothing")
	}
	rounds := fmt.Sprintf("median of %d rounds, order rotated", int(m.get("rounds")))
	w.r.addText("13. encrypted vs plain cluster network: TCP throughput", "Gbit/s", higher,
		fmt.Sprintf("%s (plain %s; median of per-round ratios %.3fx)", num(m.get("encrypted-Gbit/s")), num(m.get("plain-Gbit/s")), m.get("encrypted-over-plain-throughput")),
		rounds+"; target >= 0.5x with kernel WireGuard (this machine: userspace)")
	w.r.addText("13. encrypted vs plain cluster network: TCP round trip", "us", lower,
		fmt.Sprintf("%s (plain %s; median of per-round ratios %.2fx)", num(m.get("encrypted-rtt-us")), num(m.get("plain-rtt-us")), m.get("encrypted-over-plain-rtt")),
		rounds+"; target <= 1.2x with kernel WireGuard")
	w.r.addText("13. the bare tunnel, host to host over WireGuard alone: throughput / round trip", "Gbit/s / us", count,
		num(m.get("tunnel-Gbit/s"))+" / "+num(m.get("tunnel-rtt-us")), "what WireGuard itself carries here (no VXLAN, no bridge)")
	return nil
}
