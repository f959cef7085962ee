package multihost

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mynet/mynet/test/mhtest"
	"github.com/mynet/mynet/test/testbin"
)

// pattern fills the pings whose bytes the underlay's capture looks for
// ("mynet-sealed!!!!" in hex).
const pattern = "6d796e65742d7365616c656421212121"

// capture records the underlay's UDP on host NAME's port until stop, and
// returns the raw packets and tcpdump's one-line summaries.
type capture struct {
	cmd    *exec.Cmd
	file   string
	stderr *testbin.Log // written by the command's goroutine, read by the test
}

func startCapture(t *testing.T, w *mhtest.World, host string) *capture {
	t.Helper()
	file := filepath.Join(t.TempDir(), "ul.pcap")
	cmd := exec.Command("ip", "netns", "exec", w.Underlay(), "tcpdump", "-i", "ul-"+host, "-n", "-U", "--immediate-mode", "-w", file, "udp")
	errBuf := &testbin.Log{}
	cmd.Stderr = errBuf
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !mhtest.WaitFor(5*time.Second, func() bool { return strings.Contains(errBuf.String(), "listening on") }) {
		t.Fatalf("tcpdump did not start: %s", errBuf.String())
	}
	return &capture{cmd: cmd, file: file, stderr: errBuf}
}

// stop ends the capture and returns the raw file and the summary lines.
func (c *capture) stop(t *testing.T) (raw []byte, lines string) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // what is on the wire reaches the file (-U)
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	_ = c.cmd.Wait()
	raw, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tcpdump", "-n", "-r", c.file).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	return raw, string(out) + c.stderr.String()
}

// pingPattern pings from c to ip count times, the payload filled with
// pattern; it reports how many answers came.
func pingPattern(c *mhtest.Container, ip string, count int) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", c.NS, "ping", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", "-p", pattern, "-s", "200", ip).CombinedOutput()
	return string(out), err
}

