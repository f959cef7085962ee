package daemon

import (
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/dnsforward"
	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/netutil"
)

// sandboxWait bounds the wait for a sandbox's file to be a namespace (its
// mount on its way into a managed plugin); the forwarder tries again after.
const sandboxWait = 2 * time.Second

// newNames builds the name forwarders of cluster networks, which open the
// containers' sandboxes where this process sees them (--sandbox-root).
func (d *Daemon) newNames(log *logrus.Entry) *dnsforward.Forwarders {
	sandboxes := netutil.Sandboxes{Root: d.cfg.Cluster.SandboxRoot, Wait: sandboxWait}
	return dnsforward.New(dnsforward.Config{
		Resolve:     func(networks []string, name string) ([]netip.Addr, bool) { return d.drv.ResolveName(networks, name) },
		ResolveAddr: func(networks []string, ip netip.Addr) (string, bool) { return d.drv.ResolveAddr(networks, ip) },
		Enter:       sandboxes.Enter, Mark: firewall.DNSMark,
		OpenRedirect: func(path string) (dnsforward.Redirect, error) {
			r, err := sandboxes.OpenDNSNAT(path, firewall.DNSTable, firewall.DNSMark)
			if err != nil {
				return nil, err
			}
			// An earlier version's rules (lapsed, never renewed) go.
			if err := d.fw.RemoveOldDNSRedirect(func(fn func() error) error { return sandboxes.Enter(path, fn) }); err != nil {
				log.WithError(err).WithField("sandbox", path).Debug("could not remove an earlier version's DNS redirect rules")
			}
			return r, nil
		},
		Flush: netutil.FlushDNSFlows, Log: log.WithField("part", "names"),
	})
}

// namesState is what health says of names across hosts ("" on a single
// host).
func (d *Daemon) namesState() string {
	switch {
	case d.clusterClient == nil:
		return ""
	case d.namesOff != "":
		return "off: " + d.namesOff
	}
	return "on"
}
