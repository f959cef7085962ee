package ipam

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	api "github.com/docker/go-plugins-helpers/ipam"

	"github.com/mynet/mynet/store"
)

// BenchmarkRequestReleaseAddress measures one RequestAddress + ReleaseAddress
// pair, durable writes included, in pools of several sizes and fill levels.
func BenchmarkRequestReleaseAddress(b *testing.B) {
	for _, size := range []int{24, 16, 8} {
		for _, fill := range []int{0, 50, 99} {
			b.Run(fmt.Sprintf("slash%d/full%d", size, fill), func(b *testing.B) {
				s, err := store.OpenBolt(filepath.Join(b.TempDir(), "state.db"))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				a, err := New(Config{Store: s})
				if err != nil {
					b.Fatal(err)
				}
				subnet := netip.MustParsePrefix(fmt.Sprintf("10.0.0.0/%d", size))
				res, err := a.RequestPool(&api.RequestPoolRequest{Pool: subnet.String()})
				if err != nil {
					b.Fatal(err)
				}
				p := a.pools[poolKey(LocalSpace, subnet)]
				n := (p.last - p.first + 1) * uint64(fill) / 100
				for off := p.first; off < p.first+n; off++ { // fill in memory, then persist once
					p.bits.set(off)
				}
				b.ResetTimer()
				for b.Loop() {
					r, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: res.PoolID})
					if err != nil {
						b.Fatal(err)
					}
					if err := a.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: res.PoolID, Address: r.Address}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
