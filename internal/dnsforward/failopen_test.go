package dnsforward

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/poll"
)

// childEnv makes the test binary a forwarder process of its own (serveChild)
// for the sandbox it names, so that tests can kill or freeze it as a
// mynet is killed or frozen.
const childEnv = "MYNET_DNSFORWARD_CHILD"

// serveChild runs forwarders for the sandbox at path until killed.
func serveChild(path string) {
	fw, err := firewall.New(firewall.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f := New(Config{
		Resolve: func(networks []string, name string) ([]netip.Addr, bool) {
			if name == "bbox1" {
				return []netip.Addr{netip.MustParseAddr("10.0.0.5")}, false
			}
			return nil, false
		},
		Enter: netutil.InNetns, Mark: firewall.DNSMark, OpenRedirect: openRedirect(fw),
		Flush: netutil.FlushDNSFlows,
	})
	f.Attach(path, "ep1", "blue")
	select {}
}

// startChild starts a forwarder process for s and waits until it answers.
func startChild(t *testing.T, s *sandbox) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), childEnv+"="+s.path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, "the forwarder process answers bbox1", func() error {
		return s.answers("bbox1", "10.0.0.5 2")
	})
	return cmd
}

// answers is nil when name's answer in s is want, asked once.
func (s *sandbox) answers(name string, want ...string) error {
	got, _, err := s.askTimeout(name, 150*time.Millisecond)
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("%s: %v %v, want %v", name, got, err, want)
	}
	return nil
}

// within waits until every check passes and returns how long it took;
// past limit the test fails (the promise: within 2 s).
func within(t *testing.T, what string, limit time.Duration, checks ...func() error) time.Duration {
	t.Helper()
	return poll.Eventually(t, what, limit, func() error {
		for _, c := range checks {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	})
}

// dockerAlone: this host's names and outside names answered by Docker,
// over UDP and over TCP.
func dockerAlone(s *sandbox) []func() error {
	return []func() error{
		func() error { return s.answers("here", "192.0.2.53 2") },
		func() error { return s.answers("example", "192.0.2.53 2") },
		func() error { return s.answersTCP("example", "192.0.2.53") },
	}
}

// answersTCP is nil when name's answer over TCP in s is want, asked once
// on a new connection.
func (s *sandbox) answersTCP(name string, want ...string) error {
	c, err := s.dialTCP()
	if err != nil {
		return err
	}
	defer c.Close()
	_, got, err := askOn(c, 3, name, 150*time.Millisecond)
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("%s over TCP: %v %v, want %v", name, got, err, want)
	}
	return nil
}

// Whatever ends mynet without a clean stop, the redirect it left lapses by
// itself: the container has Docker's resolver within a second or two.
func TestKernelRedirectFailsOpenWhenMynetIsKilled(t *testing.T) {
	s := newSandbox(t)
	child := startChild(t, s)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	gap := within(t, "Docker's answers after kill -9", 2*time.Second, dockerAlone(s)...)
	t.Logf("kill -9: Docker's resolver alone %v after the kill", gap.Round(time.Millisecond))
	// The rule is still there (no one removed it): it fails open by
	// construction, as after a rollback to a version that knows nothing of it.
	if s.redirects() == 0 {
		t.Fatal("the redirect is gone: this test no longer shows a rule left behind")
	}
	s.expect("bbox1") // other hosts' names wait for mynet

	// A new mynet takes the sandbox back.
	startChild(t, s)
	s.expect("here", "192.0.2.53 2")
	if n := s.redirects(); n != 2 {
		t.Errorf("%d redirects after the restart, want 2 (UDP, TCP)", n)
	}
}

func TestKernelRedirectFailsOpenWhileMynetIsFrozen(t *testing.T) {
	s := newSandbox(t)
	child := startChild(t, s)
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	gap := within(t, "Docker's answers while mynet is stopped", 2*time.Second, dockerAlone(s)...)
	t.Logf("SIGSTOP: Docker's resolver alone %v after the stop", gap.Round(time.Millisecond))
	if err := child.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	back := within(t, "mynet's answers after SIGCONT", 2*time.Second, func() error { return s.answers("bbox1", "10.0.0.5 2") })
	t.Logf("SIGCONT: other hosts' names back %v after", back.Round(time.Millisecond))
	s.expect("here", "192.0.2.53 2")
}

