package dnsforward

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// raw sends msg from a client socket in s and returns the parsed reply.
func (s *sandbox) raw(msg []byte) (dnsmessage.Header, []dnsmessage.Resource, error) {
	c, err := s.dial()
	if err != nil {
		return dnsmessage.Header{}, nil, err
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		return dnsmessage.Header{}, nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return dnsmessage.Header{}, nil, err
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		return dnsmessage.Header{}, nil, err
	}
	return m.Header, m.Answers, nil
}

func query(id uint16, name string, typ dnsmessage.Type) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	msg, _ := b.Finish()
	return msg
}

// PTR of another host's container is answered in the sandbox (never asked
// of the host's DNS servers); what is not a question gets Docker's
// answer or FORMERR, never silence.
func TestKernelForwarderAnswersPTRAndMalformed(t *testing.T) {
	s := newSandbox(t)
	f := newForwarders(t)
	defer f.Close()
	f.Attach(s.path, "ep1", "blue")
	eventually(t, "mynet answers bbox1", func() error { return s.answers("bbox1", "10.0.0.5 2") })

	h, ans, err := s.raw(query(7, "5.0.0.10.in-addr.arpa.", dnsmessage.TypePTR))
	if err != nil || h.ID != 7 || len(ans) != 1 {
		t.Fatalf("PTR of 10.0.0.5: %+v %v %v", h, ans, err)
	}
	if ptr, ok := ans[0].Body.(*dnsmessage.PTRResource); !ok || ptr.PTR.String() != "bbox1.ov." {
		t.Errorf("PTR answer %v, want bbox1.ov.", ans[0].Body)
	}
	// An address of no other host's container: Docker's answer (NXDOMAIN here).
	if h, _, err := s.raw(query(8, "9.0.0.10.in-addr.arpa.", dnsmessage.TypePTR)); err != nil || h.RCode != dnsmessage.RCodeNameError {
		t.Errorf("PTR of 10.0.0.9: %+v %v, want Docker's NXDOMAIN", h, err)
	}
	// Two questions in one message: FORMERR, with the client's ID.
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 9})
	_ = b.StartQuestions()
	for _, n := range []string{"a.", "b."} {
		_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(n), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	}
	two, _ := b.Finish()
	if h, _, err := s.raw(two); err != nil || h.ID != 9 || h.RCode != dnsmessage.RCodeFormatError {
		t.Errorf("two questions: %+v %v, want FORMERR", h, err)
	}
	// A header with a question section that does not parse: FORMERR.
	broken := append(query(10, "bbox1.", dnsmessage.TypeA)[:12], 0xff, 0xff)
	if h, _, err := s.raw(broken); err != nil || h.ID != 10 || h.RCode != dnsmessage.RCodeFormatError {
		t.Errorf("broken question: %+v %v, want FORMERR", h, err)
	}
}

// An answer larger than the client takes is cut to fit, with TC set, as
// Docker's resolver does; an EDNS client gets up to its size.
func TestReplyFitsTheClient(t *testing.T) {
	t.Parallel()
	var addrs []netip.Addr
	for i := range 100 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}))
	}
	q := dnsmessage.Question{Name: dnsmessage.MustNewName("many."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	for _, size := range []int{512, 1232} {
		out := reply(dnsmessage.Header{ID: 1}, q, addrs, size)
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Fatal(err)
		}
		if len(out) > size || !m.Truncated || len(m.Answers) == 0 || len(m.Answers) >= 100 {
			t.Errorf("size %d: %d bytes, TC %v, %d answers", size, len(out), m.Truncated, len(m.Answers))
		}
	}
	// AAAA: the IPv6 addresses only; A: the IPv4 ones; a family the name
	// has none of: an empty answer.
	mixed := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00:40::5"), netip.MustParseAddr("fd00:40::6")}
	for typ, want := range map[dnsmessage.Type]int{dnsmessage.TypeA: 1, dnsmessage.TypeAAAA: 2} {
		q6 := dnsmessage.Question{Name: dnsmessage.MustNewName("c."), Type: typ, Class: dnsmessage.ClassINET}
		var m dnsmessage.Message
		if err := m.Unpack(reply(dnsmessage.Header{ID: 1}, q6, mixed, 512)); err != nil || len(m.Answers) != want {
			t.Errorf("%v of a dual-stack name: %d answers, want %d (%v)", typ, len(m.Answers), want, err)
		}
		for _, a := range m.Answers {
			if a.Header.Type != typ {
				t.Errorf("%v question answered with %v", typ, a.Header.Type)
			}
		}
		if err := m.Unpack(reply(dnsmessage.Header{ID: 1}, q6, mixed[:1], 512)); err != nil || (typ == dnsmessage.TypeAAAA) != (len(m.Answers) == 0) {
			t.Errorf("%v of an IPv4-only name: %d answers, %v", typ, len(m.Answers), err)
		}
	}
	out := reply(dnsmessage.Header{ID: 1}, q, addrs[:3], 512)
	var m dnsmessage.Message
	if err := m.Unpack(out); err != nil || m.Truncated || len(m.Answers) != 3 {
		t.Errorf("3 answers: TC %v, %d answers, %v", m.Truncated, len(m.Answers), err)
	}
}

func TestReverseAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"5.0.0.10.in-addr.arpa.": "10.0.0.5", "5.0.0.10.IN-ADDR.ARPA.": "10.0.0.5",
		"0.10.in-addr.arpa.": "", "x.0.0.10.in-addr.arpa.": "", "5.0.0.10.ip6.arpa.": "",
		"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa.":  "fd00:40::5",
		"B.A.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.0.0.0.0.D.F.IP6.ARPA.":  "fd00:40::ab",
		"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.ip6.arpa.":    "",
		"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa.":  "",
		"50.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.0.0.0.0.0.d.f.ip6.arpa.": ""} {
		ip, ok := reverseAddr(in)
		if got := fmt.Sprint(ip); (ok && got != want) || (!ok && want != "") {
			t.Errorf("%s: %v %v, want %q", in, ip, ok, want)
		}
	}
}
