package main

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/mynet/mynet/internal/netutil"
)

type workloads struct {
	o         options
	r         *report
	daemonPid int
	links     *netutil.Links // the kernel's view, for what is left after a removal
	// missing are the Go benchmarks' metrics a workload asked for and
	// did not get (goBench): the workload fails with them.
	missing []string
}

// drivers are compared in this order in every round.
var drivers = []string{"bridge", driver}

func netName(drv, suffix string) string {
	switch drv {
	case "bridge":
		return prefix + "b-" + suffix
	case floor:
		return prefix + "f-" + suffix
	}
	return prefix + "m-" + suffix
}

// subnet gives each driver's networks their own range: bridge 10.240+,
// mynet 10.248+, the floor driver 10.232+.
func subnet(drv string, i int) string {
	base := 248
	switch drv {
	case "bridge":
		base = 240
	case floor:
		base = 232
	}
	return fmt.Sprintf("10.%d.%d.0/24", base+i/256, i%256)
}

// 1. docker network create and rm latency; rm until it returns and until
// the kernel has no bridge of the network left.
func (w *workloads) networkLatency() error {
	create, rm, rmKernel := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for i := range w.o.rounds {
		for _, d := range orderOf(i, withFloor()) {
			n := netName(d, "lat")
			c, id, err := timedOut("network", "create", "-d", d, "--subnet", subnet(d, i), n)
			if err != nil {
				return err
			}
			start := time.Now()
			if _, err := docker("network", "rm", n); err != nil {
				return err
			}
			r := msSince(start)
			k, err := linkGone(w.links, bridgeOf(d, id), start)
			if err != nil {
				return err
			}
			create[d], rm[d], rmKernel[d] = append(create[d], c), append(rm[d], r), append(rmKernel[d], k)
		}
	}
	w.r.add("1. docker network create", "ms", lower, create[driver], create["bridge"], "target: ratio <= 0.5")
	w.r.add("1. docker network rm, until it returns", "ms", lower, rm[driver], rm["bridge"], "target: ratio <= 0.5")
	w.r.add("1. docker network rm, until the kernel has no bridge of it", "ms", lower, rmKernel[driver], rmKernel["bridge"], "mynet deletes its bridge after it replies")
	w.r.add("1. create, the remote API's floor (in mynet's column)", "ms", lower, create[floor], create["bridge"],
		"a remote driver that only makes a bridge (test/bench/floor.go): the fastest create any remote driver gets on this engine")
	return nil
}

// withFloor is the drivers and the floor driver (floor.go), the remote
// API's fastest, measured in the same rounds.
func withFloor() []string { return append(slices.Clone(drivers), floor) }

// 2. Attach cost: docker run --rm true on a network minus the same on none,
// and the start (run -d) and rm -f phases, rm -f until it returns and
// until the network's bridge has no port left.
func (w *workloads) attachCost() error {
	bridges := map[string]string{}
	for _, d := range drivers {
		id, err := docker("network", "create", "-d", d, "--subnet", subnet(d, 1), netName(d, "att"))
		if err != nil {
			return err
		}
		bridges[d] = bridgeOf(d, id)
	}
	run, none, start, rmf, rmKernel := map[string][]float64{}, []float64{}, map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for i := range w.o.rounds {
		x, err := timed("run", "--rm", "--network", "none", toolImage, "true")
		if err != nil {
			return err
		}
		none = append(none, x)
		for _, d := range order(i) {
			x, err := timed("run", "--rm", "--network", netName(d, "att"), toolImage, "true")
			if err != nil {
				return err
			}
			run[d] = append(run[d], x)
			c := prefix + "att"
			s, err := timed("run", "-d", "--name", c, "--network", netName(d, "att"), toolImage, "sleep", "600")
			if err != nil {
				return err
			}
			began := time.Now()
			if _, err := docker("rm", "-f", c); err != nil {
				return err
			}
			r := msSince(began)
			k, err := portsGone(w.links, bridges[d], began)
			if err != nil {
				return err
			}
			start[d], rmf[d], rmKernel[d] = append(start[d], s), append(rmf[d], r), append(rmKernel[d], k)
		}
	}
	minus := func(v []float64, base float64) []float64 {
		out := make([]float64, len(v))
		for i := range v {
			out[i] = v[i] - base
		}
		return out
	}
	w.r.add("2. attach cost: docker run --rm true minus --network none", "ms", lower,
		minus(run[driver], median(none)), minus(run["bridge"], median(none)), fmt.Sprintf("none: %s ms; target: ratio <= 1.0", stat(none)))
	w.r.add("2. docker run -d (start phase)", "ms", lower, start[driver], start["bridge"], "")
	w.r.add("2. docker rm -f (removal phase), until it returns", "ms", lower, rmf[driver], rmf["bridge"], "")
	w.r.add("2. docker rm -f, until the network's bridge has no port left", "ms", lower, rmKernel[driver], rmKernel["bridge"], "mynet deletes the veth after it replies")
	for _, d := range drivers {
		if _, err := docker("network", "rm", netName(d, "att")); err != nil {
			return err
		}
	}
	return nil
}

