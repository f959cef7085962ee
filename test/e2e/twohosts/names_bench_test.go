package twohosts

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

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
		_, err = p.AnswerHeader()
		return took, err == nil, nil
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
// alone (the same question with mynet stopped, which takes its redirect
// out).
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

		measure := func() []time.Duration {
			var out []time.Duration
			for range 500 {
				id++
				took, ok, err := lookup(conn, id, "asker")
				if err != nil || !ok {
					b.Fatalf("asker's own name: %v %v", ok, err)
				}
				out = append(out, took)
			}
			return out
		}
		through := measure()
		h2.stopMynet()
		alone := measure()
		h2.startMynet()
		b.ReportMetric(pct(alone, 0.5), "docker-p50-us")
		b.ReportMetric(pct(alone, 0.99), "docker-p99-us")
		b.ReportMetric(pct(through, 0.5), "mynet-p50-us")
		b.ReportMetric(pct(through, 0.99), "mynet-p99-us")
		b.ReportMetric(pct(through, 0.5)-pct(alone, 0.5), "extra-p50-us")
		poll.Eventually(b, "nb0 resolves again after mynet's restart", 15*time.Second, func() error {
			id++
			if _, ok, err := lookup(conn, id, "nb0"); err != nil || !ok {
				return fmt.Errorf("answered %v, %v", ok, err)
			}
			return nil
		})
		var answered []time.Duration
		for range 500 {
			id++
			took, ok, err := lookup(conn, id, "nb0")
			if err != nil || !ok {
				b.Fatalf("nb0: %v %v", ok, err)
			}
			answered = append(answered, took)
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
				took, ok, err := lookup(conn, id, q.name)
				if err != nil || !ok {
					b.Fatalf("%s during the churn: %v %v", q.name, ok, err)
				}
				*q.into = append(*q.into, took)
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
