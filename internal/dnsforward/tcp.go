package dnsforward

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Over TCP (a client whose UDP answer came truncated asks again there, and
// some resolvers always do), a box answers as over UDP: each question goes
// to Docker's resolver first, over a TCP connection of the box's own,
// opened from the sandbox with the mark (so through Docker's own TCP
// rule), and mynet's answer is given only when Docker does not know the
// name or has not answered within dockerFirst. The upstream connection is
// the client connection's alone, so its replies need no IDs of the box's;
// a reply counts only with the question's ID and question section.

// maxConns bounds a sandbox's open TCP connections to the box; tcpIdle is
// how long one is kept without a question (Docker's resolver and most
// servers close idle ones within seconds).
const (
	maxConns = 64
	tcpIdle  = 10 * time.Second
)

// serveTCP accepts the container's TCP connections until the box closes.
func (b *box) serveTCP() {
	for {
		c, err := b.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // out of descriptors, say: not a busy loop
			continue
		}
		b.cmu.Lock()
		full := len(b.conns) >= maxConns
		if !full {
			b.conns[c] = struct{}{}
		}
		b.cmu.Unlock()
		if full {
			c.Close()
			continue
		}
		go b.serveConn(c)
	}
}

// serveConn answers one client connection's questions, one after another.
func (b *box) serveConn(c net.Conn) {
	var up net.Conn
	defer func() {
		if up != nil {
			up.Close()
		}
		b.cmu.Lock()
		delete(b.conns, c)
		b.cmu.Unlock()
		c.Close()
	}()
	for {
		_ = c.SetReadDeadline(time.Now().Add(tcpIdle))
		msg, err := readTCP(c)
		if err != nil {
			return
		}
		if !b.allow() {
			continue
		}
		v := b.judge(msg, true)
		out := v.now
		switch {
		case v.drop:
			return
		case out == nil:
			out, up = b.askTCP(up, msg, v)
		}
		if out == nil {
			return // neither Docker nor mynet has an answer: closed, as a server that gave up
		}
		_ = c.SetWriteDeadline(time.Now().Add(pendingFor))
		if err := writeTCP(c, out); err != nil {
			return
		}
	}
}

// askTCP asks Docker's resolver over up (dialled when nil) and returns
// the reply the client gets, and the connection to use next (nil: closed).
func (b *box) askTCP(up net.Conn, msg []byte, v verdict) ([]byte, net.Conn) {
	if up == nil {
		err := b.enter(func() error {
			var err error
			up, err = b.markedDialer().DialContext(context.Background(), "tcp4", dockerDNS.String())
			return err
		})
		if err != nil {
			return v.cluster, nil
		}
	}
	wait := pendingFor
	if v.cluster != nil {
		wait = dockerFirst
	}
	_ = up.SetDeadline(time.Now().Add(wait))
	if err := writeTCP(up, msg); err != nil {
		up.Close()
		return v.cluster, nil
	}
	reply, err := readTCP(up)
	if err != nil {
		up.Close() // a late reply would answer the wrong question
		return v.cluster, nil
	}
	var p dnsmessage.Parser
	h, err := p.Start(reply)
	if err != nil || !h.Response || h.ID != v.h.ID {
		up.Close()
		return v.cluster, nil
	}
	if q, err := p.Question(); err != nil || !sameQuestion(q, v.q) {
		up.Close()
		return v.cluster, nil
	}
	if v.cluster != nil && unknownToDocker(h.RCode) {
		return v.cluster, up
	}
	return reply, up
}

// readTCP reads one length-prefixed DNS message.
func readTCP(c net.Conn) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// writeTCP writes one length-prefixed DNS message.
func writeTCP(c net.Conn, msg []byte) error {
	out := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(out, uint16(len(msg)))
	copy(out[2:], msg)
	_, err := c.Write(out)
	return err
}