// An encrypted network and a plain one on the same two hosts: both carry
// their containers' traffic, the encrypted one's never in clear on the
// underlay (WireGuard's UDP only, no VXLAN, not one byte of a payload),
// at the MTU the overheads leave; the data plane outlives a kill -9 of
// the daemon (whose successor adopts the device) and fails closed while
// the userspace device is dead, until the daemon makes it again.
func TestEncryptedNetworkAcrossHosts(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	h1, h2 := w.Hosts[0], w.Hosts[1]
	logTunnelsOnFailure(t, w)
	plain1, plain2 := h1.CreateNetwork("plain", "10.50.0.0/24"), h2.CreateNetwork("plain", "")
	enc := map[string]string{"encrypted": ""}
	sealed1, sealed2 := h1.CreateNetworkWith("sealed", "10.51.0.0/24", enc), h2.CreateNetworkWith("sealed", "", enc)
	p1, p2 := plain1.Run(""), plain2.Run("")
	s1, s2 := sealed1.Run(""), sealed2.Run("")
	mhtest.Eventually(t, "plain ping across", func() error { return p1.Ping(p2.IP.Addr(), 0) })
	mhtest.Eventually(t, "encrypted ping across", func() error { return s1.Ping(s2.IP.Addr(), 0) })
	// Isolated from each other as any two networks, across hosts too.
	if err := p1.Ping(s2.IP.Addr(), 0); err == nil {
		t.Errorf("a plain network's container reached an encrypted network's on another host")
	}
	if err := s1.Ping(p2.IP.Addr(), 0); err == nil {
		t.Errorf("an encrypted network's container reached a plain network's on another host")
	}
	// TCP across both: request/response round trips.
	rr := buildRR(t)
	for _, pair := range [][2]*mhtest.Container{{p1, p2}, {s1, s2}} {
		background(t, pair[1].NS, rr, "serve", "7777")
		if out, err := exec.Command("ip", "netns", "exec", pair[0].NS, rr, "ping", pair[1].IP.Addr().String()+":7777", "200").CombinedOutput(); err != nil {
			t.Errorf("TCP from %s to %s: %v\n%s", pair[0].IP, pair[1].IP, err, out)
		}
	}
	if pid := h1.WireGuardPid(); pid == 0 {
		t.Fatalf("host1 runs no userspace WireGuard device (this kernel has no WireGuard):\n%s", mhtest.Tail(h1.Log(), 3000))
	}

	// MTU: 1500 less WireGuard's 60 less VXLAN's 50. A packet of exactly
	// 1390 bytes with DF set crosses; one byte more does not leave.
	out, _ := exec.Command("ip", "-n", h1.NS, "link", "show", "mn-"+sealed1.ID[:12]).Output()
	if !strings.Contains(string(out), "mtu 1390") {
		t.Errorf("the encrypted network's bridge:\n%s\nwant mtu 1390", out)
	}
	if err := s1.Ping(s2.IP.Addr(), 1390-28); err != nil {
		t.Errorf("a full-size DF packet across the encrypted network: %v", err)
	}
	if err := s1.Ping(s2.IP.Addr(), 1390-28+1); err == nil {
		t.Errorf("a DF packet one byte over the encrypted network's MTU got through")
	}

	// On the underlay: the plain network's payload shows in clear in VXLAN
	// (so the capture can see it), the encrypted one's does not, and only
	// WireGuard's port carries it.
	cap1 := startCapture(t, w, "h1")
	if out, err := pingPattern(p1, p2.IP.Addr().String(), 3); err != nil {
		t.Fatalf("plain pings: %v\n%s", err, out)
	}
	raw, lines := cap1.stop(t)
	if !bytes.Contains(raw, []byte("mynet-sealed!!!!")) || !strings.Contains(lines, ".4799:") {
		t.Fatalf("the capture does not show the plain network's payload in VXLAN (port 4799): the check below would prove nothing\n%s", lines)
	}
	cap2 := startCapture(t, w, "h1")
	if out, err := pingPattern(s1, s2.IP.Addr().String(), 5); err != nil {
		t.Fatalf("encrypted pings: %v\n%s", err, out)
	}
	raw, lines = cap2.stop(t)
	if bytes.Contains(raw, []byte("mynet-sealed!!!!")) {
		t.Errorf("the encrypted network's payload crossed the underlay in clear:\n%s", lines)
	}
	if strings.Contains(lines, ".4798:") || strings.Contains(lines, ".4799:") {
		t.Errorf("VXLAN on the underlay while only the encrypted network spoke:\n%s", lines)
	}
	if !strings.Contains(lines, ".4800:") {
		t.Errorf("no WireGuard (port 4800) on the underlay:\n%s", lines)
	}

	// kill -9 of the daemon: the tunnel carries on; the next daemon adopts
	// the device rather than making another.
	pid := h1.WireGuardPid()
	h1.Kill()
	if out, err := pingPattern(s1, s2.IP.Addr().String(), 3); err != nil {
		t.Errorf("encrypted traffic stopped with host1's daemon: %v\n%s", err, out)
	}
	h1.Restart()
	mhtest.Eventually(t, "encrypted ping after the restart", func() error { return s1.Ping(s2.IP.Addr(), 0) })
	if got := h1.WireGuardPid(); got != pid {
		t.Errorf("the restarted daemon made a new WireGuard device (pid %d, was %d): it should adopt the running one", got, pid)
	}

	// The userspace device killed (with no daemon to make it again yet):
	// nothing crosses, and nothing leaves in clear (the firewall and the
	// blackhole route); the next daemon makes it again, and the traffic is
	// back.
	cap3 := startCapture(t, w, "h1")
	h1.Kill()
	h1.KillWireGuard()
	if out, err := pingPattern(s1, s2.IP.Addr().String(), 3); err == nil {
		t.Errorf("pings crossed with the WireGuard device dead:\n%s", out)
	}
	h1.Restart()
	mhtest.Eventually(t, "encrypted ping once the device is made again", func() error { return s1.Ping(s2.IP.Addr(), 0) })
	raw, lines = cap3.stop(t)
	if bytes.Contains(raw, []byte("mynet-sealed!!!!")) || strings.Contains(lines, ".4798:") {
		t.Errorf("clear packets on the underlay around the device's death:\n%s", lines)
	}
	if got := h1.WireGuardPid(); got == 0 || got == pid {
		t.Errorf("WireGuard device process %d after the kill (was %d): want a new one", got, pid)
	}
	if !strings.Contains(h1.Log(), "userspace WireGuard device's process is gone") {
		t.Errorf("host1's log does not say it made the device again")
	}
}

// wireguardLines are a daemon's log lines about its WireGuard tunnel.
func wireguardLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "wireguard") || strings.Contains(l, "WireGuard") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// logTunnelsOnFailure logs, when the test failed, each host's links,
// routes, WireGuard device log and the daemon's lines about its tunnel.
func logTunnelsOnFailure(t *testing.T, w *mhtest.World) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, h := range w.Hosts {
			for _, args := range [][]string{{"addr"}, {"route"}} {
				out, _ := exec.Command("ip", append([]string{"-n", h.NS}, args...)...).CombinedOutput()
				t.Logf("%s ip %v:\n%s", h.Name, args, out)
			}
			out, _ := os.ReadFile(filepath.Join(h.Dir(), "wg-device.log"))
			t.Logf("%s wg-device.log:\n%s\n%s daemon:\n%s", h.Name, out, h.Name, wireguardLines(h.Log()))
		}
	})
}
