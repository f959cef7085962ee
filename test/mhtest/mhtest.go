// Package mhtest runs mynet on several "hosts" at once, for the multi-host
// tests (test/multihost) and the e2e test that makes the machine's dockerd
// one of the hosts: each host is a network namespace with its own mynet
// daemon, socket and state directory, joined to the others by an underlay
// bridge in a namespace of its own (198.18.0.0/24), with a real etcd
// (test/etcd) in another. Tests play Docker's part over each socket and then
// do what dockerd does with the container end of a veth: move it into a
// "container" namespace and configure it. Nothing here touches the
// machine's own namespace but /run/netns (and, with AttachHost, one veth of
// the test's own), and every namespace is deleted by name at the end.
package mhtest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/poll"
	"github.com/mynet/mynet/plugin"
	"github.com/mynet/mynet/test/etcdtest"
	"github.com/mynet/mynet/test/testbin"
)

// Binary is the mynet daemon built from this tree.
func Binary(t testing.TB) string { return testbin.Mynet(t) }

// Run runs a command and fails the test on error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// world is one test's namespaces: the underlay, etcd and the hosts.
type World struct {
	t    testing.TB
	tag  string         // names every namespace of this test
	Etcd *etcdtest.Etcd // the first member
	// Members are etcd's members (one unless WorldOptions asked for
	// more), member i at 198.18.0.(1+i) in namespace tag-etcdN.
	Members []*etcdtest.Etcd
	Hosts   []*Host
	store   string // the daemons' --cluster-store
	// wgDirs are the state dirs of daemons RunDaemonAs started, whose
	// userspace WireGuard devices the end stops.
	wgDirs    []string
	underlay6 bool // WorldOptions.Underlay6
}

// Underlay6Of is the IPv6 underlay address of the namespace at IPv4
// underlay address addr (in a World with Underlay6).
func Underlay6Of(addr string) string {
	a := netip.MustParseAddr(addr).As4()
	return fmt.Sprintf("fd00:198:18::%d", a[3])
}

// WorldOptions size a World.
type WorldOptions struct {
	Hosts       int
	EtcdMembers int // 0: one
	// Underlay6 gives every namespace on the underlay an IPv6 address
	// too (fd00:198:18::N beside 198.18.0.N), and the hosts advertise it:
	// an IPv6 underlay (etcd stays on IPv4).
	Underlay6 bool
}

// host is one simulated Docker host.
type Host struct {
	w        *World
	n        int
	Name, NS string
	Addr     string // underlay address
	dir      string // state dir and socket
	cmd      *exec.Cmd
	log      *testbin.Log
	client   *plugin.Client
}

// NewWorld makes the underlay, etcd and n hosts, each running mynet.
func NewWorld(t testing.TB, n int, extra ...string) *World {
	t.Helper()
	return NewWorldWith(t, WorldOptions{Hosts: n}, extra...)
}

