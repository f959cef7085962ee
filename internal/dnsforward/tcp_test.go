package dnsforward

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/mynet/mynet/internal/netutil"
)

// dialTCP is a client connection to 127.0.0.11:53 inside the sandbox.
func (s *sandbox) dialTCP() (net.Conn, error) {
	var c net.Conn
	err := netutil.InNetns(s.path, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", "127.0.0.11:53", 2*time.Second)
		return err
	})
	return c, err
}

// askOn asks name (A) over c, waiting at most wait, and returns the reply's header and A
// answers.
func askOn(c net.Conn, id uint16, name string, wait time.Duration) (dnsmessage.Header, []string, error) {
	_ = c.SetDeadline(time.Now().Add(wait))
	if err := writeTCP(c, query(id, name+".", dnsmessage.TypeA)); err != nil {
		return dnsmessage.Header{}, nil, err
	}
	msg, err := readTCP(c)
	if err != nil {
		return dnsmessage.Header{}, nil, err
	}
	var m dnsmessage.Message
	if err := m.Unpack(msg); err != nil {
		return dnsmessage.Header{}, nil, err
	}
	if m.ID != id {
		return m.Header, nil, fmt.Errorf("reply ID %#x, want %#x", m.ID, id)
	}
	var out []string
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			out = append(out, netip.AddrFrom4(r.A).String())
		}
	}
	return m.Header, out, nil
}

// Over TCP, names are answered as over UDP (Docker's first, mynet's for
// what Docker does not know), and an answer that did not fit in UDP comes
// whole: the client whose UDP answer was truncated gets it there.
func TestKernelForwarderAnswersOverTCP(t *testing.T) {
	s, f := servedSandbox(t)
	defer f.Close()

	c, err := s.dialTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One connection, questions one after another, as resolvers use it.
	for i, q := range []struct {
		name  string
		rcode dnsmessage.RCode
		want  int
		first string
	}{
		{"bbox1", dnsmessage.RCodeSuccess, 1, "10.0.0.5"},     // another host's: mynet's
		{"example", dnsmessage.RCodeSuccess, 1, "192.0.2.53"}, // Docker's, over Docker's TCP
		{"db", dnsmessage.RCodeSuccess, 1, "192.0.2.53"},      // Docker knows it: Docker's
		{"nobody", dnsmessage.RCodeNameError, 0, ""},          // no one's: Docker's NXDOMAIN
		{"quiet", dnsmessage.RCodeSuccess, 1, "10.0.0.7"},     // Docker silent: mynet's at dockerFirst
		{"many", dnsmessage.RCodeSuccess, 100, "10.0.1.1"},    // whole over TCP
		{"bbox1", dnsmessage.RCodeSuccess, 1, "10.0.0.5"},     // the connection still serves
	} {
		h, got, err := askOn(c, uint16(100+i), q.name, 3*time.Second)
		if err != nil || h.RCode != q.rcode || len(got) != q.want || (q.want > 0 && got[0] != q.first) || h.Truncated {
			t.Fatalf("%s over TCP: rcode %v, %d answers %v, TC %v, %v; want %v, %d from %s", q.name, h.RCode, len(got), got, h.Truncated, err, q.rcode, q.want, q.first)
		}
	}

	// The same over UDP: truncated to 512 bytes, TC set.
	h, ans, err := s.raw(query(7, "many.", dnsmessage.TypeA))
	if err != nil || !h.Truncated || len(ans) == 0 || len(ans) >= 100 {
		t.Fatalf("many over UDP: TC %v, %d answers, %v; want TC and fewer than 100", h.Truncated, len(ans), err)
	}

	// Once mynet is gone from the sandbox, TCP goes to Docker alone.
	f.Detach(s.path, "ep1")
	c2, err := s.dialTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if h, got, err := askOn(c2, 9, "bbox1", 3*time.Second); err != nil || h.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("bbox1 over TCP without mynet: %v %v %v, want Docker's NXDOMAIN", h.RCode, got, err)
	}
}

// One container cannot ask more than maxRate questions a second through
// mynet (maxBurst at once): the rest are dropped before they cost a
// lookup or reach Docker, and the container is answered again after.
func TestKernelForwarderBoundsAContainersRate(t *testing.T) {
	s, f := servedSandbox(t)
	defer f.Close()
	c, err := s.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := s.asked.Load()
	start := time.Now()
	const sent = 8000
	msg := query(1, "example.", dnsmessage.TypeA)
	for i := range sent { // 4000 a second, in bursts the socket's buffer holds
		_, _ = c.Write(msg)
		if i%200 == 199 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond) // Docker's resolver reads what was passed
	passed := s.asked.Load() - before
	// No more than the bucket held and refilled since the first question.
	bound := int64(maxBurst + maxRate*time.Since(start).Seconds())
	t.Logf("%d questions in %v: %d passed to Docker (bound %d)", sent, took.Round(time.Millisecond), passed, bound)
	if passed > bound || passed == 0 {
		t.Fatalf("%d of %d questions reached Docker in %v, want at most %d", passed, sent, took, bound)
	}
	eventually(t, "answered again after the flood", func() error {
		got, err := s.ask("bbox1")
		if err != nil || len(got) != 1 {
			return fmt.Errorf("%v %v", got, err)
		}
		return nil
	})
}
