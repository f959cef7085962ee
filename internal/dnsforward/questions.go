package dnsforward

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// question is one waiting on Docker's resolver.
type question struct {
	client *net.UDPAddr
	id     uint16
	at     time.Time
}

// serve reads the container's questions.
func (b *box) serve() {
	buf := make([]byte, 65535)
	for {
		n, client, err := b.listen.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		reply, pass := b.answer(buf[:n])
		switch {
		case reply != nil:
			_, _ = b.listen.WriteToUDP(reply, client)
		case pass:
			b.pass(buf[:n], client)
		}
	}
}

// answer is mynet's reply to a question it answers; else pass says
// whether to hand it to Docker (a message that is no question at all is
// dropped, as Docker would).
func (b *box) answer(msg []byte) (answer []byte, pass bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) == 0 {
		return nil, false
	}
	if h.OpCode != 0 || len(qs) != 1 || qs[0].Class != dnsmessage.ClassINET ||
		(qs[0].Type != dnsmessage.TypeA && qs[0].Type != dnsmessage.TypeAAAA) {
		return nil, true
	}
	q := qs[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	if name == "" || strings.Contains(name, ".") {
		return nil, true
	}
	addrs, local := b.f.cfg.Resolve(b.networks(), name)
	if local || len(addrs) == 0 {
		return nil, true
	}
	return reply(h, q, addrs), false
}

// reply answers q with addrs (IPv4; an AAAA question gets none).
func reply(h dnsmessage.Header, q dnsmessage.Question, addrs []netip.Addr) []byte {
	bld := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	bld.EnableCompression()
	_ = bld.StartQuestions()
	_ = bld.Question(q)
	_ = bld.StartAnswers()
	if q.Type == dnsmessage.TypeA {
		for _, a := range addrs {
			if a.Is4() {
				_ = bld.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: TTL}, dnsmessage.AResource{A: a.As4()})
			}
		}
	}
	out, err := bld.Finish()
	if err != nil {
		return nil
	}
	return out
}

var dockerDNS = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53}

// pass hands a question to Docker's resolver under an ID of the box's own.
func (b *box) pass(msg []byte, client *net.UDPAddr) {
	if len(msg) < 12 {
		return
	}
	now := time.Now()
	b.pmu.Lock()
	if len(b.pending) >= maxPending {
		for id, q := range b.pending {
			if now.Sub(q.at) > pendingFor {
				delete(b.pending, id)
			}
		}
	}
	if len(b.pending) >= maxPending {
		// A flood: the oldest question waiting is given up (its client
		// asks again), so a new one still gets through.
		var oldest uint16
		first := true
		for id, q := range b.pending {
			if first || q.at.Before(b.pending[oldest].at) {
				oldest, first = id, false
			}
		}
		delete(b.pending, oldest)
	}
	id := b.next
	for _, used := b.pending[id]; used; _, used = b.pending[id] {
		id++
	}
	b.next = id + 1
	b.pending[id] = question{client: client, id: binary.BigEndian.Uint16(msg), at: now}
	b.pmu.Unlock()
	binary.BigEndian.PutUint16(msg, id)
	_, _ = b.upstream.WriteToUDP(msg, dockerDNS)
}

// relay gives Docker's replies back to the containers that asked.
func (b *box) relay() {
	buf := make([]byte, 65535)
	for {
		n, _, err := b.upstream.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n < 12 {
			continue
		}
		id := binary.BigEndian.Uint16(buf)
		b.pmu.Lock()
		q, ok := b.pending[id]
		delete(b.pending, id)
		b.pmu.Unlock()
		if !ok {
			continue
		}
		binary.BigEndian.PutUint16(buf, q.id)
		_, _ = b.listen.WriteToUDP(buf[:n], q.client)
	}
}
