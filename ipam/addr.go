package ipam

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// split returns the 128-bit form of a (IPv4 in its IPv4-mapped form) as two
// halves.
func split(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// offsetOf returns the host offset of addr within prefix p, which must
// contain it. Offsets past 2^64-1 (possible only in IPv6 pools larger than a
// /64) are reported as not representable.
func offsetOf(p netip.Prefix, addr netip.Addr) (uint64, bool) {
	ah, al := split(addr)
	bh, bl := split(p.Masked().Addr())
	lo, borrow := bits.Sub64(al, bl, 0)
	hi, _ := bits.Sub64(ah, bh, borrow)
	return lo, hi == 0
}

// addrAt returns the address at host offset off in prefix p.
func addrAt(p netip.Prefix, off uint64) netip.Addr {
	bh, bl := split(p.Masked().Addr())
	lo, carry := bits.Add64(bl, off, 0)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], bh+carry)
	binary.BigEndian.PutUint64(b[8:], lo)
	if p.Addr().Is4() {
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return netip.AddrFrom16(b)
}

// lastOffset is the highest host offset of p, capped at 2^64-1.
func lastOffset(p netip.Prefix) uint64 {
	host := p.Addr().BitLen() - p.Bits()
	if host >= 64 {
		return ^uint64(0)
	}
	return (uint64(1) << host) - 1
}
