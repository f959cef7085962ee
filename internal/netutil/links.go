package netutil

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// MaxNameLen is the longest interface name the kernel accepts (IFNAMSIZ-1).
const MaxNameLen = unix.IFNAMSIZ - 1

// Links manipulates links in one network namespace.
type Links struct {
	h *netlink.Handle
	// del is for link deletions only. A handle's requests take turns on
	// its socket, and a veth deletion waits ~15 ms for the kernel (RCU
	// grace periods, device refcounts), so on the shared handle every
	// create behind it would wait that long too.
	del *netlink.Handle

	// arp is the packet socket announcements go out of, opened at the
	// first (arp.go); closing one waits for an RCU grace period.
	arpMu sync.Mutex
	arp   int
}

// New returns Links for the calling process's network namespace.
func New() (*Links, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	del, err := netlink.NewHandle()
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	return &Links{h: h, del: del, arp: -1}, nil
}

// Close releases the netlink and packet sockets.
func (l *Links) Close() {
	l.h.Close()
	l.del.Close()
	l.arpMu.Lock()
	defer l.arpMu.Unlock()
	if l.arp >= 0 {
		unix.Close(l.arp)
		l.arp = -1
	}
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// ValidateName checks that name can be an interface name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("interface name %q is %d bytes, the kernel allows at most %d", name, len(name), MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is reserved", name)
	case strings.ContainsAny(name, "/: \t\n\x00"):
		return fmt.Errorf("interface name %q contains a character the kernel refuses (/, :, or whitespace)", name)
	}
	return nil
}

// LinkExists reports whether a link named name exists (ip link show NAME).
func (l *Links) LinkExists(name string) (bool, error) {
	_, err := linkByName(l.h, name)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up link %q: %w", name, err)
	}
	return true, nil
}

// IsBridge reports whether the link named name exists and is a bridge.
func (l *Links) IsBridge(name string) (exists, bridge bool, err error) {
	link, err := linkByName(l.h, name)
	if isNotFound(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("look up link %q: %w", name, err)
	}
	_, ok := link.(*netlink.Bridge)
	return true, ok, nil
}

// BridgeConfig describes a bridge for EnsureBridge.
type BridgeConfig struct {
	Name  string
	MTU   int            // 0 leaves the kernel's default
	Addrs []netip.Prefix // gateway addresses, e.g. 172.18.0.1/16
	// NoIPv6 keeps every IPv6 address off the bridge, the kernel's
	// link-local one too (ip link set NAME addrgenmode none; gateway mode
	// isolated), so the host has no IPv6 path to the bridge's hosts.
	NoIPv6 bool
	// Group is the bridge's device group (ip link set NAME group N), which
	// the firewall's shared rules match; 0 leaves it as it is.
	Group uint32
}

// EnsureBridge makes the bridge exist with its addresses and up, in this
// namespace (ip link add NAME type bridge; ip addr add ADDR dev NAME; ip link
// set NAME up). A link of that name that is not a bridge is an error. It
// reports whether it created the bridge, so a caller can undo only that.
func (l *Links) EnsureBridge(cfg BridgeConfig) (created bool, err error) {
	link, err := linkByName(l.h, cfg.Name)
	switch {
	case isNotFound(err):
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: cfg.Name, TxQLen: -1}}
		// A fixed MAC keeps the bridge's address from following its ports as
		// they come and go, which would upset the containers' ARP caches.
		br.HardwareAddr = RandomMAC()
		if err := l.h.LinkAdd(br); err != nil {
			return false, fmt.Errorf("create bridge %q: %w", cfg.Name, err)
		}
		created = true
		defer func() {
			if err != nil {
				_ = l.h.LinkDel(br)
			}
		}()
		if link, err = linkByName(l.h, cfg.Name); err != nil {
			return created, fmt.Errorf("look up new bridge %q: %w", cfg.Name, err)
		}
		// An MTU given at creation is not marked as the user's, so the kernel
		// would reset it whenever the bridge loses its last port; set
		// afterwards (ip link set NAME mtu MTU), it stays.
		if cfg.MTU > 0 && cfg.MTU != link.Attrs().MTU {
			if err := l.h.LinkSetMTU(link, cfg.MTU); err != nil {
				return created, fmt.Errorf("set MTU of bridge %q: %w", cfg.Name, err)
			}
		}
	case err != nil:
		return false, fmt.Errorf("look up link %q: %w", cfg.Name, err)
	default:
		if _, ok := link.(*netlink.Bridge); !ok {
			return false, fmt.Errorf("link %q exists and is a %s, not a bridge", cfg.Name, link.Type())
		}
		if cfg.MTU > 0 && link.Attrs().MTU != cfg.MTU {
			if err := l.h.LinkSetMTU(link, cfg.MTU); err != nil {
				return false, fmt.Errorf("set MTU of bridge %q: %w", cfg.Name, err)
			}
		}
	}
	if cfg.NoIPv6 {
		if err := l.noIPv6(link); err != nil {
			return created, err
		}
	}
	if cfg.Group != 0 && link.Attrs().Group != cfg.Group {
		if err := l.h.LinkSetGroup(link, int(cfg.Group)); err != nil {
			return created, fmt.Errorf("set device group of bridge %q: %w", cfg.Name, err)
		}
	}
	for _, a := range cfg.Addrs {
		addr := &netlink.Addr{IPNet: prefixToIPNet(a)}
		if a.Addr().Is6() {
			// No duplicate address detection, as Docker's bridge: the
			// address is usable at once, and a cluster network's gateway
			// is the same address on every host's bridge by design.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := l.h.AddrReplace(link, addr); err != nil {
			return created, fmt.Errorf("add address %s to bridge %q: %w", a, cfg.Name, err)
		}
	}
	if err := l.h.LinkSetUp(link); err != nil {
		return created, fmt.Errorf("set bridge %q up: %w", cfg.Name, err)
	}
	return created, nil
}

