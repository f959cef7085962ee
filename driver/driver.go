package driver

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/clusternet"
	"github.com/mynet/mynet/internal/fault"
	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/hostport"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/store"
)

const (
	bucketNetworks  = "networks"
	bucketEndpoints = "endpoints"
)

// linksAPI is the part of netutil.Links the driver uses.
type linksAPI interface {
	EnsureBridge(netutil.BridgeConfig) (bool, error)
	ReleaseBridge(name string, addrs []netip.Prefix, group uint32) error
	DeleteLink(name string) error
	AddVeth(netutil.VethConfig) error
	LinkExists(name string) (bool, error)
	IsBridge(name string) (exists, bridge bool, err error)
	EnsurePort(name, bridge string) error
	ListLinkNames(prefix string) ([]string, error)
	SetRouteLocalnet(name string) error
	SetBridgeNetfilter(name string) error
	EnsureVXLAN(netutil.VXLANConfig) error
	AnnounceOwn(bridge string, ip netip.Addr) error
	clusternet.Kernel // a cluster network's peers on its VXLAN device
}

// firewallAPI is the part of firewall.Firewall the driver uses.
type firewallAPI interface {
	AddNetwork(firewall.Network) error
	RemoveNetwork(firewall.Network) error
	SetEndpoint(firewall.Network, firewall.Endpoint) error
	HasIPv6() bool
	Reconcile([]firewall.State) (firewall.Report, error)
	// BridgeGroup is the device group the rules expect the bridges in.
	BridgeGroup() uint32
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
	// Cluster is what cluster networks need; its zero value (no
	// --cluster-store) has none.
	Cluster ClusterConfig
	// Names puts name forwarders in cluster endpoints' sandboxes (nil:
	// none; names resolve on the same host only).
	Names NameForwarders
	// Fault is the test-only crash hook (internal/fault); nil in production.
	Fault fault.Hook
	Log   *logrus.Entry
}

// Driver implements Docker's remote NetworkDriver for bridge networks.
type Driver struct {
	store   store.Store
	links   linksAPI
	fw      firewallAPI
	sysctl  func(name, value string) error
	ports   portsAPI
	fault   fault.Hook
	log     *logrus.Entry
	epLocks keyedMutex // serializes calls on the same endpoint ID
	names   NameForwarders

	// opsMu is held shared by every mutating call and exclusively by
	// Reconcile, so a reconcile never sees a call half done.
	opsMu sync.RWMutex
	// background counts kernel deletions still running after their call
	// answered (see deleteLinkInBackground); Close waits for them.
	background sync.WaitGroup

	cluster ClusterConfig

	mu        sync.Mutex // guards networks, endpoints and creating; see doc.go
	networks  map[string]*netState
	endpoints map[string]*Endpoint
	creating  map[netip.Addr]string // cluster endpoints being created: address -> network ID
	// nets are the cluster networks (internal/clusternet; nil without a
	// cluster): their peers, names and watches, each with its own locks.
	nets *clusternet.Table
}

// netState is a network as persisted.
type netState struct {
	Config NetworkConfig `json:"config"`
	// CreatedBridge records that mynet created the bridge, so DeleteNetwork
	// removes it; a bridge the user had made is only stripped of our address.
	CreatedBridge bool `json:"created_bridge"`
	// Phase is "" for a network in service; "creating" or "deleting" while
	// a CreateNetwork or DeleteNetwork runs. A record still in one of those
	// at start belongs to a call that crashed: it is torn down.
	Phase string `json:"phase,omitempty"`
}

const (
	phaseCreating = "creating"
	phaseDeleting = "deleting"
)

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
	// IfName is the container interface's exact name
	// (com.docker.network.endpoint.ifname), or "" for the network's prefix
	// and a number.
	IfName string `json:"ifname,omitempty"`
	// Name is the container's name on a cluster network (from the IPAM:
	// Engine 29 gives it), published for other hosts' names.
	Name string `json:"name,omitempty"`
	// Aliases are the endpoint's other names in Docker's resolver (network
	// aliases, the short ID), learned from the Engine (SetEndpointNames).
	Aliases []string `json:"aliases,omitempty"`
	// Sandbox is the container's network namespace (Join's SandboxKey),
	// where a cluster network's name forwarder runs; "" until joined.
	Sandbox string `json:"sandbox,omitempty"`
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
		fault:     cfg.Fault,
		log:       cfg.Log,
		cluster:   cfg.Cluster,
		names:     cfg.Names,
		networks:  map[string]*netState{},
		endpoints: map[string]*Endpoint{},
		creating:  map[netip.Addr]string{},
	}
	if d.log == nil {
		d.log = logrus.NewEntry(logrus.StandardLogger())
	}
	if d.ports == nil {
		d.ports = hostport.New()
	}
	if cfg.Cluster.Client != nil {
		d.nets = clusternet.NewTable(clusternet.TableConfig{Client: cfg.Cluster.Client, Kernel: cfg.Links, Store: cfg.Store,
			Underlay: cfg.Cluster.Underlay, Log: d.log})
	}
	err := d.store.View(func(tx store.Tx) error {
		if err := store.ForEachJSON(tx, bucketNetworks, func(k string, n *netState) error {
			d.networks[k] = n
			return nil
		}); err != nil {
			return err
		}
		if err := store.ForEachJSON(tx, bucketEndpoints, func(k string, ep *Endpoint) error {
			d.endpoints[k] = ep
			return nil
		}); err != nil {
			return err
		}
		return d.loadClusterNets(tx)
	})
	if err != nil {
		return nil, fmt.Errorf("load networks: %w", err)
	}
	return d, nil
}

