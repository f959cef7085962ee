package ipam

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/ipam"

	"github.com/mynet/mynet/internal/store"
)

func filledPool(b *testing.B, size, fill int) (*Allocator, string, *store.Bolt, string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "state.db")
	s, err := store.OpenBolt(path)
	if err != nil {
		b.Fatal(err)
	}
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
	for off := p.first; off < p.first+n; off++ {
		p.bits.set(off)
	}
	// Persist what was filled, as allocations made one by one would have.
	err = s.Update(func(tx store.Tx) error {
		for ci := range p.bits.chunks {
			if err := tx.Put(bucketBits, chunkKey(p.key, ci), p.bits.chunkData(ci)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return a, res.PoolID, s, path
}

// BenchmarkRequestReleaseAddress measures RequestAddress and ReleaseAddress,
// durable writes included, in /24, /16 and /8 pools at 0 %, 50 % and 99 %
// full, and reports the p50 and p99 of each call.
func BenchmarkRequestReleaseAddress(b *testing.B) {
	for _, size := range []int{24, 16, 8} {
		for _, fill := range []int{0, 50, 99} {
			b.Run(fmt.Sprintf("slash%d/full%d", size, fill), func(b *testing.B) {
				a, id, s, _ := filledPool(b, size, fill)
				defer s.Close()
				var req, rel []time.Duration
				for b.Loop() {
					start := time.Now()
					r, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: id})
					if err != nil {
						b.Fatal(err)
					}
					mid := time.Now()
					if err := a.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: r.Address}); err != nil {
						b.Fatal(err)
					}
					req, rel = append(req, mid.Sub(start)), append(rel, time.Since(mid))
				}
				b.ReportMetric(us(pctl(req, 50)), "request-p50-us")
				b.ReportMetric(us(pctl(req, 99)), "request-p99-us")
				b.ReportMetric(us(pctl(rel, 99)), "release-p99-us")
			})
		}
	}
}

// BenchmarkPoolFootprint reports the memory and the state-file bytes a full
// pool of each size takes.
func BenchmarkPoolFootprint(b *testing.B) {
	for _, size := range []int{24, 16, 8} {
		b.Run(fmt.Sprintf("slash%d/full100", size), func(b *testing.B) {
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				a, _, s, path := filledPool(b, size, 100)
				runtime.GC()
				runtime.ReadMemStats(&after)
				s.Close()
				st, err := os.Stat(path)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB/pool")
				b.ReportMetric(float64(st.Size())/(1<<20), "file-MiB")
				runtime.KeepAlive(a)
			}
		})
	}
}

func pctl(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
