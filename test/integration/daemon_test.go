package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/test/testbin"

	"github.com/mynet/mynet/plugin"
)

// mynetBinary is the daemon built from this tree, once per test run.
func mynetBinary(t testing.TB) string { return testbin.Mynet(t) }

// daemon is a mynet process in the test's network namespace, spoken to the
// way dockerd speaks to it.
type daemon struct {
	t        testing.TB
	bin      string
	dir      string   // state dir and socket
	fault    string   // MYNET_FAULT of the next start
	args     []string // extra flags
	env      []string // extra environment
	cmd      *exec.Cmd
	client   *plugin.Client
	restarts int
	log      testbin.Log
}

func newDaemon(t testing.TB) *daemon {
	t.Helper()
	d := &daemon{t: t, bin: mynetBinary(t), dir: t.TempDir()}
	d.client = plugin.NewClient(d.socket(), 30*time.Second)
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) socket() string { return filepath.Join(d.dir, "mynet.sock") }

func (d *daemon) start() {
	d.t.Helper()
	cmd := exec.Command(d.bin, append([]string{"--socket", d.socket(), "--state-dir", d.dir, "--log-level", "debug", "--reconcile-interval", "0"}, d.args...)...)
	cmd.Env = append(append(os.Environ(), "MYNET_FAULT="+d.fault), d.env...)
	cmd.Stdout, cmd.Stderr = &d.log, &d.log
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.cmd = cmd
	for range 200 {
		if c, err := net.Dial("unix", d.socket()); err == nil {
			c.Close()
			return
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	d.t.Fatalf("mynet did not listen\n%s", d.log.String())
}

// dead waits for a killed daemon to be reaped.
func (d *daemon) dead() bool {
	if d.cmd == nil {
		return true
	}
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(2 * time.Second):
		return false
	}
}

func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	d.dead()
	d.cmd = nil
}

// restartClean replaces a crashed daemon with one without a fault.
func (d *daemon) restartClean() {
	d.t.Helper()
	if !d.dead() {
		d.t.Fatal("the daemon lost a connection but did not die")
	}
	d.fault = ""
	d.restarts++
	d.start()
}

// errTransport marks a call whose connection failed, as when the daemon dies.
var errTransport = errors.New("transport failure")

// raw posts body to path and returns the status and decoded answer.
func (d *daemon) raw(path string, body []byte) (int, map[string]any, error) {
	code, b, err := d.client.Post(path, body)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", errTransport, err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return code, nil, fmt.Errorf("answer is not JSON: %q", b)
	}
	return code, out, nil
}

// forgotten are the calls dockerd does not retry: it forgets the object.
var forgotten = map[string]bool{
	"/NetworkDriver.Leave": true, "/NetworkDriver.DeleteEndpoint": true, "/NetworkDriver.DeleteNetwork": true,
}

// call plays dockerd: a call whose connection fails because the daemon died
// is sent again once it is back (the plugin client retries), except the
// deletes dockerd forgets. It fails the test on an error answer.
func (d *daemon) call(path string, req any) map[string]any {
	d.t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		d.t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		code, out, err := d.raw(path, body)
		if errors.Is(err, errTransport) && attempt < 3 {
			d.restartClean()
			if forgotten[path] {
				return nil
			}
			continue
		}
		if err != nil || code != http.StatusOK {
			d.t.Fatalf("%s: status %d, %v, %v\nlog:\n%s", path, code, out, err, tail(d.log.String(), 4000))
		}
		return out
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// mynetLinks lists the links of the namespace named like mynet's.
func mynetLinks(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, n := range linkNames(t) {
		if strings.HasPrefix(n, "mn-") || strings.HasPrefix(n, "mnh") || strings.HasPrefix(n, "mnc") {
			out = append(out, n)
		}
	}
	return out
}

// allTaggedRules lists the rules of mynet's networks and endpoints in both
// families (not the shared ones, which are part of the base).
func allTaggedRules(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		b, err := exec.Command(cmd).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `--comment "mynet:`) && !strings.Contains(l, `"`+firewall.BaseTag+`"`) {
				out = append(out, l)
			}
		}
	}
	return out
}
