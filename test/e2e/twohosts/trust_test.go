package twohosts

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/poll"
)

// outsideResolver is a DNS server of the test's own on the underlay (in a
// namespace of its own, at addr), standing for the host's upstream DNS:
// it answers outside.test with 192.0.2.99 and NXDOMAIN to the rest.
func outsideResolver(t *testing.T, c *cluster, addr string) {
	t.Helper()
	ns := c.world.Attach("dns", addr)
	var conn *net.UDPConn
	if err := netutil.InNetns("/run/netns/"+ns, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addr), Port: 53})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
			known := strings.EqualFold(q.Name.String(), "outside.test.")
			if !known {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			_ = b.StartQuestions()
			_ = b.Question(q)
			if known && q.Type == dnsmessage.TypeA {
				_ = b.StartAnswers()
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: [4]byte{192, 0, 2, 99}})
			}
			msg, _ := b.Finish()
			_, _ = conn.WriteToUDP(msg, from)
		}
	}()
}

// lookup is nslookup of name in container on h, given a second at most
// (busybox's nslookup has no timeout of its own): ok when the answer has
// want.
func (h *host) lookup(container, name, want string) error {
	out, err := h.docker("exec", container, "timeout", "1", "nslookup", name)
	if err != nil || !strings.Contains(out, want) {
		return fmt.Errorf("nslookup %s in %s: %v %s (want %s)", name, container, err, out, want)
	}
	return nil
}

// gap polls the checks after a fault at since: it returns how long after
// since the first round that passed began, failing the test when no
// round begun within limit passed.
func gap(t *testing.T, what string, since time.Time, limit time.Duration, checks ...func() error) time.Duration {
	t.Helper()
	for {
		began := time.Now()
		var err error
		for _, c := range checks {
			if err = c(); err != nil {
				break
			}
		}
		if err == nil {
			return began.Sub(since)
		}
		if began.Sub(since) > limit {
			t.Fatalf("%s: no lookup begun within %v of the fault passed: %v", what, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNamesSurviveMynet: whatever ends or freezes host2's mynet (kill -9,
// SIGSTOP, its rule left with no process behind it), host2's containers
// resolve their own host's names and outside names within 2 s, and other
// hosts' names again within 2 s of mynet serving again. Docker's answer
// wins for a name Docker knows (an alias on host2 over a container of that
// name on host1). Aliases, name.network and a rename resolve across hosts.
func TestNamesSurviveMynet(t *testing.T) {
	c := newCluster(t, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	const dnsAddr = "198.18.0.53"
	outsideResolver(t, c, dnsAddr)

	h1.must(c.net("ov_trust")...)
	t.Cleanup(func() { removeEverywhere(c, "ov_trust") })
	waitNetwork(t, h2, "ov_trust", true)
	h1.run("app1", "--network", "ov_trust", "--dns", dnsAddr)
	h2.run("app2", "--network", "ov_trust", "--dns", dnsAddr)
	h2.run("pg", "--network", "ov_trust")
	ip1, pg := h1.ip("app1", "ov_trust"), h2.ip("pg", "ov_trust")
	sameHost := func() error { return h2.lookup("app2", "pg", pg) }
	outside := func() error { return h2.lookup("app2", "outside.test", "192.0.2.99") }
	otherHost := func() error { return h2.lookup("app2", "app1", ip1) }
	poll.Eventually(t, "app2 resolves app1, pg and outside.test", 15*time.Second, func() error {
		return errors.Join(otherHost(), sameHost(), outside())
	})

	// Docker's answer wins: --name db on host1, --network-alias db on host2.
	h1.run("db", "--network", "ov_trust")
	h2.run("pg2", "--network", "ov_trust", "--network-alias", "db")
	db1, pg2 := h1.ip("db", "ov_trust"), h2.ip("pg2", "ov_trust")
	poll.Eventually(t, "host2 has db's record", 10*time.Second, func() error { return h2.lookup("app2", "pg2", pg2) })
	for range 5 {
		if out, err := h2.docker("exec", "app2", "nslookup", "db"); err != nil || !strings.Contains(out, pg2) || strings.Contains(out, db1) {
			t.Fatalf("nslookup db on host2: %v %s; want the alias's %s (host2), never %s (host1's db)", err, out, pg2, db1)
		}
	}

	// A Compose service name (a network alias) and the network's own
	// suffix resolve across hosts; docker rename is followed on every host.
	h1.run("api1", "--network", "ov_trust", "--network-alias", "api")
	api1 := h1.ip("api1", "ov_trust")
	poll.Eventually(t, "host2 resolves host1's alias api", 10*time.Second, func() error { return h2.lookup("app2", "api", api1) })
	poll.Eventually(t, "host2 resolves api1.ov_trust", 10*time.Second, func() error { return h2.lookup("app2", "api1.ov_trust", api1) })
	h1.must("rename", "api1", "api2")
	renamed := time.Now()
	took := gap(t, "the rename on host2", renamed, 3*time.Second, func() error { return h2.lookup("app2", "api2", api1) })
	t.Logf("docker rename on host1: the new name resolves on host2 %v after", took.Round(time.Millisecond))

	// kill -9: the rule stays, no process behind it.
	kill := time.Now()
	if err := h2.mynet.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = h2.mynet.Wait()
	h2.mynet = nil
	t.Logf("kill -9: same-host and outside names %v after", gap(t, "after kill -9", kill, 2*time.Second, sameHost, outside).Round(time.Millisecond))
	// Left so for a while (a rollback to a version without the feature
	// leaves the same): names still resolve.
	for range 3 {
		if err := errors.Join(sameHost(), outside()); err != nil {
			t.Fatalf("with the rule left and no mynet: %v", err)
		}
	}
	h2.startMynet()
	serving := time.Now()
	t.Logf("mynet back: other host's names %v after it was ready", gap(t, "after the restart", serving, 2*time.Second, otherHost).Round(time.Millisecond))

	// SIGSTOP, then SIGCONT.
	stop := time.Now()
	if err := h2.mynet.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { _ = h2.mynet.Process.Signal(syscall.SIGCONT) }
	t.Cleanup(cont)
	t.Logf("SIGSTOP: same-host and outside names %v after", gap(t, "after SIGSTOP", stop, 2*time.Second, sameHost, outside).Round(time.Millisecond))
	cont()
	resumed := time.Now()
	t.Logf("SIGCONT: other host's names %v after", gap(t, "after SIGCONT", resumed, 2*time.Second, otherHost).Round(time.Millisecond))
}
