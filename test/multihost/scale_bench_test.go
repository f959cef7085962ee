package multihost

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/test/mhtest"
)

// BenchmarkClusterScale is make bench's cluster-scale workload (run it with
// -benchtime 1x): one real daemon on a cluster network whose other hosts
// are simulated, a real etcd, and a generator that fills it with 100 hosts'
// endpoints, each claimed and published as a host does, to 1k, 10k and
// 100k peers (MYNET_BENCH_SCALE_MAX lowers the top). At each size: the
// daemon's start-up (from its start to every peer programmed on the VXLAN
// device), the cost of one watched change in the daemon (from the watch's
// delivery to the entry programmed and saved; the daemon logs it), and its
// memory. Then the etcd requests one RequestAddress and one CreateEndpoint
// make, from etcd's own counters. It reports; it asserts nothing.
func BenchmarkClusterScale(b *testing.B) {
	top := 100000
	if v, err := strconv.Atoi(os.Getenv("MYNET_BENCH_SCALE_MAX")); err == nil && v > 0 {
		top = v
	}
	for range b.N {
		w := mhtest.NewWorld(b, 1, "--cluster-ttl", "60s")
		w.AttachHost("198.18.0.250")
		h := w.Hosts[0]
		n := h.CreateNetwork("blue", "10.64.0.0/14")
		g := newGenerator(b, w.Etcd.URL(), 100)
		vxlan := "mnv" + n.ID[:12]
		prev := 0
		for _, size := range []int{1000, 10000, 100000} {
			if size > top {
				break
			}
			h.Kill()
			g.fill(size)
			// Start-up with the entries to program (the kernel keeps the
			// last size's: the share new to it is reported), then a
			// restart with all of them in place.
			startup, daemonSide := restart(b, h, size)
			if got := permanentNeighbours(b, h.NS, vxlan); got != size {
				b.Fatalf("%d peers: %d programmed", size, got)
			}
			_, firstPeak := memory(b, h.Pid())
			again, _ := restart(b, h, size)
			published, withdrawn := g.stream(h, 100)
			pub50, pub99 := pct(published)
			wd50, wd99 := pct(withdrawn)
			rss, hwm := memory(b, h.Pid())
			label := fmt.Sprintf("%dk", size/1000)
			b.ReportMetric(startup.Seconds(), "startup-s-"+label)
			b.ReportMetric(daemonSide.Seconds(), "startup-sync-s-"+label)
			b.ReportMetric(float64(size-prev)/float64(size), "new-share-"+label)
			b.ReportMetric(again.Seconds(), "restart-s-"+label)
			b.ReportMetric(pub50, "publish-p50-us-"+label)
			b.ReportMetric(pub99, "publish-p99-us-"+label)
			b.ReportMetric(wd50, "withdraw-p50-us-"+label)
			b.ReportMetric(wd99, "withdraw-p99-us-"+label)
			b.ReportMetric(float64(len(published)), "events-"+label)
			b.ReportMetric(rss, "rss-MiB-"+label)
			b.ReportMetric(firstPeak, "first-peak-rss-MiB-"+label)
			b.ReportMetric(hwm, "peak-rss-MiB-"+label)
			fmt.Fprintf(os.Stderr, "cluster scale: %d peers: start-up %.2f s (list and program %.2f s), restart %.2f s, publish p50 %.0f us p99 %.0f us, withdraw p50 %.0f us p99 %.0f us (%d each), memory %.0f MiB (peak %.0f, first start-up's %.0f)\n",
				size, startup.Seconds(), daemonSide.Seconds(), again.Seconds(), pub50, pub99, wd50, wd99, len(published), rss, hwm, firstPeak)
			prev = size
		}
		ra, ce := roundTrips(b, w, n, 30)
		b.ReportMetric(ra, "etcd-requests-per-request-address")
		b.ReportMetric(ce, "etcd-requests-per-create-endpoint")
	}
}