// 3. docker network connect / disconnect on a running container.
func (w *workloads) connectDisconnect() error {
	c := prefix + "conn"
	if _, err := docker("run", "-d", "--name", c, toolImage, "sleep", "3600"); err != nil {
		return err
	}
	defer docker("rm", "-f", c)
	// The floor driver (floor.go) in the same rounds: what any remote
	// driver's connect costs on this engine.
	three := withFloor()
	for _, d := range three {
		if _, err := docker("network", "create", "-d", d, "--subnet", subnet(d, 2), netName(d, "conn")); err != nil {
			return err
		}
	}
	con, dis := map[string][]float64{}, map[string][]float64{}
	for i := range w.o.rounds {
		for _, d := range orderOf(i, three) {
			x, err := timed("network", "connect", netName(d, "conn"), c)
			if err != nil {
				return err
			}
			y, err := timed("network", "disconnect", netName(d, "conn"), c)
			if err != nil {
				return err
			}
			con[d], dis[d] = append(con[d], x), append(dis[d], y)
		}
	}
	w.r.add("3. docker network connect", "ms", lower, con[driver], con["bridge"],
		"target: ratio <= 1.0; dockerd moves a remote driver's veth end into the container (workload 7's kernel rows), Engine 29's bridge makes it there")
	w.r.add("3. docker network disconnect", "ms", lower, dis[driver], dis["bridge"], "target: ratio <= 1.0")
	w.r.add("3. connect, the remote API's floor (in mynet's column)", "ms", lower, con[floor], con["bridge"],
		"a remote driver that only makes a bridge and a veth, no state or firewall (test/bench/floor.go): the fastest connect any remote driver gets on this engine")
	w.r.add("3. disconnect, the remote API's floor (in mynet's column)", "ms", lower, dis[floor], dis["bridge"], "the same driver")
	for _, d := range three {
		if _, err := docker("network", "rm", netName(d, "conn")); err != nil {
			return err
		}
	}
	return nil
}

// 4. Many containers on one network per driver: start and removal of the
// first and the last 50, for cost that must not grow with endpoints; the
// drivers alternate per container.
func (w *workloads) manyContainers() error {
	n := w.o.containers
	q := min(50, n/2)
	starts, rms := map[string][]float64{}, map[string][]float64{}
	for _, d := range drivers {
		if _, err := docker("network", "create", "-d", d, "--subnet", fmt.Sprintf("10.%d.0.0/16", map[bool]int{true: 236, false: 237}[d == "bridge"]), netName(d, "many")); err != nil {
			return err
		}
	}
	name := func(d string, i int) string { return fmt.Sprintf("%smany-%s-%d", prefix, d, i) }
	for i := range n {
		for _, d := range order(i) {
			x, err := timed("run", "-d", "--name", name(d, i), "--network", netName(d, "many"), toolImage, "sleep", "3600")
			if err != nil {
				return err
			}
			starts[d] = append(starts[d], x)
		}
	}
	for i := range n {
		for _, d := range order(i) {
			x, err := timed("rm", "-f", name(d, i))
			if err != nil {
				return err
			}
			rms[d] = append(rms[d], x)
		}
	}
	for _, d := range drivers {
		if _, err := docker("network", "rm", netName(d, "many")); err != nil {
			return err
		}
	}
	w.r.add(fmt.Sprintf("4. start of the first %d of %d containers", q, n), "ms", lower, starts[driver][:q], starts["bridge"][:q], "")
	w.r.add(fmt.Sprintf("4. start of the last %d of %d containers", q, n), "ms", flat, starts[driver][n-q:], starts["bridge"][n-q:], "target: as the first")
	w.r.add(fmt.Sprintf("4. removal of the first %d containers, until rm -f returns", q), "ms", lower, rms[driver][:q], rms["bridge"][:q], "")
	w.r.add(fmt.Sprintf("4. removal of the last %d containers, until rm -f returns", q), "ms", flat, rms[driver][n-q:], rms["bridge"][n-q:], "target: as the first")
	return nil
}

