// Package etcdtest runs a real etcd (test/etcd, the embedded server) as a
// process of its own for tests: on loopback ports it picks, or on a given
// address inside a network namespace, with a data directory that outlives
// a restart. Tests stop it (SIGSTOP), resume, kill and restart it.
package etcdtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mynet/mynet/test/testbin"
)

// binary is test/etcd, built once per test process.
func binary() (string, error) { return testbin.Build("./test/etcd") }

// Etcd is one running (or stopped) etcd.
type Etcd struct {
	t       testing.TB
	bin     string
	dir     string
	client  string // http://IP:PORT
	peer    string
	netns   string // run inside `ip netns exec NETNS` when set
	name    string // member name and the cluster's members (NAME=PEER,...), for one of several
	members string
	cmd     *exec.Cmd
	stopped bool
	ready   chan bool        // the launch's readiness
	stderr  *strings.Builder // what the server printed there
	lines   chan string      // the server's stdout after "ready"
}

// Options place the server; the zero value is loopback on free ports.
type Options struct {
	// IP and Netns put it on IP:2379 inside the named namespace.
	IP    string
	Netns string
	// Name and Members make it one member of a cluster (StartCluster).
	Name, Members string
}

// Start runs etcd and waits until it serves; it is killed when the test
// ends.
func Start(t testing.TB, o Options) *Etcd {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	e := newEtcd(t, bin, o)
	e.start()
	return e
}

// StartCluster runs the members of one new etcd cluster, each on its IP
// in its namespace (Options.Name and Members are set here), and waits until
// every one serves. The first member's is the URL of etcd's clients.
func StartCluster(t testing.TB, members []Options) []*Etcd {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for i, o := range members {
		all = append(all, fmt.Sprintf("m%d=http://%s:2380", i+1, o.IP))
	}
	var out []*Etcd
	for i, o := range members {
		o.Name, o.Members = fmt.Sprintf("m%d", i+1), strings.Join(all, ",")
		e := newEtcd(t, bin, o)
		e.launch()
		out = append(out, e)
	}
	for _, e := range out {
		e.waitReady()
	}
	return out
}

