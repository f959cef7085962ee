package driver

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/errdefs"
	"github.com/mynet/mynet/firewall"
	"github.com/mynet/mynet/hostport"
	"github.com/mynet/mynet/netutil"
	"github.com/mynet/mynet/store"
)

const (
	bucketNetworks  = "networks"
	bucketEndpoints = "endpoints"
)

// linksAPI is the part of netutil.Links the driver uses.
type linksAPI interface {
	EnsureBridge(netutil.BridgeConfig) (bool, error)
	RemoveAddrs(name string, addrs []netip.Prefix) error
	DeleteLink(name string) error
	AddVeth(netutil.VethConfig) error
	LinkExists(name string) (bool, error)
	IsBridge(name string) (exists, bridge bool, err error)
}

// firewallAPI is the part of firewall.Firewall the driver uses.
type firewallAPI interface {
	EnsureBase() error
	AddNetwork(firewall.Network) error
	RemoveNetwork(networkID string) error
	SetEndpoint(firewall.Network, firewall.Endpoint) error
	HasIPv6() bool
}

// portsAPI is the part of hostport.Reserver the driver uses.
type portsAPI interface {
	Reserve(proto string, ip netip.Addr, first, last uint16) (uint16, error)
	Release(hostport.Key)
}

var (
	_ linksAPI    = (*netutil.Links)(nil)
	_ firewallAPI = (*firewall.Firewall)(nil)
	_ portsAPI    = (*hostport.Reserver)(nil)
)

// Config is what a Driver is built from.
type Config struct {
	Store    store.Store
	Links    linksAPI
	Firewall firewallAPI
	// EnsureSysctl sets a sysctl such as net/ipv4/ip_forward; netutil.EnsureSysctl.
	EnsureSysctl func(name, value string) error
	// Ports reserves published host ports; nil uses a new hostport.Reserver.
	Ports portsAPI
	Log   *logrus.Entry
}

// Driver implements Docker's remote NetworkDriver for bridge networks.
type Driver struct {
	store   store.Store
	links   linksAPI
	fw      firewallAPI
	sysctl  func(name, value string) error
	ports   portsAPI
	log     *logrus.Entry
	epLocks keyedMutex // serializes calls on the same endpoint ID

	mu        sync.Mutex // guards networks and endpoints; see doc.go
	networks  map[string]*netState
	endpoints map[string]*Endpoint
}

var _ network.Driver = (*Driver)(nil)

// netState is a network as persisted.
type netState struct {
	Config NetworkConfig `json:"config"`
	// CreatedBridge records that mynet created the bridge, so DeleteNetwork
	// removes it; a bridge the user had made is only stripped of our address.
	CreatedBridge bool `json:"created_bridge"`
}

// Endpoint is an endpoint as persisted.
type Endpoint struct {
	ID          string        `json:"id"`
	NetworkID   string        `json:"network_id"`
	HostVeth    string        `json:"host_veth"`
	PeerVeth    string        `json:"peer_veth"`
	MAC         string        `json:"mac"`
	Address     netip.Prefix  `json:"address"`
	AddressIPv6 netip.Prefix  `json:"address6"`
	Ports       []PortMapping `json:"ports,omitempty"` // published ports, as programmed
	// MACFromDocker records whether Docker chose the MAC, so a repeated
	// CreateEndpoint answers exactly as the first one did.
	MACFromDocker bool `json:"mac_from_docker"`
}

// New builds a driver and loads its networks and endpoints from the store.
// Call Restore to re-assert their kernel state.
func New(cfg Config) (*Driver, error) {
	d := &Driver{
		store:     cfg.Store,
		links:     cfg.Links,
		fw:        cfg.Firewall,
		sysctl:    cfg.EnsureSysctl,
		ports:     cfg.Ports,
		log:       cfg.Log,
		networks:  map[string]*netState{},
		endpoints: map[string]*Endpoint{},
	}
	if d.log == nil {
		d.log = logrus.NewEntry(logrus.StandardLogger())
	}
	if d.ports == nil {
		d.ports = hostport.New()
	}
	err := d.store.View(func(tx store.Tx) error {
		if err := store.ForEachJSON(tx, bucketNetworks, func(k string, n *netState) error {
			d.networks[k] = n
			return nil
		}); err != nil {
			return err
		}
		return store.ForEachJSON(tx, bucketEndpoints, func(k string, ep *Endpoint) error {
			d.endpoints[k] = ep
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load networks: %w", err)
	}
	return d, nil
}

// Restore re-asserts the kernel state of every stored network (its bridge
// with the gateway addresses and its firewall rules) and of every endpoint's
// published ports (host port reservations and DNAT rules). It is what brings
// the networks back after a host reboot; endpoints' veths are Docker's to
// recreate when it restarts the containers.
func (d *Driver) Restore() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.networks) == 0 {
		return nil
	}
	if err := d.fw.EnsureBase(); err != nil {
		return err
	}
	var errs []error
	for id, n := range d.networks {
		if _, err := d.links.EnsureBridge(bridgeConfig(&n.Config)); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", short(id), err))
			continue
		}
		if err := d.fw.AddNetwork(firewallNetwork(&n.Config)); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", short(id), err))
		}
		d.setBridgeSysctls(&n.Config)
	}
	for _, ep := range d.endpoints {
		n := d.networks[ep.NetworkID]
		if n == nil || len(ep.Ports) == 0 {
			continue
		}
		if err := d.restorePorts(&n.Config, ep); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", short(ep.ID), err))
		}
	}
	d.log.WithField("networks", len(d.networks)).WithField("endpoints", len(d.endpoints)).Info("restored state")
	return errors.Join(errs...)
}

