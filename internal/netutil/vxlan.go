package netutil

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VXLANOverhead is what VXLAN over IPv4 adds to a frame: outer IPv4 (20),
// UDP (8), VXLAN (8) and the inner Ethernet header (14); over IPv6 the
// outer header is 40 bytes (VXLANOverhead6).
const (
	VXLANOverhead  = 50
	VXLANOverhead6 = 70
)

// VXLANPort is the IANA port for VXLAN, a device's when its config gives
// none.
const VXLANPort = 4789

// VXLANConfig is one cluster network's VXLAN device.
type VXLANConfig struct {
	Name   string
	VNI    uint32
	Port   int        // UDP port, this host's and its peers' (0: VXLANPort)
	Local  netip.Addr // this host's underlay address, the tunnel's source
	Bridge string     // the network's bridge, which the device joins
	MTU    int
}

func (cfg VXLANConfig) port() int {
	if cfg.Port == 0 {
		return VXLANPort
	}
	return cfg.Port
}

// EnsureVXLAN makes the VXLAN device exist as cfg says, a port of its
// bridge and up (ip link add NAME type vxlan id VNI local LOCAL dstport PORT
// nolearning proxy; ip link set NAME master BRIDGE mtu MTU up). Learning is
// off: mynet programs every remote MAC itself (SetPeers), and proxy ARP
// answers the containers' ARP from those entries. A device of that name with
// another VNI, port or source, left by a crash or a collision, is replaced.
func (l *Links) EnsureVXLAN(cfg VXLANConfig) error {
	br, err := linkByName(l.h, cfg.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %q of VXLAN device %q: %w", cfg.Bridge, cfg.Name, err)
	}
	link, err := linkByName(l.h, cfg.Name)
	switch {
	case err == nil:
		v, ok := link.(*netlink.Vxlan)
		if !ok || v.VxlanId != int(cfg.VNI) || v.Port != cfg.port() || !v.SrcAddr.Equal(net.IP(cfg.Local.AsSlice())) || v.Learning || !v.Proxy {
			if err := l.h.LinkDel(link); err != nil {
				return fmt.Errorf("replace stale VXLAN device %q: %w", cfg.Name, err)
			}
			link = nil
		}
	case isNotFound(err):
		link = nil
	default:
		return fmt.Errorf("look up link %q: %w", cfg.Name, err)
	}
	if link == nil {
		v := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: cfg.Name, MTU: cfg.MTU, TxQLen: -1},
			VxlanId:   int(cfg.VNI), SrcAddr: net.IP(cfg.Local.AsSlice()), Port: cfg.port(),
			Learning: false, Proxy: true,
		}
		if err := l.h.LinkAdd(v); err != nil {
			return fmt.Errorf("create VXLAN device %q (VNI %d): %w", cfg.Name, cfg.VNI, err)
		}
		if link, err = linkByName(l.h, cfg.Name); err != nil {
			return fmt.Errorf("look up new VXLAN device %q: %w", cfg.Name, err)
		}
	}
	if cfg.MTU > 0 && link.Attrs().MTU != cfg.MTU {
		if err := l.h.LinkSetMTU(link, cfg.MTU); err != nil {
			return fmt.Errorf("set MTU of %q: %w", cfg.Name, err)
		}
	}
	if link.Attrs().MasterIndex != br.Attrs().Index {
		if err := l.h.LinkSetMasterByIndex(link, br.Attrs().Index); err != nil {
			return fmt.Errorf("attach %q to bridge %q: %w", cfg.Name, cfg.Bridge, err)
		}
	}
	if err := l.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %q up: %w", cfg.Name, err)
	}
	return nil
}

// Peer is a container on another host, as the VXLAN device must know it.
type Peer struct {
	IP   netip.Addr // the container's address, IPv4 or IPv6
	MAC  net.HardwareAddr
	VTEP netip.Addr // its host's underlay address
	// SharedMAC says, to DelPeer, that another address of the same
	// container (its other family's) still uses the MAC: its fdb entry
	// stays.
	SharedMAC bool
}

// neighFamily is the neighbour table of ip's family.
func neighFamily(ip netip.Addr) int {
	if ip.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func (l *Links) vxlanIndex(name string) (int, error) {
	link, err := linkByName(l.h, name)
	if err != nil {
		return 0, fmt.Errorf("VXLAN device %q: %w", name, err)
	}
	return link.Attrs().Index, nil
}

// SetPeers programs remote containers on the device, looked up once for
// them all. For each, its MAC goes to its host (bridge fdb replace MAC dev
// NAME dst VTEP self permanent), and its address answers ARP (an IPv4
// address) or neighbour solicitations (an IPv6 one: the proxy flag answers
// both, the kernel's neigh_reduce) with that MAC (ip neigh replace IP
// lladdr MAC dev NAME nud permanent). Both replace
// whatever was there, so an address that moved to another container or
// host is followed.
func (l *Links) SetPeers(name string, rs []Peer) error {
	if len(rs) == 0 {
		return nil
	}
	idx, err := l.vxlanIndex(name)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rs {
		fdb := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, HardwareAddr: r.MAC, IP: net.IP(r.VTEP.AsSlice())}
		if err := l.h.NeighSet(fdb); err != nil {
			errs = append(errs, fmt.Errorf("fdb entry %s -> %s on %q: %w", r.MAC, r.VTEP, name, err))
			continue
		}
		nb := &netlink.Neigh{LinkIndex: idx, Family: neighFamily(r.IP), State: netlink.NUD_PERMANENT,
			HardwareAddr: r.MAC, IP: net.IP(r.IP.AsSlice())}
		if err := l.h.NeighSet(nb); err != nil {
			errs = append(errs, fmt.Errorf("neighbour %s -> %s on %q: %w", r.IP, r.MAC, name, err))
		}
	}
	return errors.Join(errs...)
}