func newEtcd(t testing.TB, bin string, o Options) *Etcd {
	e := &Etcd{t: t, bin: bin, dir: t.TempDir(), netns: o.Netns, name: o.Name, members: o.Members}
	if o.IP != "" {
		e.client, e.peer = "http://"+o.IP+":2379", "http://"+o.IP+":2380"
	} else {
		e.client, e.peer = "http://"+freeAddr(t), "http://"+freeAddr(t)
	}
	t.Cleanup(e.Kill)
	return e
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// URL is the client URL.
func (e *Etcd) URL() string { return e.client }

func (e *Etcd) start() {
	e.t.Helper()
	e.launch()
	e.waitReady()
}

// launch starts the server; waitReady waits until it serves.
func (e *Etcd) launch() {
	e.t.Helper()
	args := []string{"-data-dir", e.dir, "-client", e.client, "-peer", e.peer}
	if e.name != "" {
		args = append(args, "-name", e.name, "-initial-cluster", e.members)
	}
	var cmd *exec.Cmd
	if e.netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", e.netns, e.bin}, args...)...)
	} else {
		cmd = exec.Command(e.bin, args...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.cmd, e.stderr = cmd, &stderr
	ready := make(chan bool, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		seen := false
		for sc.Scan() {
			switch {
			case !seen && sc.Text() == "ready":
				seen = true
				ready <- true
			case seen:
				select {
				case lines <- sc.Text():
				default: // nobody asked
				}
			}
		}
		if !seen {
			ready <- false
		}
	}()
	e.ready, e.lines, e.stopped = ready, lines, false
}

func (e *Etcd) waitReady() {
	e.t.Helper()
	select {
	case ok := <-e.ready:
		if !ok {
			_ = e.cmd.Wait()
			e.cmd = nil
			e.t.Fatalf("etcd exited before it was ready: %s", e.stderr.String())
		}
	case <-time.After(30 * time.Second):
		e.Kill()
		e.t.Fatalf("etcd not ready in 30 s: %s", e.stderr.String())
	}
}

// Stop freezes the server (SIGSTOP): connections stay open, nothing
// answers, as with a hung or cut-off etcd. It returns once every thread
// of the server is stopped: the signal is asynchronous, and a request sent
// meanwhile would still be answered.
func (e *Etcd) Stop() {
	e.signal(syscall.SIGSTOP)
	e.stopped = true
	for range 1000 {
		if allStopped(e.cmd.Process.Pid) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatal("etcd did not stop within 5 s of SIGSTOP")
}

// allStopped reports whether every thread of process pid is stopped
// (state T in /proc/PID/task/TID/stat).
func allStopped(pid int) bool {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return false
	}
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			return false
		}
		// pid (comm) state ...: the state follows the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// Resume undoes Stop.
func (e *Etcd) Resume() { e.signal(syscall.SIGCONT); e.stopped = false }

func (e *Etcd) signal(sig syscall.Signal) {
	e.t.Helper()
	if e.cmd == nil {
		e.t.Fatal("etcd is not running")
	}
	if err := e.cmd.Process.Signal(sig); err != nil {
		e.t.Fatal(err)
	}
}

// Compact compacts the server's history up to its current revision (a
// watch from an older revision then fails, as after etcd's periodic
// compaction) and returns that revision.
func (e *Etcd) Compact() int64 {
	e.t.Helper()
	for len(e.lines) > 0 {
		<-e.lines
	}
	e.signal(syscall.SIGUSR1)
	select {
	case l := <-e.lines:
		var rev int64
		if _, err := fmt.Sscanf(l, "compacted %d", &rev); err != nil {
			e.t.Fatalf("etcd answered the compaction with %q", l)
		}
		return rev
	case <-time.After(10 * time.Second):
		e.t.Fatal("etcd did not compact within 10 s")
		return 0
	}
}

// Kill kills the server; its data stays for Restart.
func (e *Etcd) Kill() {
	if e.cmd == nil {
		return
	}
	if e.stopped {
		_ = e.cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = e.cmd.Process.Kill()
	_ = e.cmd.Wait()
	e.cmd = nil
}

// Restart starts a killed server again on the same data.
func (e *Etcd) Restart() {
	e.t.Helper()
	e.Kill()
	e.start()
}

// WaitHealthy waits until the member answers etcd's /health with a leader
// (a member killed or cut off and back has caught up with its cluster).
func (e *Etcd) WaitHealthy() {
	e.t.Helper()
	for range 300 {
		args := []string{"curl", "-s", "-m", "1", e.client + "/health"}
		if e.netns != "" {
			args = append([]string{"ip", "netns", "exec", e.netns}, args...)
		}
		if out, err := exec.Command(args[0], args[1:]...).Output(); err == nil && strings.Contains(string(out), `"health":"true"`) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("etcd at %s not healthy within 30 s", e.client)
}

// Wipe kills the server and deletes its data: the next Restart is an empty
// etcd, as after losing the cluster's disks.
func (e *Etcd) Wipe() {
	e.t.Helper()
	e.Kill()
	if err := os.RemoveAll(e.dir); err != nil {
		e.t.Fatal(err)
	}
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
}

// DeletePrefix deletes every key under /mynet/ in one request, as `etcdctl
// del --prefix /mynet/` does under running clients (leases stay), and
// returns how many went.
func (e *Etcd) DeletePrefix() int {
	e.t.Helper()
	for len(e.lines) > 0 {
		<-e.lines
	}
	e.signal(syscall.SIGUSR2)
	select {
	case l := <-e.lines:
		var n int
		if _, err := fmt.Sscanf(l, "deleted %d", &n); err != nil {
			e.t.Fatalf("etcd answered the deletion with %q", l)
		}
		return n
	case <-time.After(10 * time.Second):
		e.t.Fatal("etcd did not delete within 10 s")
		return 0
	}
}

// Backup copies the server's data, taken while it is stopped (as a crash
// would leave it), to a directory of the test's, and returns it.
func (e *Etcd) Backup() string {
	e.t.Helper()
	e.Stop()
	defer e.Resume()
	dst := filepath.Join(e.t.TempDir(), "etcd-backup")
	if out, err := exec.Command("cp", "-a", e.dir, dst).CombinedOutput(); err != nil {
		e.t.Fatalf("copy etcd's data: %v %s", err, out)
	}
	return dst
}

// Restore kills the server, puts the data of backup (Backup) in place of
// its own and starts it again: an etcd restored from an older backup.
func (e *Etcd) Restore(backup string) {
	e.t.Helper()
	e.Kill()
	if err := os.RemoveAll(e.dir); err != nil {
		e.t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", backup, e.dir).CombinedOutput(); err != nil {
		e.t.Fatalf("restore etcd's data: %v %s", err, out)
	}
	e.start()
}
