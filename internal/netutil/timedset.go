package netutil

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TimedSet is an IPv4 ipset whose elements expire unless they are renewed,
// in another network namespace (a container's sandbox), reached through a
// netlink socket opened there: renewing it switches no thread's namespace.
// A rule that matches it (-m set --match-set NAME dst) stops matching by
// itself when whoever renews it ends or freezes.
type TimedSet struct {
	h    *netlink.Handle
	name string
}

// OpenTimedSet opens the namespace at path and creates the set name there
// (hash:ip with per-element timeouts) when it is missing:
// `ip netns exec NS ipset create NAME hash:ip timeout 1 -exist`.
func OpenTimedSet(path, name string) (*TimedSet, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", path, err)
	}
	one := uint32(1)
	if err := h.IpsetCreate(name, "hash:ip", netlink.IpsetCreateOptions{Family: unix.AF_INET, Timeout: &one}); err != nil && !errors.Is(err, unix.EEXIST) {
		h.Close()
		return nil, fmt.Errorf("create ipset %s in %s: %w", name, path, err)
	}
	return &TimedSet{h: h, name: name}, nil
}

// Renew (re)adds a with a lifetime of ttl, rounded up to whole seconds
// (the kernel's unit): `ipset add NAME A timeout N -exist`.
func (s *TimedSet) Renew(a netip.Addr, ttl time.Duration) error {
	secs := uint32((ttl + time.Second - 1) / time.Second)
	if secs == 0 {
		secs = 1
	}
	if err := s.h.IpsetAdd(s.name, &netlink.IPSetEntry{IP: a.AsSlice(), Timeout: &secs, Replace: true}); err != nil {
		return fmt.Errorf("renew %s in ipset %s: %w", a, s.name, err)
	}
	return nil
}

// Destroy removes the set (`ipset destroy NAME`); a rule that still
// matches it keeps it (EBUSY): remove the rule first. Close it after.
func (s *TimedSet) Destroy() error {
	if err := s.h.IpsetDestroy(s.name); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("destroy ipset %s: %w", s.name, err)
	}
	return nil
}

// Close closes the netlink socket; the set stays in the namespace.
func (s *TimedSet) Close() { s.h.Close() }