// 5. Many networks: create latency as N grows (the drivers alternating per
// network), iptables lines per network, and the data plane of the first
// network, alone and with the others present: the same pair of
// containers, the same number of samples each.
func (w *workloads) manyNetworks() error {
	n := w.o.networks
	lines := func() int {
		out, _ := exec.Command("iptables-save").Output()
		return strings.Count(string(out), "\n-A ")
	}
	const samples = 8
	dataPlane := func(tput, rtt map[string][]float64) error {
		for i := range samples {
			for _, d := range order(i) {
				t, r, err := w.pair(netName(d, "n0"))
				if err != nil {
					return err
				}
				tput[d], rtt[d] = append(tput[d], t), append(rtt[d], r)
			}
		}
		return nil
	}
	create := map[string][]float64{}
	add := func(d string, i int) error {
		x, err := timed("network", "create", "-d", d, "--subnet", subnet(d, 10+i), netName(d, fmt.Sprintf("n%d", i)))
		create[d] = append(create[d], x)
		return err
	}
	for _, d := range drivers {
		if err := add(d, 0); err != nil {
			return err
		}
	}
	tput1, rtt1 := map[string][]float64{}, map[string][]float64{}
	if err := dataPlane(tput1, rtt1); err != nil {
		return err
	}
	for i := 1; i < n; i++ {
		for _, d := range order(i) {
			if err := add(d, i); err != nil {
				return err
			}
		}
	}
	// Rules: ten more networks of one driver at a time, all the others
	// present (a count: no drift to alternate against).
	perNet := map[string][]float64{}
	for _, d := range drivers {
		start := lines()
		for i := n; i < n+10; i++ {
			if err := add(d, i); err != nil {
				return err
			}
		}
		perNet[d] = []float64{float64(lines()-start) / 10}
		create[d] = create[d][:n]
	}
	q := min(20, n/2)
	w.r.add(fmt.Sprintf("5. network create, the first %d of %d", q, n), "ms", lower, create[driver][:q], create["bridge"][:q], "")
	w.r.add(fmt.Sprintf("5. network create, the last %d of %d", q, n), "ms", flat, create[driver][n-q:], create["bridge"][n-q:], "target: as the first")
	w.r.add("5. iptables rules per network", "rules", lower, perNet[driver], perNet["bridge"], fmt.Sprintf("10 more networks with %d present", n))
	tputN, rttN := map[string][]float64{}, map[string][]float64{}
	if err := dataPlane(tputN, rttN); err != nil {
		return err
	}
	w.r.add("5. TCP throughput on the first network, alone", "Gbit/s", higher, tput1[driver], tput1["bridge"], "")
	w.r.add(fmt.Sprintf("5. TCP throughput on the first network, with %d", n), "Gbit/s", higher, tputN[driver], tputN["bridge"],
		fmt.Sprintf("mynet %s of alone; target: within 5%%", pct(median(tputN[driver]), median(tput1[driver]))))
	w.r.add("5. round trip on the first network, alone", "us", lower, rtt1[driver], rtt1["bridge"], "")
	w.r.add(fmt.Sprintf("5. round trip on the first network, with %d", n), "us", lower, rttN[driver], rttN["bridge"],
		fmt.Sprintf("mynet %s of alone; target: within 5%%", pct(median(rttN[driver]), median(rtt1[driver]))))
	for _, d := range drivers {
		for i := range n + 10 {
			if _, err := docker("network", "rm", netName(d, fmt.Sprintf("n%d", i))); err != nil {
				return err
			}
		}
	}
	return nil
}

