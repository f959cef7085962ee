package netutil

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// AnnounceARP sends a gratuitous ARP out of a bridge to all its ports: "ip
// is at mac" (arping -U -I BRIDGE -s IP, with MAC as the sender). Linux
// updates an existing neighbour entry on such an announcement, so the
// containers on this host stop sending to the MAC an address had before it
// moved to another container or host. It needs CAP_NET_RAW.
func AnnounceARP(bridge string, ip netip.Addr, mac net.HardwareAddr) error {
	if !ip.Is4() || len(mac) != 6 {
		return fmt.Errorf("announce %s at %s: want an IPv4 address and an Ethernet MAC", ip, mac)
	}
	ifi, err := net.InterfaceByName(bridge)
	if err != nil {
		return fmt.Errorf("announce on %q: %w", bridge, err)
	}
	proto := htons(unix.ETH_P_ARP)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return fmt.Errorf("announce on %q: packet socket: %w", bridge, err)
	}
	defer unix.Close(fd)
	frame := make([]byte, 0, 42)
	broadcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	frame = append(frame, broadcast...)
	frame = append(frame, ifi.HardwareAddr...)
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_ARP)
	frame = binary.BigEndian.AppendUint16(frame, 1)             // hardware: Ethernet
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_IP) // protocol: IPv4
	frame = append(frame, 6, 4)
	frame = binary.BigEndian.AppendUint16(frame, 1) // request: a gratuitous ARP asks for its own address
	a := ip.As4()
	frame = append(frame, mac...)
	frame = append(frame, a[:]...)
	frame = append(frame, 0, 0, 0, 0, 0, 0)
	frame = append(frame, a[:]...)
	to := &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index, Halen: 6}
	copy(to.Addr[:], broadcast)
	if err := unix.Sendto(fd, frame, 0, to); err != nil {
		return fmt.Errorf("announce %s on %q: %w", ip, bridge, err)
	}
	return nil
}

// AnnounceARP is the package function, for the driver's linksAPI.
func (l *Links) AnnounceARP(bridge string, ip netip.Addr, mac net.HardwareAddr) error {
	return AnnounceARP(bridge, ip, mac)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
