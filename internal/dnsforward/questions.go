package dnsforward

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// question is one waiting on Docker's resolver.
type question struct {
	client *net.UDPAddr
	id     uint16              // the client's ID
	q      dnsmessage.Question // what was asked: a reply must echo it
	at     time.Time
	// cluster is mynet's answer, given when Docker does not know the
	// name (nil: Docker's answer only); timer gives it at dockerFirst.
	cluster []byte
	timer   *time.Timer
}

// serve reads the container's questions, and renews the redirect's lease
// while it does: if this loop stops, the redirect lapses.
func (b *box) serve() {
	buf := make([]byte, 65535)
	for {
		b.renew()
		_ = b.listen.SetReadDeadline(time.Now().Add(renewEvery))
		n, client, err := b.listen.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b.handle(buf[:n], client)
	}
}

// handle answers what mynet must answer itself (what does not parse,
// what Docker would refuse) and passes the rest to Docker's resolver,
// with mynet's answer ready when the name is another host's container.
func (b *box) handle(msg []byte, client *net.UDPAddr) {
	if !b.allow() {
		return
	}
	v := b.judge(msg, false)
	switch {
	case v.drop:
	case v.now != nil:
		_, _ = b.listen.WriteToUDP(v.now, client)
	default:
		b.pass(msg, client, v.h, v.q, v.cluster)
	}
}

// allow is false for a question over the sandbox's bound (maxRate).
func (b *box) allow() bool {
	if b.limit.Allow() {
		return true
	}
	if b.limited.Add(1) == 1 {
		b.log.Warn("the container asks more than 2000 questions a second: those over the bound are dropped (its resolver asks again)")
	}
	return false
}

// verdict is what becomes of one question.
type verdict struct {
	h    dnsmessage.Header
	q    dnsmessage.Question
	drop bool   // no header to answer, or a response: dropped, as Docker does
	now  []byte // mynet's reply, given at once (FORMERR, NOTIMP, PTR)
	// cluster is mynet's answer, given if Docker does not know the name
	// (nil: Docker's answer only).
	cluster []byte
}

// judge reads a question; over TCP, answers are not bounded by the
// client's UDP size.
func (b *box) judge(msg []byte, tcp bool) verdict {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return verdict{drop: true}
	}
	qs, err := p.AllQuestions()
	switch {
	case err != nil || len(qs) != 1:
		return verdict{h: h, now: failure(h, nil, dnsmessage.RCodeFormatError)}
	case h.OpCode != 0:
		return verdict{h: h, now: failure(h, nil, dnsmessage.RCodeNotImplemented)}
	}
	v := verdict{h: h, q: qs[0]}
	if v.now = b.reverseAnswer(h, v.q); v.now != nil {
		return v
	}
	size := 65535
	if !tcp {
		size = clientSize(&p)
	}
	v.cluster = b.clusterAnswer(h, v.q, size)
	return v
}

// clusterAnswer is mynet's reply to q when the name is another host's
// container on one of the sandbox's cluster networks and not a container
// of this host there; else nil.
func (b *box) clusterAnswer(h dnsmessage.Header, q dnsmessage.Question, size int) []byte {
	if q.Class != dnsmessage.ClassINET || (q.Type != dnsmessage.TypeA && q.Type != dnsmessage.TypeAAAA) {
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	if name == "" {
		return nil
	}
	addrs, local := b.f.cfg.Resolve(b.networks(), name)
	if local || len(addrs) == 0 {
		return nil
	}
	return reply(h, q, addrs, size)
}

// clientSize is the largest UDP reply the client takes: its EDNS size, or
// 512.
func clientSize(p *dnsmessage.Parser) int {
	if err := p.SkipAllAnswers(); err != nil {
		return 512
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return 512
	}
	for {
		rh, err := p.AdditionalHeader()
		if err != nil {
			return 512
		}
		if rh.Type == dnsmessage.TypeOPT {
			if n := int(rh.Class); n > 512 {
				return min(n, 65535)
			}
			return 512
		}
		if err := p.SkipAdditional(); err != nil {
			return 512
		}
	}
}

// reply answers q with those of addrs of its family (IPv4 for A, IPv6
// for AAAA; none: an empty answer, as Docker's resolver gives for a name
// it has without that family) in at most size bytes: the answers that do
// not fit are left out and TC set, as Docker's resolver truncates, so the
// client asks again over TCP.
func reply(h dnsmessage.Header, q dnsmessage.Question, addrs []netip.Addr, size int) []byte {
	var fam []netip.Addr
	for _, a := range addrs {
		if a.Is4() == (q.Type == dnsmessage.TypeA) {
			fam = append(fam, a)
		}
	}
	for n := len(fam); n >= 0; n-- {
		out := build(h, q, fam[:n], n < len(fam))
		if out != nil && len(out) <= size {
			return out
		}
	}
	return nil
}

func build(h dnsmessage.Header, q dnsmessage.Question, addrs []netip.Addr, truncated bool) []byte {
	bld := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, Truncated: truncated})
	bld.EnableCompression()
	_ = bld.StartQuestions()
	_ = bld.Question(q)
	_ = bld.StartAnswers()
	for _, a := range addrs {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: TTL}
		if a.Is4() {
			_ = bld.AResource(rh, dnsmessage.AResource{A: a.As4()})
		} else {
			_ = bld.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, err := bld.Finish()
	if err != nil {
		return nil
	}
	return out
}

