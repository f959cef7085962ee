package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// capture runs tcpdump in a container's network namespace on eth0 until
// stop is called, which returns the lines it printed (-tt: each starts
// with the time in seconds).
func capture(t *testing.T, ctr, filter string) (stop func() []string) {
	t.Helper()
	pid := docker(t, "inspect", "-f", "{{.State.Pid}}", ctr)
	var out bytes.Buffer
	cmd := exec.Command("nsenter", "-t", pid, "-n", "tcpdump", "-i", "eth0", "-n", "-l", "-tt", filter)
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump in %s: %v", ctr, err)
	}
	// tcpdump says "listening on eth0" once it captures.
	listening := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			if !said && strings.Contains(sc.Text(), "listening on") {
				said = true
				listening <- true
			}
		}
		if !said {
			listening <- false
		}
	}()
	select {
	case ok := <-listening:
		if !ok {
			t.Fatalf("tcpdump in %s ended before it listened", ctr)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("tcpdump in %s did not start listening", ctr)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return func() []string {
		stopped = true
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		return strings.Split(strings.TrimSpace(out.String()), "\n")
	}
}

// advertView is what a neighbour sees of a new container's addresses
// after it starts: gratuitous ARPs for its IPv4 address, unsolicited
// neighbour advertisements for its IPv6 address, and whether the gaps
// between the ARPs are the option's interval.
type advertView struct {
	ARP, NA   int
	GapsAsSet bool
}

// advertisements counts, in captured tcpdump lines, the ARPs that announce
// ip4 and the neighbour advertisements for ip6, and checks that the ARPs
// come every want (within 40%). Only the new container's: the watcher's own
// advertisements, still under way when it has just started, interleave
// with them (counted together they look like extra messages at half the
// interval).
func advertisements(lines []string, ip4, ip6 string, want time.Duration) (advertView, []float64) {
	var v advertView
	var at []float64
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		ts, _ := strconv.ParseFloat(f[0], 64)
		switch {
		case strings.Contains(l, "ARP") && (strings.Contains(l, "who-has "+ip4+" tell "+ip4) || strings.Contains(l, "Reply "+ip4+" is-at")):
			v.ARP++
			at = append(at, ts)
		case strings.Contains(l, "neighbor advertisement") && strings.Contains(l, "tgt is "+ip6+","):
			v.NA++
		}
	}
	v.GapsAsSet = true
	for i := 1; i < len(at); i++ {
		gap := time.Duration((at[i] - at[i-1]) * float64(time.Second))
		if gap < want*6/10 || gap > want*14/10 {
			v.GapsAsSet = false
		}
	}
	return v, at
}

// The engine (28 and later) sends com.docker.network.advertise_addr_nmsgs
// gratuitous ARPs and unsolicited neighbour advertisements,
// advertise_addr_ms apart, when a container joins; a neighbour sees exactly
// those, on Docker's bridge and on mynet alike (0: none).
func TestParityAdvertisementsFollowTheOptions(t *testing.T) {
	if engineMajor(t) < 28 {
		// 20.10 has neither the options nor the advertisements: mynet adds
		// none (TestParityAddressAdvertisedAfterJoin shows a silent
		// neighbour does not follow a moved address there).
		t.Logf("%s sends no advertisements for any driver", engine.name)
	}
	cases := []struct{ nmsgs, ms int }{{3, 1000}, {1, 1000}, {3, 100}, {0, 1000}}
	if engineMajor(t) < 28 {
		cases = cases[:1]
	}
	drivers := modeDrivers(t)
	for ci, c := range cases {
		want := advertView{ARP: c.nmsgs, NA: c.nmsgs, GapsAsSet: true}
		if engineMajor(t) < 28 {
			want = advertView{GapsAsSet: true}
		}
		got := map[string]advertView{}
		for di, drv := range drivers {
			k := 4*ci + di
			n := fmt.Sprintf("%sadvn-%d", prefix, k)
			createNetwork(t, n, "-d", drv, "--ipv6", "--subnet", fmt.Sprintf("10.241.%d.0/24", k), "--subnet", fmt.Sprintf("fd00:241:%d::/64", k),
				"-o", fmt.Sprintf("com.docker.network.advertise_addr_nmsgs=%d", c.nmsgs), "-o", fmt.Sprintf("com.docker.network.advertise_addr_ms=%d", c.ms))
			watcher, joiner := n+"-watch", n+"-join"
			runContainer(t, watcher, n, "sleep", "600")
			// As tcpdump prints them (fd00:241:0::10 is fd00:241::10).
			ip4, ip6 := fmt.Sprintf("10.241.%d.10", k), netip.MustParseAddr(fmt.Sprintf("fd00:241:%d::10", k)).String()
			stop := capture(t, watcher, "arp or (icmp6 and ip6[40] == 136)")
			docker(t, "run", "-d", "--name", joiner, "--network", n, "--ip", ip4, "--ip6", ip6, image, "sleep", "600")
			t.Cleanup(func() { _, _ = tryDocker("rm", "-f", joiner) })
			// The engine sends the first before docker run returns and the
			// rest in the background, the last (nmsgs-1) intervals after the
			// first. Nothing marks "no more will come", so the capture runs
			// two intervals and a second past that: an extra message a
			// driver or the kernel adds is seen within it.
			time.Sleep(time.Duration(max(c.nmsgs-1, 0)*c.ms+2*c.ms)*time.Millisecond + time.Second)
			lines := stop()
			v, at := advertisements(lines, ip4, ip6, time.Duration(c.ms)*time.Millisecond)
			got[drv] = v
			t.Logf("%s, nmsgs=%d ms=%d: %+v, ARPs at %v\n%s", drv, c.nmsgs, c.ms, v, relative(at), strings.Join(lines, "\n"))
		}
		// Docker's own bridge is the reference for what is sent; when
		// and how far apart its goroutine sends it on a loaded 2-core
		// machine is its own (once, in CI, its second ARP came 300 ms
		// late): a drift of its gaps alone is logged, mynet's fails.
		if v, ok := got["bridge"]; ok && !v.GapsAsSet && v.ARP == want.ARP && v.NA == want.NA {
			t.Logf("nmsgs=%d ms=%d: Docker's bridge sent the right messages with other gaps than asked (its timing, not compared)", c.nmsgs, c.ms)
			v.GapsAsSet = true
			got["bridge"] = v
		}
		if !agree(got, want) {
			t.Errorf("nmsgs=%d ms=%d: a neighbour saw %+v, want %+v", c.nmsgs, c.ms, got, want)
		}
	}
}

// relative gives times as offsets from the first, in ms.
func relative(at []float64) []int {
	out := make([]int, 0, len(at))
	for _, a := range at {
		out = append(out, int((a-at[0])*1000))
	}
	return slices.Clip(out)
}
