package twohosts

import (
	"fmt"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/poll"
)

// inContainer is a UDP socket to 127.0.0.11:53 opened in a container's
// network namespace (through its process: /proc/PID/ns/net), as the
// container's own resolver asks.
func inContainer(tb testing.TB, h *host, container string) *net.UDPConn {
	tb.Helper()
	pid := h.must("inspect", "-f", "{{.State.Pid}}", container)
	var c *net.UDPConn
	if err := netutil.InNetns("/proc/"+pid+"/ns/net", func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53})
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// questionSocket is a new UDP socket to 127.0.0.11:53 in the container's
// namespace, one per question as a resolver (glibc's, musl's) opens it.
// With a port (markedPorts) it carries the firewall mark of mynet's own
// questions, which mynet's redirect lets through to Docker's resolver:
// Docker's resolver alone, while mynet runs. Those come from ports of
// their own, each used once: a marked and an unmarked socket on the same
// port within conntrack's UDP timeout would be one flow to the kernel,
// sent where the first was.
func questionSocket(tb testing.TB, nsPath string, port int) *net.UDPConn {
	tb.Helper()
	d := net.Dialer{}
	if port != 0 {
		d.LocalAddr = &net.UDPAddr{Port: port}
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, firewall.DNSMark)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	var c net.Conn
	if err := netutil.InNetns(nsPath, func() error {
		var err error
		c, err = d.Dial("udp4", "127.0.0.11:53")
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	return c.(*net.UDPConn)
}

// markedPorts are the source ports of the marked questions (below the
// kernel's ephemeral range, which the unmarked ones take).
const markedPorts = 20000

// ask is one question on a socket of its own, marked when port is not 0.
func ask(tb testing.TB, nsPath string, port int, id uint16, name string) time.Duration {
	tb.Helper()
	c := questionSocket(tb, nsPath, port)
	defer c.Close()
	took, ok, err := lookup(c, id, name)
	if err != nil || !ok {
		tb.Fatalf("%s (from port %d): answered %v, %v", name, port, ok, err)
	}
	return took
}

// lookup asks for name's A records once and says how long the answer took
// and whether it had an address.
func lookup(c *net.UDPConn, id uint16, name string) (time.Duration, bool, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	msg, _ := b.Finish()
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		return 0, false, err
	}
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		n, err := c.Read(buf)
		if err != nil {
			return 0, false, err
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil || h.ID != id {
			continue // a late answer to an earlier question
		}
		took := time.Since(start)
		_ = p.SkipAllQuestions()
		if _, err = p.AnswerHeader(); err != nil {
			return took, false, fmt.Errorf("no answer (rcode %v, truncated %v)", h.RCode, h.Truncated)
		}
		return took, true, nil
	}
}

func pct(d []time.Duration, p float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(float64(len(s)-1)*p)].Microseconds())
}

// BenchmarkNames measures names across hosts on two real Engine 29 hosts
// (make bench, workload 12): how soon after `docker run` returns on one
// host a container's name resolves in a container of the other, and what
// mynet's forwarder adds to a question it passes to Docker's resolver (a
// name of the asking container's own host), against Docker's resolver
// alone (the same question on a socket with mynet's mark, which its
// redirect lets by), the two alternated, a new socket per question.
func BenchmarkNames(b *testing.B) {
	c := newCluster(b, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	h1.must(c.net("bench_names")...)
	b.Cleanup(func() { removeEverywhere(c, "bench_names") })
	poll.Eventually(b, "host2 has bench_names", 15*time.Second, func() error {
		if !h2.hasNetwork("bench_names") {
			return fmt.Errorf("absent")
		}
		return nil
	})
	h2.run("asker", "--network", "bench_names")
	conn := inContainer(b, h2, "asker")
	id := uint16(0)
	b.ResetTimer()
	for range b.N {
		var visible []time.Duration
		for i := range 30 {
			name := fmt.Sprintf("nb%d", i)
			h1.run(name, "--network", "bench_names")
			ran := time.Now()
			for {
				id++
				_, ok, err := lookup(conn, id, name)
				if err == nil && ok {
					break
				}
				if time.Since(ran) > 10*time.Second {
					b.Fatalf("%s does not resolve on host2 (%v)", name, err)
				}
				time.Sleep(time.Millisecond)
			}
			visible = append(visible, time.Since(ran))
		}
		b.ReportMetric(pct(visible, 0.5)/1000, "visible-p50-ms")
		b.ReportMetric(pct(visible, 0.99)/1000, "visible-p99-ms")

		// The same question through mynet and to Docker's resolver alone,
		// alternated ABBA, a new socket each.
		ns := "/proc/" + h2.must("inspect", "-f", "{{.State.Pid}}", "asker") + "/ns/net"
		const questions = 500
		var through, alone []time.Duration
		for i := range questions {
			for _, mark := range [][]bool{{false, true}, {true, false}}[i%2] {
				id++
				port := 0
				if mark {
					port = markedPorts + i
				}
				took := ask(b, ns, port, id, "asker")
				if mark {
					alone = append(alone, took)
				} else {
					through = append(through, took)
				}
			}
		}
		b.ReportMetric(questions, "questions")
		b.ReportMetric(float64(len(visible)), "visible-samples")
		b.ReportMetric(pct(alone, 0.5), "docker-p50-us")
		b.ReportMetric(pct(alone, 0.99), "docker-p99-us")
		b.ReportMetric(pct(through, 0.5), "mynet-p50-us")
		b.ReportMetric(pct(through, 0.99), "mynet-p99-us")
		b.ReportMetric(pct(through, 0.5)-pct(alone, 0.5), "extra-p50-us")
		var answered []time.Duration
		for range questions {
			id++
			answered = append(answered, ask(b, ns, 0, id, "nb0"))
		}
		b.ReportMetric(pct(answered, 0.5), "answered-p50-us")
		b.ReportMetric(pct(answered, 0.99), "answered-p99-us")

		// The same two questions, one a millisecond, while 50 networks of
		// mynet are created and then removed on host2 (the driver busy
		// with them: the DNS path takes none of its locks).
		done := make(chan error, 1)
		go func() {
			var err error
			for i := range 50 {
				if out, e := h2.docker("network", "create", "-d", "mynet", "--subnet", fmt.Sprintf("10.199.%d.0/24", i), fmt.Sprintf("churn%d", i)); e != nil && err == nil {
					err = fmt.Errorf("%v: %s", e, out)
				}
			}
			for i := range 50 {
				if out, e := h2.docker("network", "rm", fmt.Sprintf("churn%d", i)); e != nil && err == nil {
					err = fmt.Errorf("%v: %s", e, out)
				}
			}
			done <- err
		}()
		var churnAnswered, churnPassed []time.Duration
	churn:
		for {
			select {
			case err := <-done:
				if err != nil {
					b.Fatal(err)
				}
				break churn
			default:
			}
			for _, q := range []struct {
				name string
				into *[]time.Duration
			}{{"nb0", &churnAnswered}, {"asker", &churnPassed}} {
				id++
				*q.into = append(*q.into, ask(b, ns, 0, id, q.name))
			}
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(float64(len(churnAnswered)), "churn-questions")
		b.ReportMetric(pct(churnAnswered, 0.5), "churn-answered-p50-us")
		b.ReportMetric(pct(churnAnswered, 0.99), "churn-answered-p99-us")
		b.ReportMetric(pct(churnPassed, 0.5), "churn-passed-p50-us")
		b.ReportMetric(pct(churnPassed, 0.99), "churn-passed-p99-us")
	}
}
