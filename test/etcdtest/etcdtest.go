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
	cmd     *exec.Cmd
	stopped bool
	lines   chan string // the server's stdout after "ready"
}

// Options place the server; the zero value is loopback on free ports.
type Options struct {
	// IP and Netns put it on IP:2379 inside the named namespace.
	IP    string
	Netns string
}

// Start runs etcd and waits until it serves; it is killed when the test
// ends.
func Start(t testing.TB, o Options) *Etcd {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	e := &Etcd{t: t, bin: bin, dir: t.TempDir(), netns: o.Netns}
	if o.IP != "" {
		e.client, e.peer = "http://"+o.IP+":2379", "http://"+o.IP+":2380"
	} else {
		e.client, e.peer = "http://"+freeAddr(t), "http://"+freeAddr(t)
	}
	e.start()
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
	args := []string{"-data-dir", e.dir, "-client", e.client, "-peer", e.peer}
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
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			e.t.Fatalf("etcd exited before it was ready: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		e.t.Fatalf("etcd not ready in 30 s: %s", stderr.String())
	}
	e.lines = lines
	e.cmd, e.stopped = cmd, false
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
