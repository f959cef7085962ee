package dnsforward

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/nstest"
	"github.com/mynet/mynet/internal/poll"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		serveChild(path)
	}
	nstest.Main(m)
}

// sandbox is a network namespace as Docker makes a container's: lo up,
// Docker's resolver on 127.0.0.11 at a port of its own, and Docker's rules
// sending 127.0.0.11:53 to it. The fake resolver answers every A question
// with 192.0.2.53 (Docker's answer).
type sandbox struct {
	t     *testing.T
	path  string
	ipt   func(args ...string) string
	asked atomic.Int64 // questions Docker's resolver got over UDP
}

func newSandbox(t *testing.T) *sandbox { return newSandboxOf(t, false) }

// newSandboxNFT is a sandbox of a dockerd with --firewall-backend=nftables:
// Docker's DNAT of 127.0.0.11 in its table docker-dns, at dstnat.
func newSandboxNFT(t *testing.T) *sandbox { return newSandboxOf(t, true) }

func newSandboxOf(t *testing.T, nft bool) *sandbox {
	t.Helper()
	nstest.Require(t)
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := &sandbox{t: t, path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)}
	s.ipt = func(args ...string) string {
		t.Helper()
		out, err := exec.Command("nsenter", append([]string{"--net=" + s.path, "iptables"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("iptables %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out, err := exec.Command("nsenter", "--net="+s.path, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	var docker *net.UDPConn
	if err := netutil.InNetns(s.path, func() error {
		var err error
		docker, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker.Close() })
	go fakeDocker(docker, &s.asked)
	var dockerTCP *net.TCPListener
	if err := netutil.InNetns(s.path, func() error {
		var err error
		dockerTCP, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 11)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dockerTCP.Close() })
	go fakeDockerTCP(dockerTCP)
	port := docker.LocalAddr().(*net.UDPAddr).Port
	if nft {
		s.nft("-f", "-", fmt.Sprintf(`table ip docker-dns {
	chain dns-dnat {
		type nat hook output priority -100; policy accept;
		ip daddr 127.0.0.11 udp dport 53 counter dnat to 127.0.0.11:%d
		ip daddr 127.0.0.11 tcp dport 53 counter dnat to %s
	}
}
`, port, dockerTCP.Addr()))
		return s
	}
	s.ipt("-t", "nat", "-N", "DOCKER_OUTPUT")
	s.ipt("-t", "nat", "-A", "DOCKER_OUTPUT", "-d", "127.0.0.11/32", "-p", "udp", "--dport", "53", "-j", "DNAT", "--to-destination", fmt.Sprintf("127.0.0.11:%d", port))
	s.ipt("-t", "nat", "-A", "DOCKER_OUTPUT", "-d", "127.0.0.11/32", "-p", "tcp", "--dport", "53", "-j", "DNAT", "--to-destination", dockerTCP.Addr().String())
	s.dockerJump()
	return s
}

// nft runs nft in the sandbox, with stdin.
func (s *sandbox) nft(args ...string) string {
	s.t.Helper()
	stdin := ""
	if len(args) > 0 && args[len(args)-2] == "-" {
		stdin, args = args[len(args)-1], args[:len(args)-1]
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + s.path, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// redirects counts mynet's redirect rules in the sandbox (its nftables
// table, netutil.DNSNAT).
func (s *sandbox) redirects() int {
	out, err := exec.Command("nsenter", "--net="+s.path, "nft", "list", "table", "ip", firewall.DNSTable).CombinedOutput()
	if err != nil {
		return 0 // no table
	}
	return strings.Count(string(out), `comment "mynet:dns`)
}

// openRedirect is the daemon's: mynet's table, and an earlier version's
// iptables rules removed.
func openRedirect(fw *firewall.Firewall) func(path string) (Redirect, error) {
	return func(path string) (Redirect, error) {
		r, err := netutil.OpenDNSNAT(path, firewall.DNSTable, firewall.DNSMark)
		if err != nil {
			return nil, err
		}
		if err := fw.RemoveOldDNSRedirect(func(fn func() error) error { return netutil.InNetns(path, fn) }); err != nil {
			r.Close()
			return nil, err
		}
		return r, nil
	}
}

// dockerJump is what dockerd does when it starts the sandbox's resolver.
func (s *sandbox) dockerJump() {
	s.ipt("-t", "nat", "-I", "OUTPUT", "-d", "127.0.0.11/32", "-j", "DOCKER_OUTPUT")
}

// dockerNames are the names the fake Docker resolver knows (its own
// containers, aliases, and what the host's DNS servers answer): 192.0.2.53.
// "quiet" it never answers (it asked servers that do not answer); every
// other name is NXDOMAIN.
var dockerNames = map[string]bool{"here": true, "example": true, "db": true}

func fakeDocker(c *net.UDPConn, asked *atomic.Int64) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		asked.Add(1)
		if out := dockerAnswer(buf[:n], 512); out != nil {
			_, _ = c.WriteToUDP(out, from)
		}
	}
}

// dockerAnswer is the fake resolver's reply to msg (nil: none).
func dockerAnswer(msg []byte, size int) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	switch {
	case name == "quiet":
		return nil
	case dockerNames[name]:
		return reply(h, q, []netip.Addr{netip.MustParseAddr("192.0.2.53")}, size)
	default:
		return failure(h, &q, dnsmessage.RCodeNameError)
	}
}

// fakeDockerTCP is Docker's resolver over TCP: the same answers.
func fakeDockerTCP(l *net.TCPListener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				msg, err := readTCP(c)
				if err != nil {
					return
				}
				out := dockerAnswer(msg, 65535)
				if out == nil {
					continue
				}
				if writeTCP(c, out) != nil {
					return
				}
			}
		}()
	}
}

