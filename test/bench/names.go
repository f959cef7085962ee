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
	w.r.addText("12. a name of another host's container, answered by mynet, p50 / p99 of 500", "us",
		num(m["answered-p50-us"])+" / "+num(m["answered-p99-us"]), "")
	return nil
}
