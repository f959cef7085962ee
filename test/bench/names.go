package main

import "fmt"

// 12. Names across hosts, on two real Engine 29 hosts with their own
// mynets and a real etcd (test/e2e/twohosts BenchmarkNames).
func (w *workloads) namesAcrossHosts() error {
	res, err := w.goBench("./test/e2e/twohosts", "BenchmarkNames", "1x")
	if err != nil {
		return err
	}
	m := res.bench("BenchmarkNames")
	if m.m == nil {
		return fmt.Errorf("BenchmarkNames reported nothing")
	}
	questions := int(m.get("questions"))
	w.r.addText("12. a container's name resolving on another host after its docker run returned", "ms", lower,
		tails(m.get("visible-p50-ms"), m.get("visible-p99-ms"), int(m.get("visible-samples"))), "asked from a container there every millisecond")
	w.r.addText("12. a name of the same host, through mynet (passed to Docker's resolver)", "us", lower,
		tails(m.get("mynet-p50-us"), m.get("mynet-p99-us"), questions),
		fmt.Sprintf("Docker's resolver alone, the same questions alternated ABBA (a socket marked past mynet's redirect): %s; +%s at p50",
			tails(m.get("docker-p50-us"), m.get("docker-p99-us"), questions), num(m.get("extra-p50-us"))))
	w.r.addText("12. a name of another host's container, answered by mynet (after Docker's NXDOMAIN)", "us", lower,
		tails(m.get("answered-p50-us"), m.get("answered-p99-us"), questions), "a new socket per question, as a resolver uses")
	w.r.addText("12. the same two questions while 50 mynet networks are created and removed on that host", "us", lower,
		fmt.Sprintf("answered %s; passed to Docker %s", tails(m.get("churn-answered-p50-us"), m.get("churn-answered-p99-us"), int(m.get("churn-questions"))),
			tails(m.get("churn-passed-p50-us"), m.get("churn-passed-p99-us"), int(m.get("churn-questions")))), "")
	idx, err := w.goBench("./internal/clusternet", "BenchmarkResolveName", "200000x")
	if err != nil {
		return err
	}
	w.r.addText("12. one question in mynet's name index, at 1k / 5k local endpoints and peers", "ns", lower,
		num(idx.bench("BenchmarkResolveName/endpoints=1000").get("ns/question"))+" / "+num(idx.bench("BenchmarkResolveName/endpoints=5000").get("ns/question")), "mean of 200000; a map lookup under the index's own lock")
	return nil
}

// 14. IPv6 across hosts: test/multihost's BenchmarkIPv6, one dual-stack
// cluster network between two host namespaces, to the same container's
// IPv4 and IPv6 address in alternating rounds.
func (w *workloads) ipv6AcrossHosts() error {
	res, err := w.goBench("./test/multihost", "BenchmarkIPv6", "1x")
	if err != nil {
		return err
	}
	m := res.bench("BenchmarkIPv6")
	if m.m == nil {
		return fmt.Errorf("BenchmarkIPv6 reported nothing")
	}
	rounds := fmt.Sprintf("median of %d rounds, each family first as often", int(m.get("rounds")))
	w.r.addText("14. IPv6 vs IPv4 across hosts, one dual-stack cluster network: TCP throughput", "Gbit/s", higher,
		fmt.Sprintf("%s (IPv4 %s; median of per-round ratios %.3fx)", num(m.get("ipv6-Gbit/s")), num(m.get("ipv4-Gbit/s")), m.get("ipv6-over-ipv4-throughput")), rounds)
	w.r.addText("14. IPv6 vs IPv4 across hosts, one dual-stack cluster network: TCP round trip", "us", lower,
		fmt.Sprintf("%s (IPv4 %s; median of per-round ratios %.2fx)", num(m.get("ipv6-rtt-us")), num(m.get("ipv4-rtt-us")), m.get("ipv6-over-ipv4-rtt")), rounds)
	return nil
}