// dial is a client socket to 127.0.0.11:53 inside the sandbox.
func (s *sandbox) dial() (*net.UDPConn, error) {
	var c *net.UDPConn
	err := netutil.InNetns(s.path, func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53})
		return err
	})
	return c, err
}

// ask asks 127.0.0.11:53 from inside the sandbox, as a container does, and
// returns the A answers.
func (s *sandbox) ask(name string) ([]string, error) {
	got, _, err := s.askTimeout(name, 2*time.Second)
	return got, err
}

// askTimeout asks, waiting at most wait, and returns the A answers and
// the reply's rcode.
func (s *sandbox) askTimeout(name string, wait time.Duration) ([]string, dnsmessage.RCode, error) {
	c, err := s.dial()
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x1234, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	msg, _ := b.Finish()
	if _, err := c.Write(msg); err != nil {
		return nil, 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return nil, 0, err
	}
	var p dnsmessage.Parser
	h, err := p.Start(buf[:n])
	if err != nil {
		return nil, 0, err
	}
	if h.ID != 0x1234 {
		return nil, 0, fmt.Errorf("reply ID %#x, want 0x1234", h.ID)
	}
	_ = p.SkipAllQuestions()
	var out []string
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			break
		}
		a, err := p.AResource()
		if err != nil {
			return nil, 0, err
		}
		out = append(out, fmt.Sprintf("%s %d", netip.AddrFrom4(a.A), rh.TTL))
	}
	return out, h.RCode, nil
}

func (s *sandbox) expect(name string, want ...string) {
	s.t.Helper()
	got, err := s.ask(name)
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		s.t.Fatalf("%s: %v %v, want %v", name, got, err, want)
	}
}

func newForwarders(t *testing.T) *Forwarders {
	t.Helper()
	fw, err := firewall.New(firewall.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{
		Resolve: func(networks []string, name string) ([]netip.Addr, bool) {
			if !slicesContain(networks, "blue") {
				return nil, false
			}
			switch name {
			case "bbox1":
				return []netip.Addr{netip.MustParseAddr("10.0.0.5")}, false
			case "here":
				return []netip.Addr{netip.MustParseAddr("10.0.0.6")}, true
			case "db", "quiet": // other hosts' containers; Docker has "db" (an alias of this host's)
				return []netip.Addr{netip.MustParseAddr("10.0.0.7")}, false
			case "many": // a service name with more replicas than 512 bytes hold
				var out []netip.Addr
				for i := range 100 {
					out = append(out, netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}))
				}
				return out, false
			}
			return nil, false
		},
		ResolveAddr: func(networks []string, ip netip.Addr) (string, bool) {
			if slicesContain(networks, "blue") && ip == netip.MustParseAddr("10.0.0.5") {
				return "bbox1.ov", true
			}
			return "", false
		},
		Enter: netutil.InNetns, Mark: firewall.DNSMark, OpenRedirect: openRedirect(fw),
		Flush: netutil.FlushDNSFlows,
	})
}

