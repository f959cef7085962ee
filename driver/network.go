package driver

import (
	"errors"
	"fmt"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/clusternet"
	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/fault"
	"github.com/mynet/mynet/internal/ids"
	"github.com/mynet/mynet/internal/store"
)

// step is one undoable part of building a network. A step that fails must
// leave nothing behind itself; its undo is for when a later step fails.
type step struct {
	name string
	do   func() (undo func(), err error)
}

// runSteps runs steps in order; when one fails, it undoes the ones that
// succeeded, last first, and returns the failure.
func runSteps(log *logrus.Entry, steps []step) error {
	var undos []func()
	for _, s := range steps {
		start := time.Now()
		undo, err := s.do()
		if err != nil {
			for i := len(undos) - 1; i >= 0; i-- {
				undos[i]()
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if undo != nil {
			undos = append(undos, undo)
		}
		log.WithFields(logrus.Fields{"step": s.name, "took": time.Since(start).Round(time.Microsecond)}).Debug("done")
	}
	return nil
}

func (d *Driver) putNetwork(n *netState) error {
	return d.store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucketNetworks, n.Config.ID, n) })
}

// CreateNetwork implements network.Driver. The network is recorded as
// "creating" before the kernel is touched and as in service after, so a
// crash in between is rolled back at the next start; a failed step undoes
// the ones before it.
func (d *Driver) CreateNetwork(req *network.CreateNetworkRequest) error {
	cfg, err := parseNetworkConfig(req)
	if err != nil {
		return err
	}
	space := ""
	switch {
	case !cfg.NoIPv4:
		space = req.IPv4Data[0].AddressSpace
	case len(req.IPv6Data) > 0:
		space = req.IPv6Data[0].AddressSpace
	}
	if err := d.resolveCluster(cfg, space); err != nil {
		return err
	}
	if cfg.Encrypted && cfg.Cluster == "" {
		return errdefs.Invalid("option %s: only cluster networks are encrypted (with --ipam-driver mynet --ipam-opt %s=NAME); a local network's traffic never leaves this host", OptEncrypted, OptCluster)
	}
	d.opsMu.RLock()
	defer d.opsMu.RUnlock()
	log := d.log.WithFields(logrus.Fields{"network": ids.Short(cfg.ID), "bridge": cfg.BridgeName, "subnet": cfg.Subnet})
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.networks[cfg.ID]; ok {
		if old.Config.same(cfg) && old.Phase == "" {
			log.Info("network already exists, as requested")
			return nil
		}
		return errdefs.Conflict("network %s already exists with another configuration", ids.Short(cfg.ID))
	}
	for _, other := range d.networks {
		if err := cfg.conflicts(&other.Config); err != nil {
			return err
		}
	}
	exists, bridge, err := d.links.IsBridge(cfg.BridgeName)
	switch {
	case err != nil:
		return err
	case exists && !bridge:
		return errdefs.Invalid("option %s: %s exists and is not a bridge", OptBridgeName, cfg.BridgeName)
	case exists && cfg.UserBridge && cfg.Cluster != "":
		// A cluster network's VXLAN and its other hosts' containers would
		// land on docker0, another network's bridge or a LAN's.
		return errdefs.Invalid("option %s: %s exists; a cluster network never adopts a bridge it did not create: name a new one, or leave the option out", OptBridgeName, cfg.BridgeName)
	case exists && !cfg.UserBridge:
		log.Warn("reusing a leftover bridge with this network's name")
	}
	state := &netState{Config: *cfg, CreatedBridge: !cfg.UserBridge || !exists, Phase: phaseCreating}

	err = runSteps(log, []step{
		{"record intent", func() (func(), error) {
			if err := d.putNetwork(state); err != nil {
				return nil, err
			}
			d.fault.At(fault.CreateNetworkIntent)
			return func() {
				_ = d.store.Update(func(tx store.Tx) error { return tx.Delete(bucketNetworks, cfg.ID) })
			}, nil
		}},
		{"enable forwarding", func() (func(), error) {
			if cfg.Internal {
				return nil, nil
			}
			if err := d.sysctl("net/ipv4/ip_forward", "1"); err != nil {
				return nil, err
			}
			if cfg.Subnet6.IsValid() {
				return nil, d.sysctl("net/ipv6/conf/all/forwarding", "1")
			}
			return nil, nil
		}},

		{"check IPv6 firewall", func() (func(), error) {
			if cfg.Subnet6.IsValid() && !d.fw.HasIPv6() {
				return nil, errdefs.Invalid("IPv6 networks need ip6tables, which this host lacks")
			}
			return nil, nil
		}},
		// The bridge (netlink) and the rules (iptables-save and -restore,
		// two programs run) are made at once: neither needs the other.
		{"set up the bridge and its rules", func() (func(), error) {
			var fwErr error
			fwDone := make(chan struct{})
			go func() {
				defer close(fwDone)
				// AddNetwork also repairs mynet's chains and jumps in the same
				// batch. The batch is atomic per table, so one table may have
				// been written before another failed: undo (below) removes
				// whatever is tagged.
				fwErr = d.fw.AddNetwork(firewallNetwork(cfg))
			}()
			brErr := d.setupBridge(cfg)
			<-fwDone
			// The crash points, once both are done (a crash while the
			// rules' program runs is the same as before: the program ends
			// the batch, or the batch never was).
			if brErr == nil {
				d.fault.At(fault.CreateNetworkBridge)
				if fwErr == nil {
					d.fault.At(fault.CreateNetworkFirewall)
				}
			}
			undo := func() {
				_ = d.fw.RemoveNetwork(firewallNetwork(cfg))
				d.teardownBridge(state)
			}
			switch {
			case brErr != nil:
				undo()
				return nil, fmt.Errorf("bridge %s: %w", cfg.BridgeName, brErr)
			case fwErr != nil:
				undo()
				return nil, fmt.Errorf("iptables: %w", fwErr)
			}
			return undo, nil
		}},
		{"save network", func() (func(), error) {
			state.Phase = ""
			if err := d.putNetwork(state); err != nil {
				state.Phase = phaseCreating
				return nil, err
			}
			d.fault.At(fault.CreateNetworkSaved)
			return nil, nil
		}},
	})
	if err != nil {
		log.WithError(err).Warn("create network failed; undone")
		return fmt.Errorf("create network %s: %w", ids.Short(cfg.ID), err)
	}
	d.networks[cfg.ID] = state
	if cfg.Cluster != "" {
		d.addClusterNet(cfg)
	}
	log.WithFields(logrus.Fields{"created_bridge": state.CreatedBridge, "cluster_network": cfg.Cluster}).Info("network created")
	return nil
}

