// Package multihost runs mynet on several "hosts" at once: each host is a
// network namespace with its own mynet daemon, socket and state directory,
// joined to the others by an underlay bridge in a namespace of its own
// (198.18.0.0/24), with a real etcd (test/etcd) in another. The test plays
// Docker's part over each socket and then does what dockerd does with the
// container end of a veth: moves it into a "container" namespace and
// configures it. Nothing here touches the machine's own namespace but
// /run/netns, and every namespace is deleted by name at the end.
package multihost

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mynet/mynet/plugin"
	"github.com/mynet/mynet/test/etcdtest"
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "multihost: these tests need root (run make test as root)")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

var (
	buildOnce sync.Once
	mynetBin  string
	buildErr  error
)

func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mynet-multihost-")
		if err != nil {
			buildErr = err
			return
		}
		mynetBin = filepath.Join(dir, "mynet")
		if out, err := exec.Command("go", "build", "-o", mynetBin, "../..").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build mynet: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return mynetBin
}

// run runs a command and fails the test on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// world is one test's namespaces: the underlay, etcd and the hosts.
type world struct {
	t     testing.TB
	tag   string // names every namespace of this test
	etcd  *etcdtest.Etcd
	hosts []*host
}

// host is one simulated Docker host.
type host struct {
	w        *world
	n        int
	name, ns string
	addr     string // underlay address
	dir      string // state dir and socket
	cmd      *exec.Cmd
	log      *syncBuffer
	client   *plugin.Client
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newWorld makes the underlay, etcd and n hosts, each running mynet.
func newWorld(t testing.TB, n int, extra ...string) *world {
	t.Helper()
	w := &world{t: t, tag: fmt.Sprintf("mnmh%d", os.Getpid()%100000)}
	ul := w.tag + "-ul"
	t.Cleanup(func() {
		for _, h := range w.hosts {
			h.kill()
		}
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], w.tag+"-") {
				_ = exec.Command("ip", "netns", "del", f[0]).Run()
			}
		}
	})
	run(t, "ip", "netns", "add", ul)
	run(t, "ip", "-n", ul, "link", "add", "ul0", "type", "bridge")
	run(t, "ip", "-n", ul, "link", "set", "ul0", "up")
	w.attach("etcd", "198.18.0.1")
	w.etcd = etcdtest.Start(t, etcdtest.Options{IP: "198.18.0.1", Netns: w.tag + "-etcd"})
	for i := range n {
		h := &host{w: w, n: i + 1, name: fmt.Sprintf("host%d", i+1), ns: fmt.Sprintf("%s-h%d", w.tag, i+1),
			addr: fmt.Sprintf("198.18.0.%d", 11+i), dir: t.TempDir(), log: &syncBuffer{}}
		w.attach(fmt.Sprintf("h%d", i+1), h.addr)
		h.client = plugin.NewClient(h.socket(), 30*time.Second)
		h.start(extra...)
		w.hosts = append(w.hosts, h)
	}
	return w
}

