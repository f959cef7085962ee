package driver

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/clusternet"
	"github.com/mynet/mynet/internal/ids"
)

// NameForwarders puts a name forwarder in the sandboxes of containers on
// cluster networks (internal/dnsforward): the driver tells it which
// sandbox each cluster endpoint joined and left. Its calls never wait on
// the kernel: a Join does not wait on the forwarder.
type NameForwarders interface {
	Attach(sandbox, endpointID, networkID string)
	Detach(sandbox, endpointID string)
}

// joinNames records a cluster endpoint's sandbox and gives it a forwarder.
func (d *Driver) joinNames(ep Endpoint, cfg NetworkConfig, sandbox string) {
	if d.names == nil || cfg.Cluster == "" || sandbox == "" {
		return
	}
	if ep.Sandbox != sandbox {
		ep.Sandbox = sandbox
		if err := d.saveEndpoint(&ep); err != nil {
			// Only a restart's forwarder misses it.
			d.log.WithError(err).WithField("endpoint", ids.Short(ep.ID)).Warn("could not save the endpoint's sandbox")
		}
	}
	d.names.Attach(sandbox, ep.ID, ep.NetworkID)
}

// leaveNames takes a cluster endpoint's forwarder away.
func (d *Driver) leaveNames(ep Endpoint) {
	if d.names == nil || ep.Sandbox == "" {
		return
	}
	d.names.Detach(ep.Sandbox, ep.ID)
}

// AttachSandboxes gives every joined cluster endpoint its forwarder again
// (at start, after Restore: forwarders do not outlive the process).
func (d *Driver) AttachSandboxes() {
	if d.names == nil {
		return
	}
	d.mu.Lock()
	var eps []Endpoint
	for _, ep := range d.endpoints {
		if n := d.networks[ep.NetworkID]; n != nil && n.Config.Cluster != "" && ep.Sandbox != "" {
			eps = append(eps, *ep)
		}
	}
	d.mu.Unlock()
	for _, ep := range eps {
		d.names.Attach(ep.Sandbox, ep.ID, ep.NetworkID)
	}
	if len(eps) > 0 {
		d.log.WithField("sandboxes", len(eps)).Info("name forwarders back in the cluster endpoints' sandboxes")
	}
}

// ResolveName answers a forwarder's question for name (lower case) on the
// networks (IDs): the addresses of live other hosts' containers of that
// name, and whether a container of this host has it there (then Docker's
// own resolver answers). It takes no lock of the driver's and scans
// nothing (clusternet Table.Resolve).
func (d *Driver) ResolveName(networks []string, name string) (addrs []netip.Addr, local bool) {
	if d.nets == nil {
		return nil, false
	}
	addrs, local = d.nets.Resolve(networks, name)
	if len(addrs) > 0 && d.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		d.log.WithFields(logrus.Fields{"name": name, "addresses": addrs}).Debug("name of another host's container answered")
	}
	return addrs, local
}

// ResolveAddr answers a forwarder's PTR question for ip on the networks:
// the name of the live other host's container that has it (name.network).
func (d *Driver) ResolveAddr(networks []string, ip netip.Addr) (string, bool) {
	if d.nets == nil {
		return "", false
	}
	return d.nets.Reverse(networks, ip)
}

// SetLiveNodes tells the driver which hosts are alive (their leases in the
// cluster): names of containers of other hosts are answered only for
// those.
func (d *Driver) SetLiveNodes(nodes []string) {
	if d.nets != nil {
		d.nets.SetAlive(nodes)
	}
}

// SetNetworkNames tells the driver the Docker names of its networks (ID ->
// name), for questions of the form name.network.
func (d *Driver) SetNetworkNames(names map[string]string) {
	if d.nets != nil {
		d.nets.SetNetworkNames(names)
	}
}

// SetEndpointNames records what Docker calls a local endpoint's container
// on its network (its name after a rename, its aliases), and publishes
// the record again when that changed, so every host answers the names as
// Docker does here. The Docker sync calls it, never a handler. An
// endpoint that is not a cluster network's is left alone.
func (d *Driver) SetEndpointNames(endpointID, name string, aliases []string) error {
	d.mu.Lock()
	ep := d.endpoints[endpointID]
	var cp Endpoint
	if ep != nil {
		cp = *ep
	}
	d.mu.Unlock()
	if ep == nil {
		return nil
	}
	cn := d.clusterNet(cp.NetworkID)
	if cn == nil {
		return nil
	}
	if !clusternet.ValidDNSName(name) {
		name = ""
	}
	aliases = clusternet.DNSNames(aliases, strings.ToLower(name))
	if cp.Name == name && slices.Equal(cp.Aliases, aliases) {
		return nil
	}
	cp.Name, cp.Aliases = name, aliases
	if err := publish(cn, &cp); err != nil {
		return fmt.Errorf("publish the names of endpoint %s: %w", ids.Short(endpointID), err)
	}
	if err := d.saveEndpoint(&cp); err != nil {
		return err
	}
	d.log.WithFields(logrus.Fields{"endpoint": ids.Short(endpointID), "name": name, "aliases": aliases}).Info("endpoint's names published")
	return nil
}