// Docker's answer wins for every name it knows; mynet answers when Docker
// says the name is unknown, or has not answered in time.
func TestKernelDockersAnswerWins(t *testing.T) {
	s := newSandbox(t)
	f := newForwarders(t)
	defer f.Close()
	f.Attach(s.path, "ep1", "blue")
	eventually(t, "mynet answers bbox1", func() error { return s.answers("bbox1", "10.0.0.5 2") })
	s.expect("db", "192.0.2.53 2") // another host's container, and an alias Docker knows here
	start := time.Now()
	got, _, err := s.askTimeout("quiet", 3*time.Second)
	if err != nil || strings.Join(got, ",") != "10.0.0.7 2" {
		t.Fatalf("quiet: %v %v, want mynet's answer once Docker kept silent", got, err)
	}
	if waited := time.Since(start); waited < dockerFirst {
		t.Errorf("quiet answered after %v, before Docker had its chance (%v)", waited, dockerFirst)
	}
}

// The redirect rules of earlier versions (iptables, at the top of nat
// OUTPUT; this one of a version before the lease, so it never lapsed) are
// removed when the forwarder opens.
func TestKernelEarlierRedirectRemoved(t *testing.T) {
	s := newSandbox(t)
	s.ipt(append([]string{"-t", "nat", "-I", "OUTPUT", "1"}, legacyRule(9)...)...)
	if got, err := s.ask("here"); err == nil { // the old redirect to a closed port: nothing answers
		t.Fatalf("here answered through a redirect to a closed port: %v", got)
	}
	f := newForwarders(t)
	defer f.Close()
	f.Attach(s.path, "ep1", "blue")
	eventually(t, "mynet answers bbox1", func() error { return s.answers("bbox1", "10.0.0.5 2") })
	if rules := s.ipt("-t", "nat", "-S", "OUTPUT"); strings.Contains(rules, "mynet:dns") {
		t.Errorf("an earlier version's rule is left:\n%s", rules)
	}
	if n := s.redirects(); n != 2 {
		t.Errorf("%d redirects in mynet's table, want 2 (UDP, TCP)", n)
	}
}

// With dockerd's nftables backend Docker's DNAT of 127.0.0.11 is a chain
// of its own at dstnat, registered here before mynet's: mynet's redirect
// comes first all the same (its chain's priority), and fails open as
// with iptables.
func TestKernelRedirectBeforeDockersNFTables(t *testing.T) {
	s := newSandboxNFT(t)
	s.expect("here", "192.0.2.53 2")
	child := startChild(t, s)
	s.expect("here", "192.0.2.53 2")
	if err := s.answersTCP("bbox1", "10.0.0.5"); err != nil {
		t.Error(err)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	within(t, "Docker's answers after kill -9", 2*time.Second, dockerAlone(s)...)
	s.expect("bbox1")
}

// legacyRule is the redirect as versions before the lease wrote it.
func legacyRule(port int) []string {
	return []string{"-d", "127.0.0.11/32", "-p", "udp", "-m", "udp", "--dport", "53",
		"-m", "mark", "!", "--mark", fmt.Sprintf("0x%x", firewall.DNSMark),
		"-m", "comment", "--comment", "mynet:dns",
		"-j", "DNAT", "--to-destination", fmt.Sprintf("127.0.0.11:%d", port)}
}

// A box whose open failed is tried again until it opens.
func TestKernelBoxOpenIsRetried(t *testing.T) {
	s := newSandbox(t)
	f := newForwarders(t)
	defer f.Close()
	fails := 2
	var mu sync.Mutex
	open := f.cfg.OpenRedirect
	f.cfg.OpenRedirect = func(path string) (Redirect, error) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return nil, errors.New("no redirect yet")
		}
		return open(path)
	}
	prev := openFirst
	openFirst = 50 * time.Millisecond
	t.Cleanup(func() { openFirst = prev })
	f.Attach(s.path, "ep1", "blue")
	eventually(t, "mynet answers bbox1 after two failed opens", func() error { return s.answers("bbox1", "10.0.0.5 2") })
}