// DelPeer removes a remote container's entries (ip neigh del; bridge fdb
// del, unless r.SharedMAC); entries already gone are not an error.
func (l *Links) DelPeer(name string, r Peer) error {
	idx, err := l.vxlanIndex(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	nb := &netlink.Neigh{LinkIndex: idx, Family: neighFamily(r.IP), IP: net.IP(r.IP.AsSlice())}
	if err := l.h.NeighDel(nb); err != nil && !isGone(err) {
		return fmt.Errorf("delete neighbour %s on %q: %w", r.IP, name, err)
	}
	if r.SharedMAC {
		return nil
	}
	fdb := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		HardwareAddr: r.MAC, IP: net.IP(r.VTEP.AsSlice())}
	if err := l.h.NeighDel(fdb); err != nil && !isGone(err) {
		return fmt.Errorf("delete fdb entry %s on %q: %w", r.MAC, name, err)
	}
	return nil
}

func isGone(err error) bool { return isNotFound(err) || err == unix.ENOENT }

// Remotes lists what the device has programmed: the permanent neighbour
// entries, each with the VTEP its MAC's fdb entry points to (ip neigh show
// dev NAME nud permanent; bridge fdb show dev NAME).
func (l *Links) Peers(name string) ([]Peer, error) {
	idx, err := l.vxlanIndex(name)
	if err != nil {
		return nil, err
	}
	fdbs, err := neighList(l.h, idx, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("list fdb of %q: %w", name, err)
	}
	vtep := map[string]netip.Addr{}
	for _, f := range fdbs {
		if a, ok := netip.AddrFromSlice(f.IP); ok && f.HardwareAddr != nil {
			vtep[f.HardwareAddr.String()] = a.Unmap()
		}
	}
	neighs, err := neighList(l.h, idx, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("list neighbours of %q: %w", name, err)
	}
	neighs6, err := neighList(l.h, idx, unix.AF_INET6)
	if err != nil {
		return nil, fmt.Errorf("list IPv6 neighbours of %q: %w", name, err)
	}
	neighs = append(neighs, neighs6...)
	var out []Peer
	for _, n := range neighs {
		if n.State&netlink.NUD_PERMANENT == 0 || n.HardwareAddr == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		out = append(out, Peer{IP: ip.Unmap(), MAC: n.HardwareAddr, VTEP: vtep[n.HardwareAddr.String()]})
	}
	return out, nil
}

// Underlay finds this host's underlay: addr may be an IPv4 or IPv6 address
// on one of its links, or a link's name (its first IPv4 address, else its
// first global IPv6 one). It returns the address and the MTU of the link
// that holds it.
func (l *Links) Underlay(addr string) (netip.Addr, int, error) {
	if ip, err := netip.ParseAddr(addr); err == nil {
		ip = ip.Unmap()
		if ip.Is6() && (ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() || ip.IsLoopback()) {
			return netip.Addr{}, 0, fmt.Errorf("%s is not a global or unique local address: a host's VTEP must be reachable by the others", ip)
		}
		links, err := linkList(l.h)
		if err != nil {
			return netip.Addr{}, 0, err
		}
		for _, link := range links {
			addrs, err := addrList(l.h, link, neighFamily(ip))
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
					return ip, link.Attrs().MTU, nil
				}
			}
		}
		return netip.Addr{}, 0, fmt.Errorf("no link of this host has the address %s", addr)
	}
	link, err := linkByName(l.h, addr)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%q is neither an address nor a link of this host: %w", addr, err)
	}
	if addrs, err := addrList(l.h, link, unix.AF_INET); err == nil && len(addrs) > 0 {
		ip, _ := netip.AddrFromSlice(addrs[0].IP)
		return ip.Unmap(), link.Attrs().MTU, nil
	}
	addrs, err := addrList(l.h, link, unix.AF_INET6)
	if err == nil {
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsGlobalUnicast() {
				return ip, link.Attrs().MTU, nil
			}
		}
	}
	return netip.Addr{}, 0, fmt.Errorf("link %q has no IPv4 address and no global IPv6 one", addr)
}