// bridgeAddrs are the gateway addresses mynet puts on the bridge.
func bridgeAddrs(cfg *NetworkConfig) []netip.Prefix {
	var addrs []netip.Prefix
	if !cfg.InhibitIPv4 {
		addrs = append(addrs, cfg.Gateway)
	}
	if cfg.Gateway6.IsValid() {
		addrs = append(addrs, cfg.Gateway6)
	}
	return addrs
}

func bridgeConfig(cfg *NetworkConfig) netutil.BridgeConfig {
	return netutil.BridgeConfig{Name: cfg.BridgeName, MTU: cfg.MTU, Addrs: bridgeAddrs(cfg)}
}

func firewallNetwork(cfg *NetworkConfig) firewall.Network {
	return firewall.Network{
		ID: cfg.ID, Bridge: cfg.BridgeName, Subnet: cfg.Subnet, Subnet6: cfg.Subnet6,
		ICC: cfg.ICC, Masquerade: cfg.Masquerade, Internal: cfg.Internal,
		SNATSource: cfg.SNATSource, Routed: cfg.Routed(4), Routed6: cfg.Routed(6),
	}
}

// setBridgeSysctls lets published ports be reached on 127.0.0.1: packets
// from a loopback source may then be routed out of the bridge (Docker does
// the same without its userland proxy). Failing that is not fatal: inside a
// managed plugin /proc/sys is read-only, and only loopback access is lost.
func (d *Driver) setBridgeSysctls(cfg *NetworkConfig) {
	if cfg.Internal || cfg.Routed(4) {
		return
	}
	if err := d.sysctl("net/ipv4/conf/"+cfg.BridgeName+"/route_localnet", "1"); err != nil {
		d.log.WithError(err).WithField("bridge", cfg.BridgeName).Warn("published ports will not answer on 127.0.0.1")
	}
}

// GetCapabilities implements network.Driver.
func (d *Driver) GetCapabilities() (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: "local", ConnectivityScope: "local"}, nil
}

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
		log.WithField("step", s.name).Debug("done")
	}
	return nil
}

// CreateNetwork implements network.Driver.
func (d *Driver) CreateNetwork(req *network.CreateNetworkRequest) error {
	cfg, err := parseNetworkConfig(req)
	if err != nil {
		return err
	}
	log := d.log.WithFields(logrus.Fields{"network": short(cfg.ID), "bridge": cfg.BridgeName, "subnet": cfg.Subnet})
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.networks[cfg.ID]; ok {
		if old.Config.same(cfg) {
			log.Info("network already exists, as requested")
			return nil
		}
		return errdefs.Conflict("network %s already exists with another configuration", short(cfg.ID))
	}
	for _, other := range d.networks {
		if err := cfg.conflicts(&other.Config); err != nil {
			return err
		}
	}

	state := netState{Config: *cfg, CreatedBridge: !cfg.UserBridge}
	err = runSteps(log, []step{
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
		{"set up bridge " + cfg.BridgeName, func() (func(), error) {
			exists, bridge, err := d.links.IsBridge(cfg.BridgeName)
			switch {
			case err != nil:
				return nil, err
			case exists && !bridge:
				return nil, errdefs.Invalid("option %s: %s exists and is not a bridge", OptBridgeName, cfg.BridgeName)
			case exists && !cfg.UserBridge:
				log.Warn("reusing a leftover bridge with this network's name")
			}
			created, err := d.links.EnsureBridge(bridgeConfig(cfg))
			if err != nil {
				return nil, err
			}
			state.CreatedBridge = state.CreatedBridge || created
			d.setBridgeSysctls(cfg)
			return func() {
				if created {
					_ = d.links.DeleteLink(cfg.BridgeName)
				} else {
					_ = d.links.RemoveAddrs(cfg.BridgeName, bridgeAddrs(cfg))
				}
			}, nil
		}},
		{"program iptables", func() (func(), error) {
			if err := d.fw.EnsureBase(); err != nil {
				return nil, err
			}
			if err := d.fw.AddNetwork(firewallNetwork(cfg)); err != nil {
				// The batch is atomic per table, so one table may have been
				// written before another failed: remove whatever is tagged.
				_ = d.fw.RemoveNetwork(cfg.ID)
				return nil, err
			}
			return func() { _ = d.fw.RemoveNetwork(cfg.ID) }, nil
		}},
		{"save network", func() (func(), error) {
			return nil, d.store.Update(func(tx store.Tx) error {
				return store.PutJSON(tx, bucketNetworks, cfg.ID, state)
			})
		}},
	})
	if err != nil {
		log.WithError(err).Warn("create network failed; undone")
		return fmt.Errorf("create network %s: %w", short(cfg.ID), err)
	}
	d.networks[cfg.ID] = &state
	log.WithField("created_bridge", state.CreatedBridge).Info("network created")
	return nil
}