// bridgeAddrs are the gateway addresses mynet puts on the bridge.
func bridgeAddrs(cfg *NetworkConfig) []netip.Prefix {
	var addrs []netip.Prefix
	if cfg.Gateway.IsValid() && !cfg.InhibitIPv4 && cfg.GatewayMode4 != GatewayIsolated {
		addrs = append(addrs, cfg.Gateway)
	}
	if cfg.Gateway6.IsValid() {
		addrs = append(addrs, cfg.Gateway6)
	}
	return addrs
}

func bridgeConfig(cfg *NetworkConfig, group uint32) netutil.BridgeConfig {
	return netutil.BridgeConfig{Name: cfg.BridgeName, MTU: cfg.MTU, Addrs: bridgeAddrs(cfg),
		NoIPv6: cfg.Subnet6.IsValid() && cfg.GatewayMode6 == GatewayIsolated, Group: group}
}

func firewallNetwork(cfg *NetworkConfig) firewall.Network {
	return firewall.Network{
		ID: cfg.ID, Bridge: cfg.BridgeName, Subnet: cfg.Subnet, Subnet6: cfg.Subnet6,
		ICC: cfg.ICC, Masquerade: cfg.Masquerade, Internal: cfg.Internal,
		SNATSource: cfg.SNATSource, SNATSource6: cfg.SNATSource6, Trusted: cfg.Trusted(),
		Routed: cfg.Routed(4), Routed6: cfg.Routed(6),
		Unprotected: cfg.Unprotected(4), Unprotected6: cfg.Unprotected(6),
	}
}

// setBridgeSysctls lets published ports be reached on 127.0.0.1: packets
// from a loopback source may then be routed out of the bridge (Docker does
// the same without its userland proxy). It is set through netlink, which
// works in a managed plugin too; failing it only loses loopback access.
func (d *Driver) setBridgeSysctls(cfg *NetworkConfig) {
	if cfg.Internal || cfg.Routed(4) {
		return
	}
	if err := d.links.SetRouteLocalnet(cfg.BridgeName); err != nil {
		d.log.WithError(err).WithField("bridge", cfg.BridgeName).Warn("published ports will not answer on 127.0.0.1")
	}
}

// GetCapabilities implements network.Driver. Scope local: each host's
// Docker keeps its own networks and asks its own IPAM (mynet's, which
// settles cluster networks in etcd); a swarm manager allocates nothing for
// a plugin's networks. ConnectivityScope global, as macvlan's: a swarm
// network of mynet's (--scope swarm --config-from) spans hosts, so swarm
// gossips its services' names (svc, tasks.svc) on it. Docker reads it for
// swarm-scoped networks only.
func (d *Driver) GetCapabilities() (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: "local", ConnectivityScope: "global"}, nil
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

// Networks returns a copy of every network's config (networks being
// created or deleted included).
func (d *Driver) Networks() []NetworkConfig {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]NetworkConfig, 0, len(d.networks))
	for _, n := range d.networks {
		out = append(out, n.Config)
	}
	return out
}

// OwnsLink reports whether name is the bridge of a network or the
// host-side veth of an endpoint mynet holds: the links whose loss a
// reconcile can repair or must record.
func (d *Driver) OwnsLink(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.networks {
		if n.Config.BridgeName == name {
			return true
		}
	}
	for _, ep := range d.endpoints {
		if ep.HostVeth == name {
			return true
		}
	}
	return false
}

// deleteLinkInBackground deletes a link (ip link del NAME) after the call
// that wants it gone has answered. Deleting a bridge or a veth
// waits for the kernel's RCU grace periods (tens of milliseconds), which
// dockerd need not wait for: the link's name derives from a unique ID, so
// nothing can want it again, and if mynet dies first, the next start removes
// it as a link no record claims.
func (d *Driver) deleteLinkInBackground(name string) {
	d.background.Add(1)
	go func() {
		defer d.background.Done()
		if err := d.links.DeleteLink(name); err != nil {
			d.log.WithError(err).WithField("link", name).Warn("could not delete link; reconcile will retry")
		}
	}()
}

// Close stops following the cluster and waits for background deletions to
// finish.
func (d *Driver) Close() {
	if d.nets != nil {
		d.nets.StopAll()
	}
	d.background.Wait()
}

// loadClusterNets makes the cluster networks' objects, with the peers last
// saved and this host's endpoints' names. Caller has loaded d.networks
// and d.endpoints.
func (d *Driver) loadClusterNets(tx store.Tx) error {
	if d.nets == nil {
		return nil
	}
	for id, n := range d.networks {
		if n.Config.Cluster == "" {
			continue
		}
		cn, err := d.nets.Load(tx, clusterConfig(&n.Config), locals{d, id})
		if err != nil {
			return err
		}
		for _, ep := range d.endpoints {
			if ep.NetworkID == id {
				cn.SetLocal(ep.ID, ep.Name, ep.Aliases)
			}
		}
	}
	return nil
}
