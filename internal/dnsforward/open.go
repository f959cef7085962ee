package dnsforward

import (
	"context"
	"net"
	"syscall"
	"time"
)

// markedDialer dials from the sandbox past the redirect: its packets carry
// the mark the rule lets through, to Docker's own rules.
func (b *box) markedDialer() *net.Dialer {
	return &net.Dialer{Timeout: time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, b.f.cfg.Mark)
		}); err != nil {
			return err
		}
		return serr
	}}
}

// open opens the sockets in the sandbox (UDP and TCP on 127.0.0.11, and
// the UDP one to Docker's resolver), and the redirect, renewed, to them;
// what it made is undone when a step fails.
func (b *box) open() error {
	var listen, upstream *net.UDPConn
	var tcp *net.TCPListener
	err := b.enter(func() error {
		var err error
		if listen, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11)}); err != nil {
			return err
		}
		if tcp, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 11)}); err != nil {
			listen.Close()
			return err
		}
		// Connected: only Docker's resolver's replies are read.
		c, err := b.markedDialer().DialContext(context.Background(), "udp4", dockerDNS.String())
		if err != nil {
			listen.Close()
			tcp.Close()
			return err
		}
		upstream = c.(*net.UDPConn)
		return nil
	})
	if err != nil {
		return err
	}
	undo := func() {
		listen.Close()
		tcp.Close()
		upstream.Close()
	}
	redirect, err := b.f.cfg.OpenRedirect(b.path)
	if err == nil {
		if err = redirect.Renew(leaseTTL); err != nil {
			redirect.Close()
		}
	}
	if err != nil {
		undo()
		return err
	}
	port := uint16(listen.LocalAddr().(*net.UDPAddr).Port)
	tcpPort := uint16(tcp.Addr().(*net.TCPAddr).Port)
	if _, err := redirect.Ensure(port, tcpPort); err != nil {
		undo()
		_ = redirect.Remove()
		redirect.Close()
		return err
	}
	b.listen, b.upstream, b.port, b.tcp, b.tcpPort, b.redirect, b.renewed = listen, upstream, port, tcp, tcpPort, redirect, time.Now()
	b.flush(port)
	return nil
}

// renew keeps the redirect alive; the serving loop calls it, so a loop
// that is stuck lets the redirect lapse.
func (b *box) renew() {
	now := time.Now()
	if now.Sub(b.renewed) < renewEvery {
		return
	}
	err := b.redirect.Renew(leaseTTL)
	switch {
	case err != nil && !b.renewErr:
		b.log.WithError(err).Warn("could not renew the DNS redirect: the container asks Docker's resolver alone until it is renewed")
	case err == nil && b.renewErr:
		b.log.Info("DNS redirect renewed again")
	}
	b.renewErr = err != nil
	if err == nil {
		b.renewed = now
	}
}

// openRetrying opens the box, trying again after a pause that doubles up
// to openMax while it fails (the namespace not ready yet, the kernel out
// of something), until the box is closed: false then.
func (b *box) openRetrying() bool {
	defer close(b.ready)
	pause := openFirst
	for failures := 0; ; failures++ {
		err := b.open()
		if err == nil {
			if failures > 0 {
				b.log.WithField("tries", failures+1).Info("name forwarder started after failing")
			}
			return true
		}
		if failures == 0 {
			b.log.WithError(err).Warn("no name forwarder in this sandbox yet (names of other hosts' containers do not resolve there); trying again")
		} else {
			b.log.WithError(err).Debug("name forwarder still fails to start")
		}
		select {
		case <-b.stop:
			return false
		case <-time.After(pause):
		}
		pause = min(2*pause, openMax)
	}
}

// openFirst and openMax bound the pauses between tries to open a box.
var (
	openFirst = 500 * time.Millisecond
	openMax   = 30 * time.Second
)