// restart restarts the daemon and waits until it has listed the size
// records and programmed them (its log says so): the time from its start,
// and its own time for the list and programming.
func restart(b testing.TB, h *mhtest.Host, size int) (total, sync time.Duration) {
	b.Helper()
	h.Kill()
	before := len(h.Log())
	start := time.Now()
	h.Restart("--cluster-ttl", "60s")
	want := fmt.Sprintf(" records=%d ", size)
	var line string
	if !mhtest.WaitFor(120*time.Second, func() bool {
		for _, l := range strings.Split(h.Log()[before:], "\n") {
			if strings.Contains(l, "cluster peers listed and programmed") && strings.Contains(l, want) {
				line = l
				return true
			}
		}
		return false
	}) {
		b.Fatalf("%d peers: not listed and programmed within 120 s\n%s", size, mhtest.Tail(h.Log()[before:], 3000))
	}
	total = time.Since(start)
	sync, _ = time.ParseDuration(field(line, "total"))
	return total, sync
}

// generator plays the simulated hosts: each a cluster client registered
// under a name and underlay address of its own.
type generator struct {
	b     testing.TB
	hosts []*cluster.Client
	made  int // endpoints published so far
}

func newGenerator(b testing.TB, etcd string, hosts int) *generator {
	g := &generator{b: b}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	for i := range hosts {
		c, err := cluster.New(cluster.Config{Endpoints: []string{etcd}, Node: fmt.Sprintf("sim%03d", i),
			Advertise: netip.AddrFrom4([4]byte{198, 19, byte(i / 250), byte(1 + i%250)}), TTL: 120 * time.Second,
			Log: logrus.NewEntry(quiet)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if _, _, err := c.Register(ctx, 0); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cancel(); c.Close() })
		g.hosts = append(g.hosts, c)
	}
	return g
}

// endpoint is the k-th simulated endpoint: its host and its address, in
// 10.66.0.0/15, the upper half of the network (the daemon's own
// allocations come from the lower).
func (g *generator) endpoint(k int) (*cluster.Client, cluster.Peer) {
	v := 10<<24 | 66<<16 + k + 1
	ip := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	mac := fmt.Sprintf("02:55:%02x:%02x:%02x:%02x", byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	return g.hosts[k%len(g.hosts)], cluster.Peer{Network: "blue", IP: ip, MAC: mac}
}

// publish claims and publishes the k-th endpoint, as its host would.
func (g *generator) publish(k int) error {
	c, ep := g.endpoint(k)
	ok, holder, err := c.ClaimAddress("blue", ep.IP, ep.MAC)
	if err != nil || !ok {
		return fmt.Errorf("claim %s: %v (held by %q)", ep.IP, err, holder)
	}
	return c.PublishPeer(ep)
}

// fill publishes endpoints until there are total, 32 at a time.
func (g *generator) fill(total int) {
	start := time.Now()
	work := make(chan int)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				if err := g.publish(k); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for k := g.made; k < total; k++ {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		g.b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "cluster scale: %d endpoints in etcd (%d published in %.1f s)\n", total, total-g.made, time.Since(start).Seconds())
	g.made = total
}

// stream publishes count new endpoints and withdraws them again, one change
// every 10 ms (a rate the daemon keeps up with: each change is measured
// alone), and returns the daemon's cost of each, in microseconds: the
// publications' and the withdrawals' apart (a withdrawal has no claim to
// check).
func (g *generator) stream(h *mhtest.Host, count int) (published, withdrawn []float64) {
	b := g.b
	before := len(h.Log())
	var sent []string
	first := g.made
	for k := first; k < first+count; k++ {
		if err := g.publish(k); err != nil {
			b.Fatal(err)
		}
		_, ep := g.endpoint(k)
		sent = append(sent, ep.IP.String()+"/false")
		time.Sleep(10 * time.Millisecond)
	}
	for k := first; k < first+count; k++ {
		c, ep := g.endpoint(k)
		if err := c.UnpublishPeer("blue", ep.IP); err != nil {
			b.Fatal(err)
		}
		if err := c.ReleaseAddress("blue", ep.IP, ep.MAC); err != nil {
			b.Fatal(err)
		}
		sent = append(sent, ep.IP.String()+"/true")
		time.Sleep(10 * time.Millisecond)
	}
	var took map[string]float64
	ok := mhtest.WaitFor(30*time.Second, func() bool {
		took = map[string]float64{}
		sc := bufio.NewScanner(strings.NewReader(h.Log()[before:]))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, "peer change applied") {
				continue
			}
			addr, del, us := field(line, "address"), field(line, "deleted"), field(line, "took_us")
			if v, err := strconv.ParseFloat(us, 64); err == nil {
				took[addr+"/"+del] = v
			}
		}
		for _, s := range sent {
			if _, ok := took[s]; !ok {
				return false
			}
		}
		return true
	})
	if !ok {
		b.Fatalf("the daemon applied %d of %d changes in 30 s\n%s", len(took), len(sent), mhtest.Tail(h.Log()[before:], 3000))
	}
	for i, s := range sent {
		if i < count {
			published = append(published, took[s])
		} else {
			withdrawn = append(withdrawn, took[s])
		}
	}
	return published, withdrawn
}