// setupBridge makes the network's bridge as its config says, accepting one
// that exists and fits (ip link add NAME type bridge; ip addr add GW dev
// NAME; ip link set NAME up), with the per-bridge settings that go with it.
// CreateNetwork and Reconcile both build bridges here. On error the caller
// tears down what it owns.
func (d *Driver) setupBridge(cfg *NetworkConfig) error {
	if _, err := d.links.EnsureBridge(bridgeConfig(cfg, d.fw.BridgeGroup())); err != nil {
		return err
	}
	if cfg.Cluster != "" {
		// A cluster network's bridge has its VXLAN device as a port.
		if err := d.links.EnsureVXLAN(cfg.vxlanConfig(d.cluster.Underlay)); err != nil {
			return err
		}
	}
	d.setBridgeSysctls(cfg)
	// enable_icc=false drops traffic between ports of the bridge in
	// iptables, which sees it only when the bridge passes it there.
	if !cfg.ICC {
		if err := d.links.SetBridgeNetfilter(cfg.BridgeName); err != nil {
			return err
		}
	}
	return nil
}

// networkEndpoints lists the endpoints of a network. Caller holds d.mu.
func (d *Driver) networkEndpoints(networkID string) []*Endpoint {
	var eps []*Endpoint
	for _, ep := range d.endpoints {
		if ep.NetworkID == networkID {
			eps = append(eps, ep)
		}
	}
	return eps
}

// deleteNetworkRecords deletes a network and its endpoints from the store
// in one transaction.
func (d *Driver) deleteNetworkRecords(networkID string, eps []*Endpoint) error {
	return d.store.Update(func(tx store.Tx) error {
		for _, ep := range eps {
			if err := tx.Delete(bucketEndpoints, ep.ID); err != nil {
				return err
			}
		}
		if err := clusternet.DeleteSaved(tx, networkID); err != nil {
			return err
		}
		return tx.Delete(bucketNetworks, networkID)
	})
}