// servedSandbox is a sandbox on the network "blue" whose box answers
// already (other hosts' bbox1 resolves).
func servedSandbox(t *testing.T) (*sandbox, *Forwarders) {
	t.Helper()
	s := newSandbox(t)
	f := newForwarders(t)
	t.Cleanup(f.Close) // also when the wait fails (Close again is nothing)
	f.Attach(s.path, "ep1", "blue")
	eventually(t, "mynet answers bbox1", func() error {
		got, err := s.ask("bbox1")
		if err != nil || len(got) != 1 {
			return fmt.Errorf("%v %v", got, err)
		}
		return nil
	})
	return s, f
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	poll.Eventually(t, what, 10*time.Second, cond)
}

func TestKernelForwarderAnswersOtherHostsNamesOnly(t *testing.T) {
	s := newSandbox(t)
	s.expect("bbox1") // before mynet: Docker does not know it
	f := newForwarders(t)
	defer f.Close()
	f.Attach(s.path, "ep1", "blue")
	eventually(t, "mynet answers bbox1", func() error {
		got, err := s.ask("bbox1")
		if err != nil || len(got) != 1 || got[0] != "10.0.0.5 2" {
			return fmt.Errorf("%v %v", got, err)
		}
		return nil
	})
	s.expect("here", "192.0.2.53 2")    // a name of this host: Docker's
	s.expect("example", "192.0.2.53 2") // anything else: Docker's
	s.expect("db", "192.0.2.53 2")      // a name Docker knows: Docker's, whoever else has it
	s.expect("nobody")                  // no one's: Docker's NXDOMAIN
	s.expect("BBOX1", "10.0.0.5 2")     // names are case-insensitive

	// dockerd starts the resolver after the Join: its jump goes on top
	// of nat OUTPUT, after mynet's chain all the same.
	s.dockerJump()
	eventually(t, "mynet's redirect still first", func() error {
		got, err := s.ask("bbox1")
		if err != nil || len(got) != 1 || got[0] != "10.0.0.5 2" {
			return fmt.Errorf("%v %v", got, err)
		}
		return nil
	})
	if n := s.redirects(); n != 2 {
		t.Errorf("%d redirects in the sandbox, want 2 (UDP, TCP)", n)
	}

	// Another network's sandbox is not answered.
	other := newSandbox(t)
	f.Attach(other.path, "ep2", "green")
	eventually(t, "the green sandbox has its forwarder", func() error {
		if other.redirects() == 0 {
			return fmt.Errorf("no redirect")
		}
		return nil
	})
	other.expect("bbox1")

	// The last endpoint's going takes the redirect away: Docker alone.
	f.Detach(s.path, "ep1")
	s.expect("bbox1")
	if s.redirects() != 0 {
		t.Error("the redirect outlived the sandbox's last cluster endpoint")
	}
	// Close (mynet stopping) leaves no redirect anywhere.
	f.Close()
	if other.redirects() != 0 {
		t.Error("the redirect outlived mynet")
	}
	other.expect("example", "192.0.2.53 2")
}

func TestKernelForwarderSurvivesBadInputAndFloods(t *testing.T) {
	s, f := servedSandbox(t)
	defer f.Close()
	c, err := s.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	junk := [][]byte{{}, {1}, make([]byte, 12), []byte("not a dns message at all, just bytes"), make([]byte, 4000)}
	for range 3000 {
		for _, j := range junk {
			_, _ = c.Write(j)
		}
	}
	// Answers go on (a client asks again when a question of it was lost
	// in the flood, as resolvers do).
	for _, q := range []struct{ name, want string }{{"bbox1", "10.0.0.5 2"}, {"example", "192.0.2.53 2"}} {
		eventually(t, q.name+" after the flood", func() error {
			got, err := s.ask(q.name)
			if err != nil || strings.Join(got, ",") != q.want {
				return fmt.Errorf("%v %v", got, err)
			}
			return nil
		})
	}
	if _, err := os.Stat(s.path); err != nil {
		t.Fatal(err)
	}
}