// attach makes namespace tag-NAME with a link to the underlay at addr.
func (w *world) attach(name, addr string) {
	t := w.t
	ns := w.tag + "-" + name
	run(t, "ip", "netns", "add", ns)
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	run(t, "ip", "link", "add", "mnmhtmp0", "netns", ns, "type", "veth", "peer", "name", "ul-"+name, "netns", w.tag+"-ul")
	run(t, "ip", "-n", ns, "link", "set", "mnmhtmp0", "name", "eth0")
	run(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	run(t, "ip", "-n", w.tag+"-ul", "link", "set", "ul-"+name, "master", "ul0", "up")
}

func (h *host) socket() string { return filepath.Join(h.dir, "mynet.sock") }

func (h *host) start(extra ...string) {
	t := h.w.t
	t.Helper()
	args := append([]string{"netns", "exec", h.ns, binary(t), "--socket", h.socket(), "--state-dir", h.dir,
		"--log-level", "debug", "--reconcile-interval", "0",
		"--cluster-store", "etcd://198.18.0.1:2379", "--cluster-advertise", h.addr, "--node-name", h.name, "--cluster-ttl", "3s"}, extra...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = h.log, h.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.cmd = cmd
	for range 200 {
		if code, _, err := h.client.Post("/Plugin.Activate", []byte("{}")); err == nil && code == 200 {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: mynet did not answer\n%s", h.name, h.log.String())
}

// kill stops the daemon as a crash would.
func (h *host) kill() {
	if h.cmd != nil {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
		h.cmd = nil
	}
}

// call plays dockerd and fails the test on an error answer.
func (h *host) call(path string, req any) map[string]any {
	t := h.w.t
	t.Helper()
	out, err := h.try(path, req)
	if err != nil {
		t.Fatalf("%s %s: %v\nlog:\n%s", h.name, path, err, tail(h.log.String(), 3000))
	}
	return out
}

func (h *host) try(path string, req any) (map[string]any, error) {
	code, raw, err := h.client.Post(path, req)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if code != 200 {
		return out, fmt.Errorf("status %d: %v", code, out["Err"])
	}
	return out, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// clusterNet is a cluster network as one host's dockerd created it.
type clusterNet struct {
	h      *host
	id     string // this host's Docker network ID
	poolID string
	gw     string
}

// createNetwork plays `docker network create -d mynet --ipam-driver mynet
// --ipam-opt mynet.cluster=NAME [--subnet SUBNET] NAME` on one host.
func (h *host) createNetwork(name, subnet string) *clusterNet {
	h.w.t.Helper()
	epSeq.Lock()
	epSeq.n++
	id := fmt.Sprintf("c%09x%02d%s", epSeq.n, h.n, strings.Repeat("0", 52))
	epSeq.Unlock()
	pool := h.call("/IpamDriver.RequestPool", map[string]any{"AddressSpace": "LocalDefault", "Pool": subnet,
		"Options": map[string]string{"mynet.cluster": name}})
	n := &clusterNet{h: h, id: id, poolID: pool["PoolID"].(string)}
	n.gw = h.call("/IpamDriver.RequestAddress", map[string]any{"PoolID": n.poolID,
		"Options": map[string]string{"RequestAddressType": "com.docker.network.gateway"}})["Address"].(string)
	h.call("/NetworkDriver.CreateNetwork", map[string]any{"NetworkID": id, "Options": map[string]any{},
		"IPv4Data": []map[string]any{{"AddressSpace": "LocalDefault", "Pool": pool["Pool"], "Gateway": n.gw}}})
	return n
}

// container is a "container" namespace on a host, attached to a network.
type container struct {
	n    *clusterNet
	ns   string
	epID string
	ip   netip.Prefix
}

var epSeq struct {
	sync.Mutex
	n int
}

// run plays `docker run --network NET`: an address, the endpoint, Join, and
// the veth's container end moved into a namespace and configured.
func (n *clusterNet) run(static string) *container {
	h := n.h
	t := h.w.t
	t.Helper()
	c, err := n.tryRun(static)
	if err != nil {
		t.Fatalf("%s: %v\n%s", h.name, err, tail(h.log.String(), 3000))
	}
	return c
}

func (n *clusterNet) tryRun(static string) (*container, error) {
	h := n.h
	epSeq.Lock()
	epSeq.n++
	seq := epSeq.n
	epSeq.Unlock()
	epID := fmt.Sprintf("e%011x%s", seq, strings.Repeat("0", 52))
	mac := fmt.Sprintf("02:00:%02x:00:%02x:%02x", h.n, seq/256, seq%256)
	res, err := h.try("/IpamDriver.RequestAddress", map[string]any{"PoolID": n.poolID, "Address": static,
		"Options": map[string]string{"com.docker.network.endpoint.macaddress": mac}})
	if err != nil {
		return nil, err
	}
	addr := netip.MustParsePrefix(res["Address"].(string))
	if _, err := h.try("/NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": n.id, "EndpointID": epID,
		"Interface": map[string]string{"Address": addr.String(), "MacAddress": mac}}); err != nil {
		return nil, err
	}
	if _, err := h.try("/NetworkDriver.Join", map[string]any{"NetworkID": n.id, "EndpointID": epID, "SandboxKey": "/x"}); err != nil {
		return nil, err
	}
	c := &container{n: n, ns: fmt.Sprintf("%s-c%d", h.w.tag, seq), epID: epID, ip: addr}
	peer := "mnc" + epID[:12]
	for _, args := range [][]string{
		{"netns", "add", c.ns},
		{"-n", h.ns, "link", "set", peer, "netns", c.ns},
		{"-n", c.ns, "link", "set", peer, "name", "eth0"},
		{"-n", c.ns, "addr", "add", addr.String(), "dev", "eth0"},
		{"-n", c.ns, "link", "set", "eth0", "up"},
		{"-n", c.ns, "link", "set", "lo", "up"},
		{"-n", c.ns, "route", "add", "default", "via", strings.Split(n.gw, "/")[0]},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return c, nil
}

// remove plays `docker rm -f`: Leave, DeleteEndpoint, ReleaseAddress, and
// the namespace goes.
func (c *container) remove() {
	h := c.n.h
	h.call("/NetworkDriver.Leave", map[string]any{"NetworkID": c.n.id, "EndpointID": c.epID})
	_ = exec.Command("ip", "netns", "del", c.ns).Run()
	h.call("/NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": c.n.id, "EndpointID": c.epID})
	h.call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": c.n.poolID, "Address": c.ip.Addr().String()})
}

// ping sends one echo from the container to ip; size > 0 sets the payload
// and forbids fragmentation.
func (c *container) ping(ip netip.Addr, size int) error {
	args := []string{"netns", "exec", c.ns, "ping", "-c", "1", "-W", "2"}
	if size > 0 {
		args = append(args, "-M", "do", "-s", fmt.Sprint(size))
	}
	out, err := exec.Command("ip", append(args, ip.String())...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", ip, c.ip, err, out)
	}
	return nil
}

// eventually retries fn for up to 10 s.
func eventually(t testing.TB, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %v", what, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// remotes lists the VXLAN device's permanent neighbours on a host, as
// "IP lladdr MAC".
func (n *clusterNet) remotes() string {
	out, _ := exec.Command("ip", "-n", n.h.ns, "neigh", "show", "dev", "mnv"+n.id[:12], "nud", "permanent").Output()
	return string(out)
}

// waitFor polls cond for up to limit.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

// restart starts a killed daemon again on its state.
func (h *host) restart(extra ...string) {
	h.kill()
	h.start(extra...)
}
