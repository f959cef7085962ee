// Package hostport reserves the host ports that published container ports
// use. mynet has no userland proxy: traffic to a published port is DNATed
// before it could reach a socket. A reservation is a socket bound to the
// host address and port and held open, so that no other process can take
// the port later, and so that a port already taken by a process or another
// container is a clear error when it is published. Binding port 0 lets the
// kernel pick an ephemeral port for `-p CONTAINERPORT`.
//
// TCP holds a listening socket (never accepted from), UDP a bound socket;
// SCTP a bound SCTP socket where the kernel has SCTP, else no reservation.
package hostport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
)

// Key names one reservation.
type Key struct {
	Proto string     // tcp, udp or sctp
	IP    netip.Addr // the host address; unspecified (0.0.0.0 or ::) for all
	Port  uint16
}

func (k Key) String() string {
	return net.JoinHostPort(k.IP.String(), strconv.Itoa(int(k.Port))) + "/" + k.Proto
}

// Reserver holds reservations.
type Reserver struct {
	mu   sync.Mutex // guards held
	held map[Key]io.Closer
}

// New returns an empty Reserver.
func New() *Reserver { return &Reserver{held: map[Key]io.Closer{}} }

// ErrInUse reports a host port that something else holds.
var ErrInUse = errors.New("host port is already in use")

// Reserve binds proto on ip at a port in [first, last] and returns the port
// it got. first 0 lets the kernel choose an ephemeral port. A port this
// Reserver already holds counts as taken.
func (r *Reserver) Reserve(proto string, ip netip.Addr, first, last uint16) (uint16, error) {
	if last < first {
		last = first
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var lastErr error
	for p := uint32(first); p <= uint32(last); p++ {
		port := uint16(p)
		if port != 0 {
			if _, ok := r.held[Key{proto, ip, port}]; ok {
				lastErr = fmt.Errorf("%s: %w (by another mynet container)", Key{proto, ip, port}, ErrInUse)
				continue
			}
		}
		c, got, err := bind(proto, ip, port)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				lastErr = fmt.Errorf("%s: %w", Key{proto, ip, port}, ErrInUse)
				continue
			}
			return 0, fmt.Errorf("reserve %s: %w", Key{proto, ip, port}, err)
		}
		r.held[Key{proto, ip, got}] = c
		return got, nil
	}
	return 0, lastErr
}

// Release gives a reservation up; releasing one that is not held is fine.
func (r *Reserver) Release(k Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.held[k]; ok {
		_ = c.Close()
		delete(r.held, k)
	}
}

func network(proto string, ip netip.Addr) string {
	if ip.Is4() {
		return proto + "4"
	}
	return proto + "6"
}

func bind(proto string, ip netip.Addr, port uint16) (io.Closer, uint16, error) {
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
	switch proto {
	case "tcp":
		l, err := net.Listen(network(proto, ip), addr)
		if err != nil {
			return nil, 0, err
		}
		return l, uint16(l.Addr().(*net.TCPAddr).Port), nil
	case "udp":
		c, err := net.ListenPacket(network(proto, ip), addr)
		if err != nil {
			return nil, 0, err
		}
		return c, uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
	case "sctp":
		return bindSCTP(ip, port)
	}
	return nil, 0, fmt.Errorf("unknown protocol %q", proto)
}

// bindSCTP binds an SCTP socket; without SCTP in the kernel the port is
// published unreserved (the DNAT works all the same).
func bindSCTP(ip netip.Addr, port uint16) (io.Closer, uint16, error) {
	family := syscall.AF_INET
	if ip.Is6() {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, syscall.IPPROTO_SCTP)
	if err != nil {
		if port == 0 {
			return nil, 0, fmt.Errorf("SCTP is not available to pick a port: %w", err)
		}
		return io.NopCloser(nil), port, nil
	}
	var sa syscall.Sockaddr
	if ip.Is4() {
		sa = &syscall.SockaddrInet4{Port: int(port), Addr: ip.As4()}
	} else {
		sa = &syscall.SockaddrInet6{Port: int(port), Addr: ip.As16()}
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, 0, err
	}
	got, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, 0, err
	}
	switch a := got.(type) {
	case *syscall.SockaddrInet4:
		port = uint16(a.Port)
	case *syscall.SockaddrInet6:
		port = uint16(a.Port)
	}
	return fdCloser(fd), port, nil
}

type fdCloser int

func (f fdCloser) Close() error { return syscall.Close(int(f)) }
