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
// sender); for an IPv6 address, an unsolicited neighbour advertisement to
// all nodes with the override flag (RFC 4861 7.2.6). Linux updates an
// existing neighbour entry on such an announcement, so the containers on this host stop sending to the MAC an
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
	to6 := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: link.Attrs().Index, Halen: 6}
	copy(to6.Addr[:], allNodesMAC)
	frame := make([]byte, 0, 86)
	var errs []error
	for _, r := range rs {
		if r.IP.Is6() && len(r.MAC) == 6 {
			if err := unix.Sendto(l.arp, neighbourAdvert(frame[:0], hw, r), 0, to6); err != nil {
				errs = append(errs, fmt.Errorf("announce %s on %q: %w", r.IP, bridge, err))
			}
			continue
		}
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

// allNodesMAC is the Ethernet address of ff02::1.
var allNodesMAC = []byte{0x33, 0x33, 0, 0, 0, 1}

// neighbourAdvert appends to frame an Ethernet frame from src holding an
// unsolicited neighbour advertisement of r (r.IP is at r.MAC, override
// set, neither router nor solicited) from r.IP to all nodes, hop limit
// 255 as receivers require.
func neighbourAdvert(frame, src []byte, r Peer) []byte {
	const icmpLen = 4 + 4 + 16 + 8 // header, flags, target, target link-layer address option
	allNodes := netip.MustParseAddr("ff02::1").As16()
	ip := r.IP.As16()
	frame = append(frame, allNodesMAC...)
	frame = append(frame, src...)
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_IPV6)
	frame = append(frame, 0x60, 0, 0, 0) // version 6
	frame = binary.BigEndian.AppendUint16(frame, icmpLen)
	frame = append(frame, unix.IPPROTO_ICMPV6, 255)
	frame = append(frame, ip[:]...)
	frame = append(frame, allNodes[:]...)
	icmp := len(frame)
	frame = append(frame, 136, 0, 0, 0)  // neighbour advertisement; checksum below
	frame = append(frame, 0x20, 0, 0, 0) // override
	frame = append(frame, ip[:]...)
	frame = append(frame, 2, 1) // target link-layer address, 8 bytes
	frame = append(frame, r.MAC...)
	// The checksum covers a pseudo-header (source, destination, length,
	// next header) and the message.
	sum := uint32(0)
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	add(ip[:])
	add(allNodes[:])
	sum += icmpLen + unix.IPPROTO_ICMPV6
	add(frame[icmp:])
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(frame[icmp+2:], ^uint16(sum))
	return frame
}