// dropNetwork forgets a network and its endpoints in memory. Caller holds
// d.mu.
func (d *Driver) dropNetwork(networkID string, eps []*Endpoint) {
	for _, ep := range eps {
		delete(d.endpoints, ep.ID)
	}
	delete(d.networks, networkID)
}

// teardownBridge removes the bridge if mynet created it, else only mynet's
// addresses from it.
func (d *Driver) teardownBridge(n *netState) error {
	if n.Config.VXLAN != "" {
		if err := d.links.DeleteLink(n.Config.VXLAN); err != nil {
			return err
		}
	}
	if n.CreatedBridge {
		return d.links.DeleteLink(n.Config.BridgeName)
	}
	return d.links.ReleaseBridge(n.Config.BridgeName, bridgeAddrs(&n.Config), d.fw.BridgeGroup())
}

// teardownBridgeLater is teardownBridge with the deletion of a bridge mynet
// named itself moved to the background (see deleteLinkInBackground). A bridge the user named
// may be wanted again at once, so it is handled before returning.
func (d *Driver) teardownBridgeLater(n *netState) error {
	if n.CreatedBridge && !n.Config.UserBridge {
		if n.Config.VXLAN != "" {
			d.deleteLinkInBackground(n.Config.VXLAN)
		}
		d.deleteLinkInBackground(n.Config.BridgeName)
		return nil
	}
	return d.teardownBridge(n)
}

// teardownNetwork removes a network's kernel objects: its endpoints' veths
// and host ports, its rules, and its bridge (or mynet's addresses on a
// bridge it adopted); the links of its own naming go in the background.
// Missing objects are not errors.
func (d *Driver) teardownNetwork(n *netState, endpoints []*Endpoint) error {
	var errs []error
	for _, ep := range endpoints {
		d.releasePorts(ep.Ports)
		d.deleteLinkInBackground(ep.HostVeth)
	}
	if err := d.fw.RemoveNetwork(firewallNetwork(&n.Config)); err != nil {
		errs = append(errs, err)
	}
	if err := d.teardownBridgeLater(n); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DeleteNetwork implements network.Driver. The network is marked "deleting"
// first, so a crash midway is finished at the next start. An unknown
// network is not an error: dockerd never retries a failed delete and
// forgets the network anyway, so the driver removes what it can and always
// forgets it too; what it could not remove, Reconcile collects later.
func (d *Driver) DeleteNetwork(req *network.DeleteNetworkRequest) error {
	if err := validID("network", req.NetworkID); err != nil {
		return err
	}
	// A cluster network's watch stops first (it takes d.mu itself), and
	// nothing more of its peers is recorded or saved.
	if d.nets != nil {
		d.nets.Remove(req.NetworkID)
	}
	d.opsMu.RLock()
	defer d.opsMu.RUnlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[req.NetworkID]
	if !ok {
		d.log.WithField("network", ids.Short(req.NetworkID)).Debug("delete of unknown network ignored")
		return nil
	}
	log := d.log.WithFields(logrus.Fields{"network": ids.Short(n.Config.ID), "bridge": n.Config.BridgeName})
	endpoints := d.networkEndpoints(n.Config.ID)
	n.Phase = phaseDeleting
	if err := d.putNetwork(n); err != nil {
		n.Phase = ""
		return fmt.Errorf("delete network %s: %w", ids.Short(n.Config.ID), err)
	}
	d.fault.At(fault.DeleteNetworkMarked)
	kernelErr := d.teardownNetwork(n, endpoints)
	d.fault.At(fault.DeleteNetworkKernel)
	storeErr := d.deleteNetworkRecords(n.Config.ID, endpoints)
	d.dropNetwork(n.Config.ID, endpoints)
	if err := errors.Join(kernelErr, storeErr); err != nil {
		log.WithError(err).Warn("network deleted, but some cleanup failed; reconcile will retry")
		return fmt.Errorf("delete network %s: %w", ids.Short(n.Config.ID), err)
	}
	log.Info("network deleted")
	return nil
}

// GwAllocCheck answers Docker 28's question, before it allocates addresses,
// whether the network needs gateway addresses. It also validates the
// options, so a bad one fails before anything is allocated.
func (d *Driver) GwAllocCheck(opts map[string]any) (skipIPv4, skipIPv6 bool, err error) {
	cfg := defaultConfig("")
	if _, err := parseOptions(cfg, opts); err != nil {
		return false, false, err
	}
	return skipGateway4(cfg), skipGateway6(cfg), nil
}
