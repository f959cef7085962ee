package netutil

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// WireGuardOverhead is what WireGuard over IPv4 adds to a packet: outer
// IPv4 (20), UDP (8), WireGuard's header (16) and tag (16); over IPv6,
// 20 more (WireGuardOverhead6).
const (
	WireGuardOverhead  = 60
	WireGuardOverhead6 = 80
)

// Overheads are what VXLAN and WireGuard add over an underlay of
// underlay's family.
func Overheads(underlay netip.Addr) (vxlan, wireguard int) {
	if underlay.Is6() {
		return VXLANOverhead6, WireGuardOverhead6
	}
	return VXLANOverhead, WireGuardOverhead
}

// SealedVXLANPort is the VXLAN port of encrypted cluster networks, inside
// the WireGuard tunnel only: the firewall drops it on every other link,
// both ways.
const SealedVXLANPort = 4798

// blackholeMetric puts the tunnel pool's blackhole route behind the
// WireGuard device's own route to the pool.
const blackholeMetric = 4242

// AddWireGuard makes a kernel WireGuard link in this namespace (ip link
// add NAME type wireguard). It returns false, and no error, when the
// kernel has no WireGuard; true when the link is there.
func (l *Links) AddWireGuard(name string) (bool, error) {
	err := l.h.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: name}})
	switch {
	case err == nil || errors.Is(err, unix.EEXIST):
		return true, nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENODEV):
		return false, nil
	default:
		return false, fmt.Errorf("create WireGuard link %q: %w", name, err)
	}
}

// TunnelConfig is the addressing of the WireGuard device that carries
// encrypted cluster networks.
type TunnelConfig struct {
	Name string
	// Addr is this host's tunnel address with the length of the cluster's
	// tunnel pool: the device's route covers the pool.
	Addr netip.Prefix
	MTU  int
}

// EnsureBlackhole keeps a blackhole route for the tunnel pool behind the
// device's (ip route replace blackhole POOL metric 4242): when the device
// goes, its route goes with it, and what was bound for other hosts'
// tunnel addresses is dropped here, never sent in clear another way.
func (l *Links) EnsureBlackhole(pool netip.Prefix) error {
	r := &netlink.Route{Dst: prefixToIPNet(pool.Masked()), Type: unix.RTN_BLACKHOLE, Priority: blackholeMetric, Table: unix.RT_TABLE_MAIN}
	if err := l.h.RouteReplace(r); err != nil {
		return fmt.Errorf("blackhole route for the tunnel pool %s: %w", pool, err)
	}
	return nil
}

// EnsureTunnel gives the WireGuard device its address (ip addr replace
// ADDR dev NAME; any other address goes), its MTU, and sets it up. The
// device must exist (internal/wgtunnel makes it).
func (l *Links) EnsureTunnel(cfg TunnelConfig) error {
	link, err := linkByName(l.h, cfg.Name)
	if err != nil {
		return fmt.Errorf("WireGuard device %q: %w", cfg.Name, err)
	}
	if err := l.noIPv6(link); err != nil {
		return err
	}
	addrs, err := addrList(l.h, link, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list addresses of %q: %w", cfg.Name, err)
	}
	found := false
	for _, a := range addrs {
		p, ok := ipNetToPrefix(a.IPNet)
		ip, _ := netip.AddrFromSlice(a.IP)
		if ok && ip.Unmap() == cfg.Addr.Addr() && p.Bits() == cfg.Addr.Bits() {
			found = true
			continue
		}
		if err := l.h.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s from %q: %w", a.IPNet, cfg.Name, err)
		}
	}
	if !found {
		if err := l.h.AddrReplace(link, &netlink.Addr{IPNet: prefixToIPNet(cfg.Addr)}); err != nil {
			return fmt.Errorf("add %s to %q: %w", cfg.Addr, cfg.Name, err)
		}
	}
	if cfg.MTU > 0 && link.Attrs().MTU != cfg.MTU {
		if err := l.h.LinkSetMTU(link, cfg.MTU); err != nil {
			return fmt.Errorf("set MTU of %q: %w", cfg.Name, err)
		}
	}
	if err := l.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %q up: %w", cfg.Name, err)
	}
	return nil
}

// RemoveTunnel deletes the WireGuard device (ip link del NAME; a userspace
// device's process ends with its tun) and the pool's blackhole route;
// either already gone is no error.
func (l *Links) RemoveTunnel(name string, pool netip.Prefix) error {
	link, err := linkByName(l.h, name)
	switch {
	case err == nil:
		if err := l.h.LinkDel(link); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete WireGuard device %q: %w", name, err)
		}
	case !isNotFound(err):
		return fmt.Errorf("look up WireGuard device %q: %w", name, err)
	}
	if !pool.IsValid() {
		return nil
	}
	r := &netlink.Route{Dst: prefixToIPNet(pool.Masked()), Type: unix.RTN_BLACKHOLE, Priority: blackholeMetric, Table: unix.RT_TABLE_MAIN}
	if err := l.h.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove the blackhole route of %s: %w", pool, err)
	}
	return nil
}
