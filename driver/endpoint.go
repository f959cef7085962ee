package driver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/fault"
	"github.com/mynet/mynet/internal/ids"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/store"
)

// Veth names: prefix plus the first 12 hex digits of the endpoint ID.
const (
	HostVethPrefix = "mnh"
	PeerVethPrefix = "mnc"
)

// macFromIP derives a MAC from an IPv4 address the way the bridge driver of
// Docker 20.10 does (02:42 followed by the address), so the same container
// address gets the same MAC under both drivers (see RandomMACs for newer
// engines).
func macFromIP(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// endpointRequest validates a CreateEndpoint request against its network.
func (d *Driver) endpointRequest(req *network.CreateEndpointRequest) (*Endpoint, *NetworkConfig, error) {
	if err := validID("network", req.NetworkID); err != nil {
		return nil, nil, err
	}
	if err := validID("endpoint", req.EndpointID); err != nil {
		return nil, nil, err
	}
	if req.Interface == nil {
		return nil, nil, errdefs.Invalid("endpoint %s has no interface data", ids.Short(req.EndpointID))
	}
	var addr, addr6 netip.Prefix
	var err error
	if req.Interface.Address != "" {
		if addr, err = netip.ParsePrefix(req.Interface.Address); err != nil || !addr.Addr().Is4() {
			return nil, nil, errdefs.Invalid("invalid endpoint address %q", req.Interface.Address)
		}
	}
	if req.Interface.AddressIPv6 != "" {
		if addr6, err = netip.ParsePrefix(req.Interface.AddressIPv6); err != nil || !addr6.Addr().Is6() {
			return nil, nil, errdefs.Invalid("invalid endpoint IPv6 address %q", req.Interface.AddressIPv6)
		}
	}
	d.mu.Lock()
	n, ok := d.networks[req.NetworkID]
	var cfg NetworkConfig
	if ok {
		cfg = n.Config
	}
	d.mu.Unlock()
	if !ok {
		return nil, nil, errdefs.NotFound("network %s not found", ids.Short(req.NetworkID))
	}
	switch {
	case cfg.NoIPv4 && addr.IsValid():
		return nil, nil, errdefs.Invalid("endpoint address %s on a network without IPv4", addr)
	case cfg.NoIPv4 && !addr6.IsValid():
		return nil, nil, errdefs.Invalid("endpoint %s has no IPv6 address; this network has IPv6 only", ids.Short(req.EndpointID))
	case !cfg.NoIPv4 && !addr.IsValid():
		return nil, nil, errdefs.Invalid("endpoint %s has no IPv4 address; the network needs one", ids.Short(req.EndpointID))
	case !cfg.NoIPv4 && !cfg.Subnet.Contains(addr.Addr()):
		return nil, nil, errdefs.Invalid("endpoint address %s is outside the network's subnet %s", addr, cfg.Subnet)
	}
	if addr6.IsValid() && (!cfg.Subnet6.IsValid() || !cfg.Subnet6.Contains(addr6.Addr())) {
		return nil, nil, errdefs.Invalid("endpoint IPv6 address %s is outside the network's IPv6 subnet %v", addr6, cfg.Subnet6)
	}
	ifname, err := endpointIfName(req.Options)
	if err != nil {
		return nil, nil, err
	}
	ep := &Endpoint{
		IfName:      ifname,
		ID:          req.EndpointID,
		NetworkID:   req.NetworkID,
		HostVeth:    HostVethPrefix + req.EndpointID[:12],
		PeerVeth:    PeerVethPrefix + req.EndpointID[:12],
		Address:     addr,
		AddressIPv6: addr6,
	}
	if m := req.Interface.MacAddress; m != "" {
		mac, err := net.ParseMAC(m)
		if err != nil || len(mac) != 6 {
			return nil, nil, errdefs.Invalid("invalid MAC address %q", m)
		}
		ep.MAC, ep.MACFromDocker = mac.String(), true
	} else if addr.IsValid() && !cfg.RandomMACs {
		ep.MAC = macFromIP(addr.Addr()).String()
	} else {
		// As Engine 28's bridge and later (and every IPv6-only endpoint).
		ep.MAC = netutil.RandomMAC().String()
	}
	return ep, &cfg, nil
}

func createResponse(ep *Endpoint) *network.CreateEndpointResponse {
	if ep.MACFromDocker {
		// Docker rejects a driver that sets a field it had set itself.
		return &network.CreateEndpointResponse{}
	}
	return &network.CreateEndpointResponse{Interface: &network.EndpointInterface{MacAddress: ep.MAC}}
}

// CreateEndpoint implements network.Driver: a veth pair whose host end is on
// the network's bridge; Docker moves the other end into the container.
func (d *Driver) CreateEndpoint(req *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	ep, cfg, err := d.endpointRequest(req)
	if err != nil {
		return nil, err
	}
	log := d.log.WithFields(logrus.Fields{"network": ids.Short(ep.NetworkID), "endpoint": ids.Short(ep.ID), "veth": ep.HostVeth, "address": ep.Address})
	unlock, err := d.lockEndpoint(ep.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()

	d.mu.Lock()
	old, exists := d.endpoints[ep.ID]
	d.mu.Unlock()
	if exists {
		if !(old.NetworkID == ep.NetworkID && old.Address == ep.Address && old.AddressIPv6 == ep.AddressIPv6 && old.IfName == ep.IfName &&
			(!ep.MACFromDocker || old.MAC == ep.MAC)) {
			return nil, errdefs.Conflict("endpoint %s already exists with another configuration", ids.Short(ep.ID))
		}
		if ok, err := d.links.LinkExists(old.HostVeth); err != nil {
			return nil, err
		} else if ok {
			log.Info("endpoint already exists, as requested")
			return createResponse(old), nil
		}
		// Recorded, and its veth never made: a crash between the two
		// (they are made at once, below). Made now, as asked.
		log.Warn("endpoint recorded without its veth by an interrupted attempt: making it")
		cp := *old
		ep = &cp
	}

	// A veth of this name without a record is what a crashed earlier attempt
	// at this same endpoint left; dockerd is retrying it.
	if exists, err := d.links.LinkExists(ep.HostVeth); err != nil {
		return nil, err
	} else if exists {
		log.Warn("replacing a veth left by an interrupted attempt")
		if err := d.links.DeleteLink(ep.HostVeth); err != nil {
			return nil, err
		}
	}
	// In a cluster network the endpoint's record goes to etcd (one write,
	// under this host's lease; the other hosts learn it from their watch)
	// while the veth and the local record are made: the two waits overlap.
	// A record without an endpoint (a crash before the save) is withdrawn
	// by the next list; an endpoint without a record is published by it.
	published := func() error { return nil }
	cn := d.clusterNet(cfg.ID)
	if cn != nil {
		addrs := endpointAddrs(ep)
		if d.cluster.NameOf != nil && len(addrs) > 0 {
			ep.Name = d.cluster.NameOf(cfg.Cluster, addrs[0])
		}
		d.mu.Lock()
		for _, a := range addrs {
			d.creating[a] = ep.NetworkID
		}
		d.mu.Unlock()
		defer func() {
			d.mu.Lock()
			for _, a := range addrs {
				delete(d.creating, a)
			}
			d.mu.Unlock()
		}()
		done := make(chan struct{})
		var err error
		cp := *ep
		go func() { err = publish(cn, &cp); close(done) }()
		published = func() error { <-done; return err }
	}
	// The record's write (a store commit: its fsyncs) overlaps the veth's
	// making, as the cluster's publication does: a crash between the two
	// leaves a record without a veth (Reconcile keeps it as stale until
	// Docker deletes it; a retried CreateEndpoint makes the veth) or a
	// veth without a record (replaced above, by the retry).
	var persistErr error
	persistDone := make(chan struct{})
	go func() { persistErr = d.persistEndpoint(ep); close(persistDone) }()
	persisted := func() error { <-persistDone; return persistErr }
	undo := func(err error) (*network.CreateEndpointResponse, error) {
		_ = d.links.DeleteLink(ep.HostVeth)
		// A record that was there before this call (made whole here) stays.
		if persisted() == nil && !exists {
			_ = d.store.Update(func(tx store.Tx) error { return tx.Delete(bucketEndpoints, ep.ID) })
		}
		if cn != nil && published() == nil {
			_ = unpublish(cn, ep)
		}
		return nil, fmt.Errorf("create endpoint %s: %w", ids.Short(ep.ID), err)
	}
	mac, _ := net.ParseMAC(ep.MAC)
	if err := d.links.AddVeth(netutil.VethConfig{
		HostName: ep.HostVeth, PeerName: ep.PeerVeth, PeerMAC: mac, MTU: cfg.MTU, Bridge: cfg.BridgeName, Hairpin: true,
	}); err != nil {
		return undo(err)
	}
	d.fault.At(fault.CreateEndpointVeth)
	if err := persisted(); err != nil {
		return undo(err)
	}
	if err := published(); err != nil {
		// Not published, so undo withdraws nothing.
		return undo(err)
	}
	d.rememberEndpoint(ep)
	d.fault.At(fault.CreateEndpointSaved)
	log.WithField("mac", ep.MAC).Info("endpoint created")
	return createResponse(ep), nil
}

// lockEndpoint validates an endpoint ID and serializes the mutating call on
// it: the ops lock shared (see Reconcile), then the endpoint's own lock.
func (d *Driver) lockEndpoint(id string) (unlock func(), err error) {
	if err := validID("endpoint", id); err != nil {
		return nil, err
	}
	d.opsMu.RLock()
	epUnlock := d.epLocks.lock(id)
	return func() {
		epUnlock()
		d.opsMu.RUnlock()
	}, nil
}

// endpoint returns a copy of a stored endpoint and its network's config.
func (d *Driver) endpoint(networkID, endpointID string) (Endpoint, NetworkConfig, error) {
	if err := validID("network", networkID); err != nil {
		return Endpoint{}, NetworkConfig{}, err
	}
	if err := validID("endpoint", endpointID); err != nil {
		return Endpoint{}, NetworkConfig{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.endpoints[endpointID]
	if !ok || ep.NetworkID != networkID {
		return Endpoint{}, NetworkConfig{}, errdefs.NotFound("endpoint %s not found in network %s", ids.Short(endpointID), ids.Short(networkID))
	}
	n, ok := d.networks[networkID]
	if !ok {
		return Endpoint{}, NetworkConfig{}, errdefs.NotFound("network %s not found", ids.Short(networkID))
	}
	return *ep, n.Config, nil
}

// DeleteEndpoint implements network.Driver. The record goes first, then
// the kernel objects: a crash in between leaves only objects named like
// mynet's that no record claims, which Reconcile removes. Deleting an
// unknown endpoint succeeds, so a repeated call is harmless.
func (d *Driver) DeleteEndpoint(req *network.DeleteEndpointRequest) error {
	unlock, err := d.lockEndpoint(req.EndpointID)
	if err != nil {
		return err
	}
	defer unlock()
	d.mu.Lock()
	ep, ok := d.endpoints[req.EndpointID]
	d.mu.Unlock()
	if !ok {
		d.log.WithField("endpoint", ids.Short(req.EndpointID)).Debug("delete of unknown endpoint ignored")
		return nil
	}
	log := d.log.WithFields(logrus.Fields{"network": ids.Short(ep.NetworkID), "endpoint": ids.Short(ep.ID), "veth": ep.HostVeth})
	if err := d.store.Update(func(tx store.Tx) error { return tx.Delete(bucketEndpoints, ep.ID) }); err != nil {
		return fmt.Errorf("delete endpoint %s: %w", ids.Short(ep.ID), err)
	}
	d.mu.Lock()
	delete(d.endpoints, ep.ID)
	d.mu.Unlock()
	cn := d.clusterNet(ep.NetworkID)
	if cn != nil {
		cn.RemoveLocal(ep.ID)
	}
	d.fault.At(fault.DeleteEndpointStore)
	d.leaveNames(*ep)
	var errs []error
	if len(ep.Ports) > 0 {
		// Docker revokes before it deletes, but a failed revoke is not retried.
		if err := d.unpublish(ep); err != nil {
			errs = append(errs, err)
		}
	}
	d.deleteLinkInBackground(ep.HostVeth)
	if cn != nil {
		// A record left by a failure here is withdrawn by the next list.
		if err := unpublish(cn, ep); err != nil {
			log.WithError(err).Warn("could not withdraw the endpoint from the cluster; the next resync will")
		}
	}
	d.fault.At(fault.DeleteEndpointKernel)
	if err := errors.Join(errs...); err != nil {
		log.WithError(err).Warn("endpoint deleted, but some cleanup failed; reconcile will retry")
		return fmt.Errorf("delete endpoint %s: %w", ids.Short(ep.ID), err)
	}
	log.Info("endpoint deleted")
	return nil
}

// EndpointInfo implements network.Driver (EndpointOperInfo).
func (d *Driver) EndpointInfo(req *network.InfoRequest) (*network.InfoResponse, error) {
	ep, cfg, err := d.endpoint(req.NetworkID, req.EndpointID)
	if err != nil {
		return nil, err
	}
	v := map[string]string{
		"id":             ep.ID,
		"network":        ep.NetworkID,
		"mac":            ep.MAC,
		"ipv4":           ep.Address.String(),
		"bridge":         cfg.BridgeName,
		"veth_host":      ep.HostVeth,
		"veth_container": ep.PeerVeth,
	}
	if ep.AddressIPv6.IsValid() {
		v["ipv6"] = ep.AddressIPv6.String()
	}
	if len(ep.Ports) > 0 {
		v["ports"] = FormatPorts(ep.Ports)
	}
	return &network.InfoResponse{Value: v}, nil
}

// Endpoints returns a copy of every endpoint.
func (d *Driver) Endpoints() []Endpoint {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Endpoint, 0, len(d.endpoints))
	for _, ep := range d.endpoints {
		out = append(out, *ep)
	}
	return out
}

// saveEndpoint writes an endpoint to the store and the map.
func (d *Driver) saveEndpoint(ep *Endpoint) error {
	if err := d.persistEndpoint(ep); err != nil {
		return err
	}
	d.rememberEndpoint(ep)
	return nil
}

// persistEndpoint writes an endpoint to the store only.
func (d *Driver) persistEndpoint(ep *Endpoint) error {
	if err := d.store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucketEndpoints, ep.ID, ep) }); err != nil {
		return fmt.Errorf("save endpoint %s: %w", ids.Short(ep.ID), err)
	}
	return nil
}

// rememberEndpoint puts a saved endpoint in the map (and a cluster
// network's local names).
func (d *Driver) rememberEndpoint(ep *Endpoint) {
	cp := *ep
	cp.Ports = slices.Clone(ep.Ports)
	d.mu.Lock()
	d.endpoints[ep.ID] = &cp
	d.mu.Unlock()
	if cn := d.clusterNet(ep.NetworkID); cn != nil {
		cn.SetLocal(cp.ID, cp.Name, cp.Aliases)
	}
}
