package main

import "fmt"

// 12. Names across hosts, on two real Engine 29 hosts with their own
// mynets and a real etcd (test/e2e/twohosts BenchmarkNames).
func (w *workloads) namesAcrossHosts() error {
	res, err := goBench("./test/e2e/twohosts", "BenchmarkNames", "1x")
	if err != nil {
		return err
	}
	m := res["BenchmarkNames"]
	if m == nil {
		return fmt.Errorf("BenchmarkNames reported nothing")
	}
	w.r.addText("12. a container's name resolving on another host after its docker run returned, p50 / p99 of 30", "ms",
		num(m["visible-p50-ms"])+" / "+num(m["visible-p99-ms"]), "asked from a container there every millisecond")
	w.r.addText("12. a question mynet passes to Docker's resolver (a name of the same host), p50 / p99 of 500", "us",
		fmt.Sprintf("%s / %s (Docker's alone %s / %s; +%s at p50)", num(m["mynet-p50-us"]), num(m["mynet-p99-us"]),
			num(m["docker-p50-us"]), num(m["docker-p99-us"]), num(m["extra-p50-us"])), "Docker's alone: the same question, mynet stopped")
	w.r.addText("12. a name of another host's container, answered by mynet (after Docker's NXDOMAIN), p50 / p99 of 500", "us",
		num(m["answered-p50-us"])+" / "+num(m["answered-p99-us"]), "")
	w.r.addText("12. the same two questions while 50 mynet networks are created and removed on that host, p50 / p99", "us",
		fmt.Sprintf("answered %s / %s; passed to Docker %s / %s (%s questions each)", num(m["churn-answered-p50-us"]), num(m["churn-answered-p99-us"]),
			num(m["churn-passed-p50-us"]), num(m["churn-passed-p99-us"]), num(m["churn-questions"])), "")
	idx, err := goBench("./internal/clusternet", "BenchmarkResolveName", "200000x")
	if err != nil {
		return err
	}
	w.r.addText("12. one question in mynet's name index, at 1k / 5k local endpoints and peers", "ns",
		num(idx["BenchmarkResolveName/endpoints=1000"]["ns/question"])+" / "+num(idx["BenchmarkResolveName/endpoints=5000"]["ns/question"]), "a map lookup under the index's own lock")
	return nil
}
