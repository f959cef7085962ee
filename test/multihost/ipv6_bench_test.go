package multihost

import (
	"testing"

	"github.com/mynet/mynet/test/mhtest"
)

// BenchmarkIPv6 is make bench's workload 14 (run it with -benchtime 1x):
// TCP throughput and round trip between two containers on two hosts over
// one dual-stack cluster network, to the other's IPv4 and to its IPv6
// address: the same containers, VXLAN device and underlay, in rounds that
// alternate which family goes first; medians, and the median of the
// per-round ratios. It reports; it asserts nothing about speed.
func BenchmarkIPv6(b *testing.B) {
	for range b.N {
		w := mhtest.NewWorld(b, 2)
		a := w.Hosts[0].CreateDualStack("ds", "10.55.0.0/24", "fd00:55::/64").Run("")
		c := w.Hosts[1].CreateDualStack("ds", "", "").Run("")
		mhtest.Eventually(b, "IPv4 ping", func() error { return a.Ping(c.IP.Addr(), 0) })
		mhtest.Eventually(b, "IPv6 ping", func() error { return a.Ping(c.IP6.Addr(), 0) })
		rr := buildRR(b)
		background(b, c.NS, rr, "serve", "7777")
		addrs := []string{c.IP.Addr().String(), c.IP6.Addr().String()}
		var g, rtt [2][]float64
		var tput, round []float64
		for i := range 8 {
			order := []int{i % 2, (i + 1) % 2}
			var rg, rt [2]float64
			for _, k := range order {
				rg[k], rt[k] = iperf(b, a.NS, c.NS, addrs[k]), rrPing(b, rr, a.NS, addrs[k])
				g[k], rtt[k] = append(g[k], rg[k]), append(rtt[k], rt[k])
			}
			tput, round = append(tput, rg[1]/rg[0]), append(round, rt[1]/rt[0])
		}
		med := func(v []float64) float64 { m, _ := pct(v); return m }
		b.ReportMetric(med(g[0]), "ipv4-Gbit/s")
		b.ReportMetric(med(g[1]), "ipv6-Gbit/s")
		b.ReportMetric(med(tput), "ipv6-over-ipv4-throughput")
		b.ReportMetric(med(rtt[0]), "ipv4-rtt-us")
		b.ReportMetric(med(rtt[1]), "ipv6-rtt-us")
		b.ReportMetric(med(round), "ipv6-over-ipv4-rtt")
		b.ReportMetric(float64(len(tput)), "rounds")
	}
}
