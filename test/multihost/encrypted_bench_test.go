package multihost

import (
	"net/netip"
	"testing"

	"github.com/mynet/mynet/test/mhtest"
)

// BenchmarkEncrypted is make bench's workload 13 (run it with -benchtime
// 1x): TCP throughput and round trip between containers on two hosts over
// a plain cluster network and an encrypted one, and host to host over the
// bare WireGuard tunnel, between the same two host namespaces, in rounds
// whose order changes (each path first as often), so the machine's drift
// hits all; medians, and the median of the per-round ratios. WireGuard is whatever the kernel allows (userspace
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
		// The bare tunnel: host to host over WireGuard alone, between the
		// hosts' tunnel addresses (no VXLAN, no bridge): what WireGuard
		// itself carries here, for the encrypted network's gap to it.
		var st struct {
			Cluster struct {
				WireGuard struct {
					Address netip.Prefix `json:"address"`
				} `json:"wireguard"`
			} `json:"cluster"`
		}
		readJSONStatus(b, h2, &st)
		tunnel2 := st.Cluster.WireGuard.Address.Addr().String()
		rr := buildRR(b)
		background(b, pb.NS, rr, "serve", "7777")
		background(b, sb.NS, rr, "serve", "7777")
		background(b, h2.NS, rr, "serve", "7777")
		type path struct{ client, server, addr string }
		measure := func(p path) (gbps, rtt float64) {
			return iperf(b, p.client, p.server, p.addr), rrPing(b, rr, p.client, p.addr)
		}
		paths := []path{{pa.NS, pb.NS, pb.IP.Addr().String()}, {sa.NS, sb.NS, sb.IP.Addr().String()}, {h1.NS, h2.NS, tunnel2}}
		var g, rtt [3][]float64
		var tput, round []float64
		for i := range 8 {
			// Each round in another order, every path first as often.
			order := []int{i % 3, (i + 1) % 3, (i + 2) % 3}
			if i%2 == 1 {
				order[0], order[2] = order[2], order[0]
			}
			var rg, rt [3]float64
			for _, k := range order {
				rg[k], rt[k] = measure(paths[k])
				g[k], rtt[k] = append(g[k], rg[k]), append(rtt[k], rt[k])
			}
			tput, round = append(tput, rg[1]/rg[0]), append(round, rt[1]/rt[0])
		}
		med := func(v []float64) float64 { m, _ := pct(v); return m }
		pg, sg, tg, prtt, srtt, trtt := g[0], g[1], g[2], rtt[0], rtt[1], rtt[2]
		b.ReportMetric(med(tg), "tunnel-Gbit/s")
		b.ReportMetric(med(trtt), "tunnel-rtt-us")
		b.ReportMetric(med(pg), "plain-Gbit/s")
		b.ReportMetric(med(sg), "encrypted-Gbit/s")
		b.ReportMetric(med(tput), "encrypted-over-plain-throughput")
		b.ReportMetric(med(prtt), "plain-rtt-us")
		b.ReportMetric(med(srtt), "encrypted-rtt-us")
		b.ReportMetric(med(round), "encrypted-over-plain-rtt")
		b.ReportMetric(float64(len(tput)), "rounds")
	}
}
