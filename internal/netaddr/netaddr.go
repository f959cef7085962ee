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
