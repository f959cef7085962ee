// Package netaddr reads IP addresses in the forms Docker sends them: bare
// ("10.0.0.2") or with a prefix length ("10.0.0.2/24", as IPAM answers and
// gateways are given). The driver and the IPAM both read them here, so both
// accept exactly the same forms.
package netaddr

import (
	"fmt"
	"net/netip"
	"strings"
)

// Parse reads an address given bare or in CIDR form; an IPv4-mapped IPv6
// address is returned as IPv4.
func Parse(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

// Last is the highest address of an IPv4 prefix (its broadcast address);
// for IPv6 it is the prefix's highest address too.
func Last(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	host := len(b)*8 - p.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
