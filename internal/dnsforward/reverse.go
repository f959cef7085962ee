package dnsforward

import (
	"net/netip"
	"slices"
	"strings"
)

// reverseAddr reads d.c.b.a.in-addr.arpa. as a.b.c.d, and an ip6.arpa.
// name of 32 nibbles (RFC 3596) as its IPv6 address.
func reverseAddr(name string) (netip.Addr, bool) {
	name = strings.ToLower(name)
	rest, ok := strings.CutSuffix(name, ".ip6.arpa.")
	if !ok {
		return reverseIPv4(name)
	}
	nibbles := strings.Split(rest, ".")
	if len(nibbles) != 32 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for i, n := range nibbles {
		if len(n) != 1 {
			return netip.Addr{}, false
		}
		v := strings.IndexByte("0123456789abcdef", n[0])
		if v < 0 {
			return netip.Addr{}, false
		}
		pos := 31 - i // the last nibble first
		b[pos/2] |= byte(v) << (4 * (1 - pos%2))
	}
	return netip.AddrFrom16(b), true
}

// reverseIPv4 reads d.c.b.a.in-addr.arpa. (lower case) as a.b.c.d.
func reverseIPv4(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa.")
	if !ok {
		return netip.Addr{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	slices.Reverse(parts)
	ip, err := netip.ParseAddr(strings.Join(parts, "."))
	if err != nil || !ip.Is4() {
		return netip.Addr{}, false
	}
	return ip, true
}
