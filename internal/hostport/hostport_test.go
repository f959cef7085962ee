package hostport

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func TestReserveAndConflicts(t *testing.T) {
	r := New()
	port, err := r.Reserve("tcp", loopback, 0, 0)
	if err != nil || port == 0 {
		t.Fatalf("ephemeral: %d, %v", port, err)
	}
	k := Key{"tcp", loopback, port}
	// The same port again, from this Reserver: taken.
	if _, err := r.Reserve("tcp", loopback, port, port); !errors.Is(err, ErrInUse) {
		t.Errorf("second reservation: %v", err)
	}
	// Another process can no longer take it.
	if l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))); err == nil {
		l.Close()
		t.Error("a listener got a reserved port")
	}
	// UDP on the same number is a different port.
	if _, err := r.Reserve("udp", loopback, port, port); err != nil {
		t.Errorf("udp on the same number: %v", err)
	}
	r.Release(k)
	r.Release(k)
	if got, err := r.Reserve("tcp", loopback, port, port); err != nil || got != port {
		t.Errorf("after release: %d, %v", got, err)
	}
}

func TestPortTakenByAnotherProcess(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	r := New()
	if _, err := r.Reserve("tcp", loopback, port, port); !errors.Is(err, ErrInUse) {
		t.Errorf("port held by a listener: %v", err)
	}
	// All addresses conflicts with one specific address.
	if _, err := r.Reserve("tcp", netip.MustParseAddr("0.0.0.0"), port, port); !errors.Is(err, ErrInUse) {
		t.Errorf("0.0.0.0 over a 127.0.0.1 listener: %v", err)
	}
	// A range skips the taken port.
	got, err := r.Reserve("tcp", loopback, port, port+5)
	if err != nil || got == port {
		t.Errorf("range: %d, %v", got, err)
	}
}

// SCTP: where the kernel has it, the port is held like TCP's; where it has
// not, a fixed port is published unreserved and an ephemeral one cannot be
// picked.
func TestSCTP(t *testing.T) {
	r := New()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, syscall.IPPROTO_SCTP)
	if err == nil {
		syscall.Close(fd)
		port, err := r.Reserve("sctp", loopback, 0, 0)
		if err != nil || port == 0 {
			t.Fatalf("SCTP available, ephemeral reservation: %d, %v", port, err)
		}
		if _, err := r.Reserve("sctp", loopback, port, port); !errors.Is(err, ErrInUse) {
			t.Errorf("second SCTP reservation: %v", err)
		}
		return
	}
	if port, err := r.Reserve("sctp", loopback, 3868, 3868); err != nil || port != 3868 {
		t.Errorf("fixed SCTP port without kernel SCTP: %d, %v", port, err)
	}
	if _, err := r.Reserve("sctp", loopback, 0, 0); err == nil {
		t.Error("an ephemeral SCTP port was picked without kernel SCTP")
	}
	r.Release(Key{"sctp", loopback, 3868})
}
