package multihost

import (
	"testing"

	"github.com/mynet/mynet/test/mhtest"
)

// BenchmarkEncrypted is make bench's workload 13 (run it with -benchtime
// 1x): TCP throughput and round trip between containers on two hosts over
// a plain cluster network and an encrypted one, between the same two host
// namespaces, in alternating rounds (plain first, then encrypted first:
// ABBA), so the machine's drift hits both; medians, and the median of the
// per-round ratios. WireGuard is whatever the kernel allows (userspace
// wireguard-go where it has no module). It reports; it asserts nothing
// about speed.
func BenchmarkEncrypted(b *testing.B) {
	for range b.N {
		w := mhtest.NewWorld(b, 2)
		h1, h2 := w.Hosts[0], w.Hosts[1]
		enc := map[string]string{"encrypted": ""}
		pa, pb := h1.CreateNetwork("plain", "10.53.0.0/24").Run(""), h2.CreateNetwork("plain", "").Run("")
		sa, sb := h1.CreateNetworkWith("sealed", "10.54.0.0/24", enc).Run(""), h2.CreateNetworkWith("sealed", "", enc).Run("")
		mhtest.Eventually(b, "plain ping", func() error { return pa.Ping(pb.IP.Addr(), 0) })
		mhtest.Eventually(b, "encrypted ping", func() error { return sa.Ping(sb.IP.Addr(), 0) })
		rr := buildRR(b)
		background(b, pb.NS, rr, "serve", "7777")
		background(b, sb.NS, rr, "serve", "7777")
		type path struct{ client, server *mhtest.Container }
		measure := func(p path) (gbps, rtt float64) {
			addr := p.server.IP.Addr().String()
			return iperf(b, p.client.NS, p.server.NS, addr), rrPing(b, rr, p.client.NS, addr)
		}
		plain, sealed := path{pa, pb}, path{sa, sb}
		var pg, sg, prtt, srtt, tput, round []float64
		for i := range 8 {
			var g1, r1, g2, r2 float64
			if i%4 == 0 || i%4 == 3 {
				g1, r1 = measure(plain)
				g2, r2 = measure(sealed)
			} else {
				g2, r2 = measure(sealed)
				g1, r1 = measure(plain)
			}
			pg, sg, prtt, srtt = append(pg, g1), append(sg, g2), append(prtt, r1), append(srtt, r2)
			tput, round = append(tput, g2/g1), append(round, r2/r1)
		}
		med := func(v []float64) float64 { m, _ := pct(v); return m }
		b.ReportMetric(med(pg), "plain-Gbit/s")
		b.ReportMetric(med(sg), "encrypted-Gbit/s")
		b.ReportMetric(med(tput), "encrypted-over-plain-throughput")
		b.ReportMetric(med(prtt), "plain-rtt-us")
		b.ReportMetric(med(srtt), "encrypted-rtt-us")
		b.ReportMetric(med(round), "encrypted-over-plain-rtt")
		b.ReportMetric(float64(len(tput)), "rounds")
	}
}
