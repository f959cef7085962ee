package dockersync

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mynet/mynet/internal/cluster"
)

// hostOptions are Docker network options that name something of one host
// (a bridge, a host address, a host's interfaces): a record never carries
// them to another host, and a record from etcd that has them (written by
// hand, or by an older version) has them left out.
var hostOptions = map[string]bool{
	"com.docker.network.bridge.name":                    true,
	"com.docker.network.bridge.host_binding_ipv4":       true,
	"com.docker.network.host_ipv4":                      true,
	"com.docker.network.host_ipv6":                      true,
	"com.docker.network.bridge.trusted_host_interfaces": true,
}

// portable is opts less the host-specific options, and the ones it left
// out (sorted).
func portable(opts map[string]string) (map[string]string, []string) {
	var dropped []string
	out := map[string]string{}
	for k, v := range opts {
		if hostOptions[k] {
			dropped = append(dropped, k)
			continue
		}
		out[k] = v
	}
	slices.Sort(dropped)
	if len(out) == 0 {
		out = nil
	}
	return out, dropped
}

// checkRecord says why the record of cluster network c from etcd cannot be
// applied on this host (nil: it can). A record is data anyone with access
// to etcd can write: it never decides which cluster network a Docker
// network is, and its subnet and gateway must be a network's.
func checkRecord(c string, rec cluster.DockerNetwork) error {
	switch {
	case rec.Name == "":
		return fmt.Errorf("the record of cluster network %s has no Docker network name", c)
	case rec.IPAMOptions[optCluster] != c:
		return fmt.Errorf("the record of cluster network %s has IPAM option %s=%q: a record is applied only to its own cluster network", c, optCluster, rec.IPAMOptions[optCluster])
	case rec.NoIPv4 && (rec.Subnet.IsValid() || !rec.EnableIPv6 || !rec.Subnet6.IsValid()):
		return fmt.Errorf("the record of cluster network %s is IPv6-only and has an IPv4 subnet or no IPv6 one", c)
	case !rec.NoIPv4 && (!rec.Subnet.IsValid() || !rec.Subnet.Addr().Is4()):
		return fmt.Errorf("the record of cluster network %s has no IPv4 subnet", c)
	case rec.Gateway.IsValid() && (!rec.Subnet.Contains(rec.Gateway) || rec.Gateway == rec.Subnet.Masked().Addr()):
		return fmt.Errorf("the record of cluster network %s has gateway %s, not a host address of %s", c, rec.Gateway, rec.Subnet)
	case rec.IPRange.IsValid() && (rec.NoIPv4 || !inside(rec.IPRange, rec.Subnet)):
		return fmt.Errorf("the record of cluster network %s has IP range %s, not inside %s", c, rec.IPRange, rec.Subnet)
	case !rec.EnableIPv6 && (rec.Subnet6.IsValid() || rec.IPRange6.IsValid()):
		return fmt.Errorf("the record of cluster network %s has an IPv6 subnet without IPv6 on", c)
	case rec.Subnet6.IsValid() && (!rec.Subnet6.Addr().Is6() || rec.Subnet6.Addr().Is4In6()):
		return fmt.Errorf("the record of cluster network %s has IPv6 subnet %s, not an IPv6 one", c, rec.Subnet6)
	case rec.Gateway6.IsValid() && (!rec.Subnet6.IsValid() || !rec.Subnet6.Contains(rec.Gateway6) || rec.Gateway6 == rec.Subnet6.Masked().Addr()):
		return fmt.Errorf("the record of cluster network %s has IPv6 gateway %s, not a host address of %s", c, rec.Gateway6, rec.Subnet6)
	case rec.IPRange6.IsValid() && !inside(rec.IPRange6, rec.Subnet6):
		return fmt.Errorf("the record of cluster network %s has IPv6 range %s, not inside %s", c, rec.IPRange6, rec.Subnet6)
	}
	return nil
}

// inside reports whether rng lies in subnet (both of one family).
func inside(rng, subnet netip.Prefix) bool {
	return subnet.IsValid() && rng.Addr().Is4() == subnet.Addr().Is4() && rng.Bits() >= subnet.Bits() && subnet.Contains(rng.Addr())
}

// backoff is a cluster network's failed creates in this host's Docker:
// tried again after a pause that doubles up to maxBackoff, logged once per
// change of error.
type backoff struct {
	err   string
	next  time.Time
	pause time.Duration
}

const maxBackoff = time.Minute

// failed records a failure at now: whether it is news (to log).
func (b *backoff) failed(err error, now time.Time) bool {
	news := b.err != err.Error()
	b.err = err.Error()
	switch {
	case b.pause == 0:
		b.pause = time.Second
	case b.pause < maxBackoff:
		b.pause = min(2*b.pause, maxBackoff)
	}
	b.next = now.Add(b.pause)
	return news
}

// logOnce reports whether detail is news for key in seen, and records it.
func logOnce(seen map[string]string, key, detail string) bool {
	if seen[key] == detail {
		return false
	}
	seen[key] = detail
	return true
}

// forgetGone drops what m keeps of cluster networks no longer in recs.
func forgetGone[V any](m map[string]V, recs map[string]cluster.DockerNetwork) {
	maps.DeleteFunc(m, func(c string, _ V) bool { _, ok := recs[c]; return !ok })
}

// sharedNames maps each Docker name that records in use give to the
// cluster networks that have it, the first created first (then by name):
// every host makes the first one the network of that name and shows the
// others as a conflict, the same everywhere.
func sharedNames(recs map[string]cluster.DockerNetwork) map[string][]string {
	out := map[string][]string{}
	for c, r := range recs {
		if r.Removed == "" {
			out[r.Name] = append(out[r.Name], c)
		}
	}
	for _, cs := range out {
		slices.SortFunc(cs, func(a, b string) int {
			if d := cmp.Compare(recs[a].Created, recs[b].Created); d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
	}
	return out
}
