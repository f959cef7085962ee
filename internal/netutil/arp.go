package netutil

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// AnnounceARP sends a gratuitous ARP out of a bridge to all its ports for
// each remote: "IP is at MAC" (arping -U -I BRIDGE -s IP, with MAC as the
// sender). Linux updates an existing neighbour entry on such an
// announcement, so the containers on this host stop sending to the MAC an
// address had before it moved to another container or host. They go out
// of one packet socket, opened at the first call without a protocol (it
// only sends) and kept: closing a packet socket waits for an RCU grace
// period, milliseconds. It needs CAP_NET_RAW.
func (l *Links) AnnounceARP(bridge string, rs []Peer) error {
	if len(rs) == 0 {
		return nil
	}
	link, err := linkByName(l.h, bridge)
	if err != nil {
		return fmt.Errorf("announce on %q: %w", bridge, err)
	}
	hw := link.Attrs().HardwareAddr
	if len(hw) != 6 {
		return fmt.Errorf("announce on %q: it has no Ethernet address", bridge)
	}
	l.arpMu.Lock()
	defer l.arpMu.Unlock()
	if l.arp < 0 {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("announce on %q: packet socket: %w", bridge, err)
		}
		l.arp = fd
	}
	broadcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: link.Attrs().Index, Halen: 6}
	copy(to.Addr[:], broadcast)
	frame := make([]byte, 0, 42)
	var errs []error
	for _, r := range rs {
		if !r.IP.Is4() || len(r.MAC) != 6 {
			errs = append(errs, fmt.Errorf("announce %s at %s: want an IPv4 address and an Ethernet MAC", r.IP, r.MAC))
			continue
		}
		frame = frame[:0]
		frame = append(frame, broadcast...)
		frame = append(frame, hw...)
		frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_ARP)
		frame = binary.BigEndian.AppendUint16(frame, 1)             // hardware: Ethernet
		frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_IP) // protocol: IPv4
		frame = append(frame, 6, 4)
		frame = binary.BigEndian.AppendUint16(frame, 1) // request: a gratuitous ARP asks for its own address
		a := r.IP.As4()
		frame = append(frame, r.MAC...)
		frame = append(frame, a[:]...)
		frame = append(frame, 0, 0, 0, 0, 0, 0)
		frame = append(frame, a[:]...)
		if err := unix.Sendto(l.arp, frame, 0, to); err != nil {
			errs = append(errs, fmt.Errorf("announce %s on %q: %w", r.IP, bridge, err))
		}
	}
	return errors.Join(errs...)
}

// AnnounceOwn announces ip at the bridge's own MAC (a gratuitous ARP out of
// all its ports): after a bridge is rebuilt, with a new MAC, containers
// that cached the gateway at the old one send to it at once, rather than
// after their neighbour entry goes stale and is probed (tens of seconds).
func (l *Links) AnnounceOwn(bridge string, ip netip.Addr) error {
	link, err := linkByName(l.h, bridge)
	if err != nil {
		return fmt.Errorf("announce on %q: %w", bridge, err)
	}
	return l.AnnounceARP(bridge, []Peer{{IP: ip, MAC: link.Attrs().HardwareAddr}})
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