// failure is a reply of rcode alone to h (and q, when there is one).
func failure(h dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode) []byte {
	bld := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode})
	if q != nil {
		_ = bld.StartQuestions()
		_ = bld.Question(*q)
	}
	out, _ := bld.Finish()
	return out
}

var dockerDNS = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53}

// pass hands a question to Docker's resolver under a random ID of the
// box's own; with cluster, mynet's answer is given if Docker does not know
// the name, or has not answered within dockerFirst.
func (b *box) pass(msg []byte, client *net.UDPAddr, h dnsmessage.Header, q dnsmessage.Question, cluster []byte) {
	now := time.Now()
	b.pmu.Lock()
	if len(b.pending) >= maxPending {
		b.dropStale(now)
	}
	id := uint16(rand.N(1 << 16))
	for _, used := b.pending[id]; used; _, used = b.pending[id] {
		id = uint16(rand.N(1 << 16))
	}
	w := &question{client: client, id: h.ID, q: q, at: now, cluster: cluster}
	if cluster != nil {
		w.timer = time.AfterFunc(dockerFirst, func() { b.giveCluster(id, w) })
	}
	b.pending[id] = w
	b.pmu.Unlock()
	out := make([]byte, len(msg))
	copy(out, msg)
	binary.BigEndian.PutUint16(out, id)
	_, _ = b.upstream.Write(out)
}

// dropStale forgets questions that waited past pendingFor and, in a
// flood, the oldest one (its client asks again), so a new one still gets
// through. Called with pmu held.
func (b *box) dropStale(now time.Time) {
	for id, q := range b.pending {
		if now.Sub(q.at) > pendingFor {
			b.forget(id, q)
		}
	}
	if len(b.pending) < maxPending {
		return
	}
	var oldest uint16
	var at time.Time
	for id, q := range b.pending {
		if at.IsZero() || q.at.Before(at) {
			oldest, at = id, q.at
		}
	}
	b.forget(oldest, b.pending[oldest])
}

func (b *box) forget(id uint16, q *question) {
	if q.timer != nil {
		q.timer.Stop()
	}
	delete(b.pending, id)
}

// giveCluster answers a question Docker has not answered in time with
// mynet's answer.
func (b *box) giveCluster(id uint16, w *question) {
	b.pmu.Lock()
	if b.pending[id] != w {
		b.pmu.Unlock()
		return
	}
	delete(b.pending, id)
	b.pmu.Unlock()
	_, _ = b.listen.WriteToUDP(w.cluster, w.client)
}

// relay gives Docker's replies back to the containers that asked: a reply
// counts only for a question waiting under its ID with the same question
// section. Where Docker does not know a name that is another host's
// container, mynet's answer goes instead.
func (b *box) relay() {
	buf := make([]byte, 65535)
	for {
		n, err := b.upstream.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil || !h.Response {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		b.pmu.Lock()
		w := b.pending[h.ID]
		if w == nil || !sameQuestion(w.q, q) {
			b.pmu.Unlock()
			continue
		}
		b.forget(h.ID, w)
		b.pmu.Unlock()
		if w.cluster != nil && unknownToDocker(h.RCode) {
			_, _ = b.listen.WriteToUDP(w.cluster, w.client)
			continue
		}
		binary.BigEndian.PutUint16(buf, w.id)
		_, _ = b.listen.WriteToUDP(buf[:n], w.client)
	}
}

// unknownToDocker: Docker's resolver, and the servers it asked, do not
// have the name (or could not say).
func unknownToDocker(rc dnsmessage.RCode) bool {
	return rc == dnsmessage.RCodeNameError || rc == dnsmessage.RCodeServerFailure || rc == dnsmessage.RCodeRefused
}

func sameQuestion(a, b dnsmessage.Question) bool {
	return a.Type == b.Type && a.Class == b.Class && strings.EqualFold(a.Name.String(), b.Name.String())
}

// reverseAnswer answers a PTR question for the address of another host's
// container on one of the sandbox's cluster networks (Docker's resolver
// does not know it and would ask the host's DNS servers: the question
// would leave the host); else nil.
func (b *box) reverseAnswer(h dnsmessage.Header, q dnsmessage.Question) []byte {
	if b.f.cfg.ResolveAddr == nil || q.Type != dnsmessage.TypePTR || q.Class != dnsmessage.ClassINET {
		return nil
	}
	ip, ok := reverseAddr(q.Name.String())
	if !ok {
		return nil
	}
	name, ok := b.f.cfg.ResolveAddr(b.networks(), ip)
	if !ok {
		return nil
	}
	target, err := dnsmessage.NewName(name + ".")
	if err != nil {
		return nil
	}
	bld := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	bld.EnableCompression()
	_ = bld.StartQuestions()
	_ = bld.Question(q)
	_ = bld.StartAnswers()
	_ = bld.PTRResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: TTL}, dnsmessage.PTRResource{PTR: target})
	out, err := bld.Finish()
	if err != nil {
		return nil
	}
	return out
}
