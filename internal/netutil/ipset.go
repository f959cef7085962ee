package netutil

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SyncIPSet makes the IPv4 set name (hash:ip) hold exactly members,
// creating it when it is missing, in the handle's namespace: `ipset create
// NAME hash:ip` and the `ipset add` / `ipset del` that differ. The
// firewall matches it (-m set --match-set NAME src). Members of the other
// family are left out.
func (l *Links) SyncIPSet(name string, members []netip.Addr) error {
	return l.syncIPSet(name, false, members)
}

// SyncIPSet6 is SyncIPSet for an IPv6 set (`ipset create NAME hash:ip
// family inet6`), which ip6tables matches.
func (l *Links) SyncIPSet6(name string, members []netip.Addr) error {
	return l.syncIPSet(name, true, members)
}

func (l *Links) syncIPSet(name string, v6 bool, members []netip.Addr) error {
	family := uint8(unix.AF_INET)
	if v6 {
		family = unix.AF_INET6
	}
	if err := l.h.IpsetCreate(name, "hash:ip", netlink.IpsetCreateOptions{Family: family}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create ipset %s: %w", name, err)
	}
	res, err := ipsetList(l.h, name)
	if err != nil {
		return fmt.Errorf("list ipset %s: %w", name, err)
	}
	want := map[netip.Addr]bool{}
	for _, m := range members {
		if m = m.Unmap(); m.Is6() == v6 {
			want[m] = true
		}
	}
	have := map[netip.Addr]bool{}
	for _, e := range res.Entries {
		if a, ok := netip.AddrFromSlice(e.IP); ok {
			have[a.Unmap()] = true
		}
	}
	var errs []error
	for a := range want {
		if !have[a] {
			if err := l.h.IpsetAdd(name, &netlink.IPSetEntry{IP: a.AsSlice()}); err != nil && !errors.Is(err, unix.EEXIST) {
				errs = append(errs, fmt.Errorf("ipset add %s %s: %w", name, a, err))
			}
		}
	}
	for a := range have {
		if !want[a] {
			if err := l.h.IpsetDel(name, &netlink.IPSetEntry{IP: a.AsSlice()}); err != nil {
				errs = append(errs, fmt.Errorf("ipset del %s %s: %w", name, a, err))
			}
		}
	}
	return errors.Join(errs...)
}

// DestroyIPSet removes a set (`ipset destroy NAME`); one that does not
// exist is no error. A set a rule still matches cannot go: remove the
// rule first.
func (l *Links) DestroyIPSet(name string) error {
	if err := l.h.IpsetDestroy(name); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("destroy ipset %s: %w", name, err)
	}
	return nil
}