// NewWorldWith is NewWorld with an etcd of several members, which every
// daemon is given all of.
func NewWorldWith(t testing.TB, o WorldOptions, extra ...string) *World {
	t.Helper()
	n := o.Hosts
	w := &World{t: t, tag: fmt.Sprintf("mnmh%d", os.Getpid()%100000), underlay6: o.Underlay6}
	ul := w.tag + "-ul"
	_, err := os.Stat(wireguardSockets)
	madeSockets := err != nil // the userspace devices' socket directory is the test's to remove
	// The test's temporary directories go in a cleanup registered at the
	// first TempDir: made first here, it runs after this one (last in,
	// first out), which reads the userspace devices' pid files in them.
	// (Made later, the pid files were gone first and a benchmark left its
	// wg-device processes running.)
	_ = t.TempDir()
	t.Cleanup(func() {
		if madeSockets {
			defer os.Remove(wireguardSockets) // only if empty: never another's sockets
		}
		for _, h := range w.Hosts {
			h.Kill()
			killWireGuard(h.dir, w.WireGuardDevice(h.NS))
		}
		for _, dir := range w.wgDirs {
			killWireGuard(dir, "")
		}
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], w.tag+"-") {
				_ = exec.Command("ip", "netns", "del", f[0]).Run()
			}
		}
	})
	Run(t, "ip", "netns", "add", ul)
	Run(t, "ip", "-n", ul, "link", "add", "ul0", "type", "bridge")
	Run(t, "ip", "-n", ul, "link", "set", "ul0", "up")
	if o.EtcdMembers <= 1 {
		w.attach("etcd", "198.18.0.1")
		w.Members = []*etcdtest.Etcd{etcdtest.Start(t, etcdtest.Options{IP: "198.18.0.1", Netns: w.tag + "-etcd"})}
		w.store = "etcd://198.18.0.1:2379"
	} else {
		var members []etcdtest.Options
		var urls []string
		for i := range o.EtcdMembers {
			ip := fmt.Sprintf("198.18.0.%d", 1+i)
			w.attach(fmt.Sprintf("etcd%d", i+1), ip)
			members = append(members, etcdtest.Options{IP: ip, Netns: fmt.Sprintf("%s-etcd%d", w.tag, i+1)})
			urls = append(urls, ip+":2379")
		}
		w.Members = etcdtest.StartCluster(t, members)
		w.store = "etcd://" + strings.Join(urls, ",")
	}
	w.Etcd = w.Members[0]
	for i := range n {
		v4 := fmt.Sprintf("198.18.0.%d", 11+i)
		h := &Host{w: w, n: i + 1, Name: fmt.Sprintf("host%d", i+1), NS: fmt.Sprintf("%s-h%d", w.tag, i+1),
			Addr: v4, dir: t.TempDir(), log: &testbin.Log{}}
		if o.Underlay6 {
			h.Addr = Underlay6Of(v4)
		}
		w.attach(fmt.Sprintf("h%d", i+1), v4)
		h.client = plugin.NewClient(h.Socket(), 30*time.Second)
		h.start(extra...)
		w.Hosts = append(w.Hosts, h)
	}
	return w
}

// Attach makes namespace tag-NAME with a link to the underlay at addr (for
// a host the test runs itself, such as a dockerd's) and returns its name;
// the World deletes it at the end.
func (w *World) Attach(name, addr string) string {
	w.attach(name, addr)
	return w.tag + "-" + name
}

// Store is the --cluster-store of the World's etcd.
func (w *World) Store() string { return w.store }

// attach makes namespace tag-NAME with a link to the underlay at addr.
func (w *World) attach(name, addr string) {
	t := w.t
	ns := w.tag + "-" + name
	Run(t, "ip", "netns", "add", ns)
	Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	Run(t, "ip", "link", "add", "mnmhtmp0", "netns", ns, "type", "veth", "peer", "name", "ul-"+name, "netns", w.tag+"-ul")
	Run(t, "ip", "-n", ns, "link", "set", "mnmhtmp0", "name", "eth0")
	Run(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	if w.underlay6 {
		Run(t, "ip", "-n", ns, "addr", "add", Underlay6Of(addr)+"/64", "dev", "eth0", "nodad")
	}
	Run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	Run(t, "ip", "-n", w.tag+"-ul", "link", "set", "ul-"+name, "master", "ul0", "up")
}

func (h *Host) Socket() string { return filepath.Join(h.dir, "mynet.sock") }

// Dir is the host's state directory.
func (h *Host) Dir() string { return h.dir }

// Log is what the host's daemon logged so far (at debug level).
func (h *Host) Log() string { return h.log.String() }

func (h *Host) start(extra ...string) {
	t := h.w.t
	t.Helper()
	cmd := exec.Command("ip", h.w.daemonArgs(h.NS, h.dir, h.Addr, h.Name, extra...)...)
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
	t.Fatalf("%s: mynet did not answer\n%s", h.Name, h.log.String())
}

// daemonArgs are ip's arguments that run a host's mynet in namespace ns,
// with its state and socket in dir.
func (w *World) daemonArgs(ns, dir, addr, node string, extra ...string) []string {
	return append([]string{"netns", "exec", ns, Binary(w.t), "--socket", filepath.Join(dir, "mynet.sock"), "--state-dir", dir,
		"--log-level", "debug", "--reconcile-interval", "0",
		"--cluster-store", w.store, "--cluster-advertise", addr, "--node-name", node, "--cluster-ttl", "3s",
		// Userspace WireGuard devices' sockets share one directory: each
		// host's device has a name of its own.
		"--cluster-wireguard-device", w.WireGuardDevice(ns),
		// These hosts have no Docker: never the machine's.
		"--docker-host", ""}, extra...)
}

// RunDaemonAs runs a mynet in a namespace of its own on the underlay (at
// addr) under node name node, as another host would, and returns what it
// printed and how it ended: exited by itself within limit, or killed then
// (running is true).
func (w *World) RunDaemonAs(node, addr string, limit time.Duration) (out string, running bool, err error) {
	t := w.t
	t.Helper()
	name := fmt.Sprintf("x%d", len(w.Hosts)+1)
	w.attach(name, addr)
	var log testbin.Log
	dir := t.TempDir()
	w.wgDirs = append(w.wgDirs, dir)
	cmd := exec.Command("ip", w.daemonArgs(w.tag+"-"+name, dir, addr, node)...)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		err, running = <-done, true
	}
	return log.String(), running, err
}

