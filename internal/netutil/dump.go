package netutil

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// Netlink dumps (and LinkByName, which falls back to one on older kernels)
// fail with ErrDumpInterrupted when the table changed while the kernel
// answered, which under container churn happens. Every dump mynet makes
// goes through this file, each retried a few times, as CNI's netlinksafe
// and moby's nlwrap do; architecture_test.go forbids the raw calls in
// the rest of the package. All run in the namespace of the handle.

// retry repeats a netlink dump the kernel reported as interrupted by a
// concurrent change, a few times.
func retry[T any](fn func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range 5 {
		v, err = fn()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, fmt.Errorf("netlink dump kept being interrupted: %w", err)
}

// linkByName is `ip link show NAME`.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	return retry(func() (netlink.Link, error) { return h.LinkByName(name) })
}

// linkList is `ip link show`.
func linkList(h *netlink.Handle) ([]netlink.Link, error) {
	return retry(h.LinkList)
}

// addrList is `ip -f FAMILY addr show dev LINK`.
func addrList(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Addr, error) {
	return retry(func() ([]netlink.Addr, error) { return h.AddrList(link, family) })
}

// neighList is `ip neigh show dev IDX` (AF_BRIDGE: `bridge fdb show dev`).
func neighList(h *netlink.Handle, idx, family int) ([]netlink.Neigh, error) {
	return retry(func() ([]netlink.Neigh, error) { return h.NeighList(idx, family) })
}

// routeList is `ip route show` for a family (nil link: every link).
func routeList(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Route, error) {
	return retry(func() ([]netlink.Route, error) { return h.RouteList(link, family) })
}

// ipsetList is `ipset list NAME`.
func ipsetList(h *netlink.Handle, name string) (*netlink.IPSetResult, error) {
	return retry(func() (*netlink.IPSetResult, error) { return h.IpsetList(name) })
}

// conntrackDeleteFilters is `conntrack -D` of the flows filter matches, in
// the calling thread's namespace (a dump, then deletes: again is safe).
func conntrackDeleteFilters(family netlink.InetFamily, filter netlink.CustomConntrackFilter) (uint, error) {
	return retry(func() (uint, error) {
		return netlink.ConntrackDeleteFilters(netlink.ConntrackTable, family, filter)
	})
}

// BridgePorts are the names of the links whose master is the bridge
// (`ip link show master NAME`).
func (l *Links) BridgePorts(bridge string) ([]string, error) {
	br, err := linkByName(l.h, bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", bridge, err)
	}
	links, err := linkList(l.h)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []string
	for _, link := range links {
		if link.Attrs().MasterIndex == br.Attrs().Index {
			out = append(out, link.Attrs().Name)
		}
	}
	return out, nil
}
