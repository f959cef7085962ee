package integration

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/mynet/mynet/internal/netutil"
)

// BenchmarkPluginAttach plays dockerd attaching and detaching a container
// (CreateEndpoint, Join, Leave, DeleteEndpoint) against a live daemon over
// its socket, and reports p50/p99 of each call, the daemon's CPU per
// attach+detach, and the kernel floor: a bare veth pair attached to a bridge
// and deleted again, through the same netlink code, in this process.
func BenchmarkPluginAttach(b *testing.B) {
	d := newDaemon(b)
	d.start()
	d.call("/NetworkDriver.CreateNetwork", map[string]any{"NetworkID": crashNet,
		"IPv4Data": []map[string]any{{"Pool": "10.80.0.0/16", "Gateway": "10.80.0.1/16"}}})
	calls := []string{"CreateEndpoint", "Join", "Leave", "DeleteEndpoint"}
	lat := map[string][]time.Duration{}
	cpu0 := cpuTicks(b, d.cmd.Process.Pid)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		ep := fmt.Sprintf("%012x%052d", i, 0)
		addr := fmt.Sprintf("10.80.%d.%d/16", 1+i/250, 1+i%250)
		i++
		bodies := []map[string]any{
			{"NetworkID": crashNet, "EndpointID": ep, "Interface": map[string]string{"Address": addr}},
			{"NetworkID": crashNet, "EndpointID": ep, "SandboxKey": "/x"},
			{"NetworkID": crashNet, "EndpointID": ep},
			{"NetworkID": crashNet, "EndpointID": ep},
		}
		for j, c := range calls {
			start := time.Now()
			d.call("/NetworkDriver."+c, bodies[j])
			lat[c] = append(lat[c], time.Since(start))
		}
	}
	b.StopTimer()
	ticks := cpuTicks(b, d.cmd.Process.Pid) - cpu0
	var attach []time.Duration
	for k := range lat["Join"] {
		attach = append(attach, lat["CreateEndpoint"][k]+lat["Join"][k])
	}
	for _, c := range calls {
		b.ReportMetric(ms(pct(lat[c], 50)), c+"-p50-ms")
		b.ReportMetric(ms(pct(lat[c], 99)), c+"-p99-ms")
	}
	b.ReportMetric(ms(pct(attach, 50)), "attach-p50-ms")
	b.ReportMetric(ms(pct(attach, 99)), "attach-p99-ms")
	b.ReportMetric(float64(ticks)*1e6/100/float64(i), "cpu-us/attach+detach")
	b.ReportMetric(float64(len(attach)), "samples")

	// Where CreateEndpoint's time goes: the same creates in a row, with
	// the deletes after them, so that no veth removal (which holds the
	// kernel's RTNL lock for milliseconds, in the background) is running
	// while a create waits for that lock.
	links, err := netutil.New()
	if err != nil {
		b.Fatal(err)
	}
	defer links.Close()
	// The loop's own removals first.
	for {
		if left, err := links.ListLinkNames("mnh"); err != nil || len(left) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var alone []time.Duration
	var made []string
	for k := range min(i, 100) {
		ep := fmt.Sprintf("a%011x%052d", k, 0)
		start := time.Now()
		d.call("/NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": crashNet, "EndpointID": ep,
			"Interface": map[string]string{"Address": fmt.Sprintf("10.80.200.%d/16", 1+k)}})
		alone = append(alone, time.Since(start))
		made = append(made, ep)
	}
	for _, ep := range made {
		d.call("/NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": crashNet, "EndpointID": ep})
	}
	b.ReportMetric(ms(pct(alone, 50)), "CreateEndpoint-alone-p50-ms")
	b.ReportMetric(ms(pct(alone, 99)), "CreateEndpoint-alone-p99-ms")
	b.ReportMetric(float64(len(alone)), "alone-samples")

	// The floor: what the kernel needs for the same veth work.
	if _, err := links.EnsureBridge(netutil.BridgeConfig{Name: "tbrfloor"}); err != nil {
		b.Fatal(err)
	}
	defer links.DeleteLink("tbrfloor")
	var floor, add, del []time.Duration
	for range min(i, 200) {
		start := time.Now()
		if err := links.AddVeth(netutil.VethConfig{HostName: "tvfh", PeerName: "tvfc", Bridge: "tbrfloor", Hairpin: true}); err != nil {
			b.Fatal(err)
		}
		added := time.Now()
		if err := links.DeleteLink("tvfh"); err != nil {
			b.Fatal(err)
		}
		floor, add, del = append(floor, time.Since(start)), append(add, added.Sub(start)), append(del, time.Since(added))
	}
	// What dockerd does with a remote driver's interface at Join: moves
	// its end into the container's namespace (osl AddInterface). Engine
	// 29's bridge creates that end in the namespace instead (the
	// in-process driver API's SetCreatedInContainer, which the remote API
	// lacks): the two, on the same kernel.
	move, inNS := vethMoveFloor(b, links, min(i, 50))
	b.ReportMetric(ms(pct(move, 50)), "kernel-veth-move-p50-ms")
	b.ReportMetric(float64(len(move)), "move-samples")
	b.ReportMetric(float64(len(floor)), "floor-samples")
	b.ReportMetric(ms(pct(inNS, 50)), "kernel-veth-add-in-netns-p50-ms")
	b.ReportMetric(ms(pct(floor, 50)), "kernel-floor-p50-ms")
	b.ReportMetric(ms(pct(add, 50)), "kernel-veth-add-p50-ms")
	b.ReportMetric(ms(pct(add, 99)), "kernel-veth-add-p99-ms")
	b.ReportMetric(ms(pct(del, 50)), "kernel-veth-del-p50-ms")
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuTicks is a process's user+system time in clock ticks (1/100 s).
func cpuTicks(tb testing.TB, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// vethMoveFloor times n moves of a veth's end (made on a bridge, as
// CreateEndpoint makes it) into a namespace of the benchmark's, and n
// creations of a veth whose end is made in that namespace at once.
func vethMoveFloor(b *testing.B, links *netutil.Links, n int) (move, inNS []time.Duration) {
	const ns = "mynet-bench-mv"
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	fd, err := netns.GetFromName(ns)
	if err != nil {
		b.Fatal(err)
	}
	defer fd.Close()
	for range n {
		if err := links.AddVeth(netutil.VethConfig{HostName: "tvmh", PeerName: "tvmc", Bridge: "tbrfloor", Hairpin: true}); err != nil {
			b.Fatal(err)
		}
		peer, err := netlink.LinkByName("tvmc")
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := netlink.LinkSetNsFd(peer, int(fd)); err != nil {
			b.Fatal(err)
		}
		move = append(move, time.Since(start))
		if err := links.DeleteLink("tvmh"); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "tvmh"}, PeerName: "tvmc", PeerNamespace: netlink.NsFd(int(fd))}); err != nil {
			b.Fatal(err)
		}
		inNS = append(inNS, time.Since(start))
		if err := links.DeleteLink("tvmh"); err != nil {
			b.Fatal(err)
		}
	}
	return move, inNS
}