// field is a logrus text line's value of key.
func field(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return strings.Trim(v, `"`)
}

// permanentNeighbours counts the VXLAN device's permanent neighbour
// entries: the remote endpoints programmed.
func permanentNeighbours(b testing.TB, ns, dev string) int {
	out, err := exec.Command("ip", "-n", ns, "neigh", "show", "dev", dev, "nud", "permanent").Output()
	if err != nil {
		return 0
	}
	return strings.Count(string(out), "\n")
}

// memory is a process's resident and peak resident memory, in MiB.
func memory(b testing.TB, pid int) (rss, hwm float64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

// roundTrips is the etcd requests (unary gRPC calls, from etcd's own
// counters) of one RequestAddress and of one CreateEndpoint in the cluster
// network, averaged over count of each.
func roundTrips(b testing.TB, w *mhtest.World, n *mhtest.ClusterNet, count int) (perRequest, perCreate float64) {
	h := w.Hosts[0]
	time.Sleep(2 * time.Second) // the start-up's work done
	var addrs []string
	before := etcdRequests(b, w.Etcd.URL())
	for i := range count {
		mac := fmt.Sprintf("02:00:0c:00:%02x:%02x", i/256, i%256)
		addrs = append(addrs, h.Call("/IpamDriver.RequestAddress", map[string]any{"PoolID": n.PoolID,
			"Options": map[string]string{"com.docker.network.endpoint.macaddress": mac}})["Address"].(string))
	}
	mid := etcdRequests(b, w.Etcd.URL())
	for i, addr := range addrs {
		mac := fmt.Sprintf("02:00:0c:00:%02x:%02x", i/256, i%256)
		h.Call("/NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": n.ID, "EndpointID": fmt.Sprintf("d%011x%s", i, strings.Repeat("0", 52)),
			"Interface": map[string]string{"Address": addr, "MacAddress": mac}})
	}
	after := etcdRequests(b, w.Etcd.URL())
	for i, addr := range addrs {
		h.Call("/NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": n.ID, "EndpointID": fmt.Sprintf("d%011x%s", i, strings.Repeat("0", 52))})
		h.Call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": n.PoolID, "Address": strings.Split(addr, "/")[0]})
	}
	return (mid - before) / float64(count), (after - mid) / float64(count)
}

var unaryHandled = regexp.MustCompile(`(?m)^grpc_server_handled_total\{[^}]*grpc_type="unary"[^}]*\} (\S+)$`)

// etcdRequests sums the unary requests etcd has answered.
func etcdRequests(b testing.TB, url string) float64 {
	res, err := http.Get(url + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	total := 0.0
	for _, m := range unaryHandled.FindAllStringSubmatch(string(raw), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		total += v
	}
	if total == 0 {
		b.Fatalf("etcd's /metrics has no grpc_server_handled_total for unary calls:\n%s", mhtest.Tail(string(raw), 2000))
	}
	return total
}