// DeleteNetwork implements network.Driver. An unknown network is not an
// error: dockerd never retries a failed delete and forgets the network
// anyway, so the driver removes what it can and always forgets it too.
func (d *Driver) DeleteNetwork(req *network.DeleteNetworkRequest) error {
	if err := validID("network", req.NetworkID); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[req.NetworkID]
	if !ok {
		d.log.WithField("network", short(req.NetworkID)).Debug("delete of unknown network ignored")
		return nil
	}
	cfg := &n.Config
	log := d.log.WithFields(logrus.Fields{"network": short(cfg.ID), "bridge": cfg.BridgeName})
	var errs []error
	var leftover []string
	for id, ep := range d.endpoints {
		if ep.NetworkID == cfg.ID {
			d.releasePorts(ep.Ports)
			if err := d.links.DeleteLink(ep.HostVeth); err != nil {
				errs = append(errs, err)
			}
			leftover = append(leftover, id)
		}
	}
	if err := d.fw.RemoveNetwork(cfg.ID); err != nil {
		errs = append(errs, err)
	}
	if !n.CreatedBridge {
		// Hand a bridge the user had made back as it was found, minus our
		// address.
		if err := d.links.RemoveAddrs(cfg.BridgeName, bridgeAddrs(cfg)); err != nil {
			errs = append(errs, err)
		}
	} else if err := d.links.DeleteLink(cfg.BridgeName); err != nil {
		errs = append(errs, err)
	}
	if err := d.store.Update(func(tx store.Tx) error {
		for _, id := range leftover {
			if err := tx.Delete(bucketEndpoints, id); err != nil {
				return err
			}
		}
		return tx.Delete(bucketNetworks, cfg.ID)
	}); err != nil {
		errs = append(errs, err)
	}
	delete(d.networks, cfg.ID)
	for _, id := range leftover {
		delete(d.endpoints, id)
	}
	if err := errors.Join(errs...); err != nil {
		log.WithError(err).Warn("network deleted, but some cleanup failed")
		return fmt.Errorf("delete network %s: %w", short(cfg.ID), err)
	}
	log.Info("network deleted")
	return nil
}

// AllocateNetwork implements network.Driver; it is only called in swarm
// mode, which a local-scope driver takes no part in.
func (d *Driver) AllocateNetwork(*network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return &network.AllocateNetworkResponse{Options: map[string]string{}}, nil
}

// FreeNetwork implements network.Driver (swarm only).
func (d *Driver) FreeNetwork(*network.FreeNetworkRequest) error { return nil }

// DiscoverNew implements network.Driver; node discovery means nothing to a
// local bridge.
func (d *Driver) DiscoverNew(*network.DiscoveryNotification) error { return nil }

// DiscoverDelete implements network.Driver.
func (d *Driver) DiscoverDelete(*network.DiscoveryNotification) error { return nil }

// Networks returns a copy of every network's config.
func (d *Driver) Networks() []NetworkConfig {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]NetworkConfig, 0, len(d.networks))
	for _, n := range d.networks {
		out = append(out, n.Config)
	}
	return out
}

// keyedMutex serializes work per key without one global lock.
type keyedMutex struct {
	mu    sync.Mutex // guards locks
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