// Pid is the host's mynet daemon's process ID (ip netns exec execs it).
func (h *Host) Pid() int {
	if h.cmd == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// kill stops the daemon as a crash would.
func (h *Host) Kill() {
	if h.cmd != nil {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
		h.cmd = nil
	}
}

// call plays dockerd and fails the test on an error answer.
func (h *Host) Call(path string, req any) map[string]any {
	t := h.w.t
	t.Helper()
	out, err := h.Try(path, req)
	if err != nil {
		t.Fatalf("%s %s: %v\nlog:\n%s", h.Name, path, err, Tail(h.log.String(), 3000))
	}
	return out
}

func (h *Host) Try(path string, req any) (map[string]any, error) {
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

func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Eventually waits up to 10 s for fn to return nil (internal/poll), and
// says how long that took.
func Eventually(t testing.TB, what string, fn func() error) time.Duration {
	t.Helper()
	return poll.Eventually(t, what, 10*time.Second, fn)
}

// remotes lists the VXLAN device's permanent neighbours on a host, as
// "IP lladdr MAC".
func (n *ClusterNet) Remotes() string {
	out, _ := exec.Command("ip", "-n", n.Host.NS, "neigh", "show", "dev", "mnv"+n.ID[:12], "nud", "permanent").Output()
	return string(out)
}

// WaitFor waits up to limit for cond and reports whether it held
// (internal/poll).
func WaitFor(limit time.Duration, cond func() bool) bool { return poll.Until(limit, cond) }

// restart starts a killed daemon again on its state.
func (h *Host) Restart(extra ...string) {
	h.Kill()
	h.start(extra...)
}

// AttachNS makes a namespace of the test's on the underlay at addr, a
// machine that is no host of the cluster, and returns its name.
func (w *World) AttachNS(name, addr string) string {
	w.t.Helper()
	w.attach(name, addr)
	return w.tag + "-" + name
}

// Partition cuts namespace tag-NAME (a host, or etcdN) off the underlay;
// Heal joins it again.
func (w *World) Partition(name string) {
	w.t.Helper()
	Run(w.t, "ip", "-n", w.tag+"-ul", "link", "set", "ul-"+name, "down")
}

func (w *World) Heal(name string) {
	w.t.Helper()
	Run(w.t, "ip", "-n", w.tag+"-ul", "link", "set", "ul-"+name, "up")
}

// AttachHost connects the machine's own network namespace to the underlay
// at addr (a veth of the test's own, removed at the end), so a mynet daemon
// under the machine's dockerd can be one of the hosts.
func (w *World) AttachHost(addr string) {
	t := w.t
	t.Helper()
	link := w.tag + "r"
	Run(t, "ip", "link", "add", link, "type", "veth", "peer", "name", "ul-root", "netns", w.tag+"-ul")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", link).Run() })
	Run(t, "ip", "addr", "add", addr+"/24", "dev", link)
	Run(t, "ip", "link", "set", link, "up")
	Run(t, "ip", "-n", w.tag+"-ul", "link", "set", "ul-root", "master", "ul0", "up")
}