// ReleaseBridge hands back a bridge mynet adopted as it was found: the
// given addresses are deleted if present (ip addr del ADDR dev NAME), and
// the device group goes back to the default when it is still group (ip
// link set NAME group default). A missing link or address is not an error.
func (l *Links) ReleaseBridge(name string, addrs []netip.Prefix, group uint32) error {
	link, err := linkByName(l.h, name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up link %q: %w", name, err)
	}
	if group != 0 && link.Attrs().Group == group {
		if err := l.h.LinkSetGroup(link, 0); err != nil {
			return fmt.Errorf("reset device group of %q: %w", name, err)
		}
	}
	for _, a := range addrs {
		err := l.h.AddrDel(link, &netlink.Addr{IPNet: prefixToIPNet(a)})
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove address %s from %q: %w", a, name, err)
		}
	}
	return nil
}

// DeleteLink removes a link (ip link del NAME). Deleting one end of a veth
// pair removes both. A missing link is not an error.
func (l *Links) DeleteLink(name string) error {
	link, err := linkByName(l.h, name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up link %q: %w", name, err)
	}
	if err := l.del.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete link %q: %w", name, err)
	}
	return nil
}

// VethConfig describes a veth pair for AddVeth.
type VethConfig struct {
	HostName string           // end that stays in this namespace, attached to Bridge
	PeerName string           // end that Docker moves into the container
	PeerMAC  net.HardwareAddr // MAC of the container end
	MTU      int              // both ends; 0 takes the bridge's
	Bridge   string
	// Hairpin lets traffic leave the bridge port it came in on, so a
	// container reaches its own published port through the host.
	Hairpin bool
}

// AddVeth creates a veth pair with the host end attached to a bridge and up
// and the peer end down, both in this namespace (ip link add HOST mtu MTU
// master BRIDGE type veth peer name PEER address MAC; bridge link set dev
// HOST hairpin on; ip link set HOST up). On failure nothing is left behind.
func (l *Links) AddVeth(cfg VethConfig) (err error) {
	br, err := linkByName(l.h, cfg.Bridge)
	if err != nil {
		return fmt.Errorf("look up bridge %q: %w", cfg.Bridge, err)
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = br.Attrs().MTU
	}
	veth := &netlink.Veth{
		// Up as it is made (one request less): the port forwards once its
		// peer is up too.
		LinkAttrs:        netlink.LinkAttrs{Name: cfg.HostName, MTU: mtu, MasterIndex: br.Attrs().Index, TxQLen: -1, Flags: net.FlagUp},
		PeerName:         cfg.PeerName,
		PeerHardwareAddr: cfg.PeerMAC,
		PeerMTU:          uint32(mtu),
	}
	if err := l.h.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth pair %q/%q: %w", cfg.HostName, cfg.PeerName, err)
	}
	defer func() {
		if err != nil {
			_ = l.h.LinkDel(veth)
		}
	}()
	if cfg.Hairpin {
		if err := l.h.LinkSetHairpin(veth, true); err != nil {
			return fmt.Errorf("set hairpin mode on %q: %w", cfg.HostName, err)
		}
	}
	return nil
}

// EnsurePort makes a host veth a port of bridge again, up and with hairpin
// mode (ip link set NAME master BRIDGE up; bridge link set dev NAME hairpin
// on). It is how a veth that survived while its bridge was re-created (after
// `ip link del` of the bridge) is re-attached.
func (l *Links) EnsurePort(name, bridge string) error {
	link, err := linkByName(l.h, name)
	if err != nil {
		return fmt.Errorf("look up %q: %w", name, err)
	}
	br, err := linkByName(l.h, bridge)
	if err != nil {
		return fmt.Errorf("look up bridge %q: %w", bridge, err)
	}
	if link.Attrs().MasterIndex != br.Attrs().Index {
		if err := l.h.LinkSetMaster(link, br); err != nil {
			return fmt.Errorf("attach %q to %q: %w", name, bridge, err)
		}
		if err := l.h.LinkSetHairpin(link, true); err != nil {
			return fmt.Errorf("set hairpin mode on %q: %w", name, err)
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := l.h.LinkSetUp(link); err != nil {
			return fmt.Errorf("set %q up: %w", name, err)
		}
	}
	return nil
}

// ListLinkNames returns the names of links whose name starts with prefix
// (ip -o link show | grep PREFIX).
func (l *Links) ListLinkNames(prefix string) ([]string, error) {
	links, err := linkList(l.h)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []string
	for _, link := range links {
		if name := link.Attrs().Name; strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Routes returns the destinations of every IPv4 and IPv6 route of the main
// table except default routes (ip route show; ip -6 route show).
func (l *Links) Routes() ([]netip.Prefix, error) {
	routes, err := routeList(l.h, nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, ok := ipNetToPrefix(r.Dst); ok && p.Bits() > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// RandomMAC returns a random, locally administered, unicast MAC address.
func RandomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	bits := p.Addr().BitLen()
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

func ipNetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones).Masked(), true
}

// noIPv6 stops the kernel from giving the link a link-local address and
// removes the IPv6 addresses it has.
func (l *Links) noIPv6(link netlink.Link) error {
	if err := l.h.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
		return fmt.Errorf("set addrgenmode none on %q: %w", link.Attrs().Name, err)
	}
	addrs, err := addrList(l.h, link, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("list IPv6 addresses of %q: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		if err := l.h.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s from %q: %w", a.IPNet, link.Attrs().Name, err)
		}
	}
	return nil
}