// pct renders how far got is from base, signed: "+3.1 %".
func pct(got, base float64) string {
	if base == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f %%", (got/base-1)*100)
}

// 7. Plugin-side cost without dockerd, and the kernel floor.
func (w *workloads) pluginSide() error {
	res, err := w.goBench("./test/integration", "BenchmarkPluginAttach", "300x")
	if err != nil {
		return err
	}
	m := res.bench("BenchmarkPluginAttach")
	n := int(m.get("samples"))
	for _, c := range []string{"CreateEndpoint", "Join", "Leave", "DeleteEndpoint", "attach"} {
		w.r.addText("7. plugin-side "+c, "ms", lower, tails(m.get(c+"-p50-ms"), m.get(c+"-p99-ms"), n),
			map[bool]string{true: "CreateEndpoint+Join; target: p99 < 5 ms", false: ""}[c == "attach"])
	}
	w.r.addText("7. daemon CPU per attach+detach", "us", lower, num(m.get("cpu-us/attach+detach")), fmt.Sprintf("mean of %d", n))
	w.r.addText("7. plugin-side CreateEndpoint with no veth removal running meanwhile", "ms", lower,
		tails(m.get("CreateEndpoint-alone-p50-ms"), m.get("CreateEndpoint-alone-p99-ms"), int(m.get("alone-samples"))), "in a row, deleted after")
	floorN := fmt.Sprintf("p50 of %d", int(m.get("floor-samples")))
	w.r.addText("7. kernel floor: veth pair on a bridge, created and deleted", "ms", lower, num(m.get("kernel-floor-p50-ms")), floorN)
	w.r.addText("7. kernel: a veth's end moved into a container's namespace / made there at once", "ms", lower,
		num(m.get("kernel-veth-move-p50-ms"))+" / "+num(m.get("kernel-veth-add-in-netns-p50-ms")),
		fmt.Sprintf("p50 of %d each; dockerd moves a remote driver's interface at Join, Engine 29's bridge makes its end in the namespace (workload 3)", int(m.get("move-samples"))))
	w.r.addText("7. kernel floor: veth pair created (on the bridge, up); deleted", "ms", lower,
		num(m.get("kernel-veth-add-p50-ms"))+" (p99 "+num(m.get("kernel-veth-add-p99-ms"))+"); "+num(m.get("kernel-veth-del-p50-ms")), floorN)
	return nil
}

// 8. IPAM latency in /24, /16 and /8 pools, and a full pool's footprint.
func (w *workloads) ipam() error {
	const requests = 500
	res, err := w.goBench("./ipam", "BenchmarkRequestReleaseAddress", fmt.Sprintf("%dx", requests))
	if err != nil {
		return err
	}
	foot, err := w.goBench("./ipam", "BenchmarkPoolFootprint", "1x") // filling a /8 takes a while
	if err != nil {
		return err
	}
	for _, size := range []string{"24", "16", "8"} {
		for _, fill := range []string{"0", "50", "99"} {
			m := res.bench(fmt.Sprintf("BenchmarkRequestReleaseAddress/slash%s/full%s", size, fill))
			note := ""
			if size == "8" && fill == "99" {
				note = "target: p99 < 1000 us"
			}
			w.r.addText(fmt.Sprintf("8. RequestAddress in a /%s, %s%% full (durable)", size, fill), "us", lower,
				tails(m.get("request-p50-us"), m.get("request-p99-us"), requests), note)
		}
		f := foot.bench(fmt.Sprintf("BenchmarkPoolFootprint/slash%s/full100", size))
		w.r.addText(fmt.Sprintf("8. a full /%s pool: heap / state file", size), "MiB", lower, num(f.get("heap-MiB/pool"))+" / "+num(f.get("file-MiB")),
			map[bool]string{true: "target: a few MiB", false: ""}[size == "8"])
	}
	return nil
}
