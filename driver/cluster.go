package driver

import (
	"errors"
	"net/netip"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/clusternet"
)

// OptCluster is the network option (-o mynet.cluster=NAME) that, when
// given, must name the same cluster network as the IPAM option.
const OptCluster = "mynet.cluster"

// VXLANPrefix names a cluster network's VXLAN device, with the first 12
// hex digits of the network ID.
const VXLANPrefix = "mnv"

// clusterAPI is the part of cluster.Client the driver uses: its cluster
// networks' (internal/clusternet), and settling a network's configuration
// (clusterconfig.go).
type clusterAPI interface {
	clusternet.Client
	SettleMTU(net string, mtu int) (int, error)
	SettlePolicy(net string, p cluster.Policy) (cluster.Policy, error)
}

var _ clusterAPI = (*cluster.Client)(nil)

// ClusterNet is what the IPAM knows of a cluster network's pool.
type ClusterNet struct {
	Name string
	VNI  uint32
	Port int // its VXLAN port; 0: IANA's
}

// ClusterConfig is what cluster networks need of the host.
type ClusterConfig struct {
	Client clusterAPI
	// Of tells which subnets are cluster networks' pools: the IPAM's
	// ClusterOf, since Docker tells the driver only the subnet.
	Of func(space string, subnet netip.Prefix) (ClusterNet, bool)
	// Underlay is this host's underlay address (the VXLAN source) and the
	// MTU of its link.
	Underlay    netip.Addr
	UnderlayMTU int
	// Tunnel is this host's WireGuard tunnel, which encrypted networks
	// need (nil: none).
	Tunnel Tunnel
	// NameOf is the container name the IPAM was given with a cluster
	// network's address (ipam EndpointName); nil: none.
	NameOf func(clusterNet string, addr netip.Addr) string
}

// Tunnel is this host's WireGuard tunnel (internal/daemon tunnel.go).
type Tunnel interface {
	// Address makes the tunnel ready if it is not and returns this host's
	// tunnel address, the VTEP of its encrypted networks; an error says
	// why this host cannot encrypt.
	Address() (netip.Addr, error)
}

// Peer is a container of another host on a cluster network
// (internal/clusternet).
type Peer = clusternet.Peer

// clusterNet is the cluster network object of a network (nil: a local
// network, or no cluster).
func (d *Driver) clusterNet(networkID string) *clusternet.Network {
	if d.nets == nil {
		return nil
	}
	return d.nets.Get(networkID)
}

// clusterConfig is what internal/clusternet knows of a cluster network.
func clusterConfig(cfg *NetworkConfig) clusternet.Config {
	c := clusternet.Config{ID: cfg.ID, Cluster: cfg.Cluster, VXLAN: cfg.VXLAN, Bridge: cfg.BridgeName,
		Subnet: cfg.Subnet, Gateway: cfg.Gateway, Subnet6: cfg.Subnet6, Gateway6: cfg.Gateway6}
	if cfg.Encrypted {
		c.Encrypted, c.VTEP = true, cfg.VTEP
	}
	return c
}

// locals are a network's endpoints of this host, as its cluster network
// asks about them.
type locals struct {
	d         *Driver
	networkID string
}

// localsOf is an endpoint as its cluster network publishes it: a record
// for each of its addresses.
func localsOf(ep *Endpoint) []clusternet.Local {
	var out []clusternet.Local
	for _, a := range endpointAddrs(ep) {
		out = append(out, clusternet.Local{ID: ep.ID, IP: a, MAC: ep.MAC, Name: ep.Name, Aliases: ep.Aliases})
	}
	return out
}

// endpointAddrs are an endpoint's addresses, IPv4 first.
func endpointAddrs(ep *Endpoint) []netip.Addr {
	var out []netip.Addr
	if ep.Address.IsValid() {
		out = append(out, ep.Address.Addr())
	}
	if ep.AddressIPv6.IsValid() {
		out = append(out, ep.AddressIPv6.Addr())
	}
	return out
}

// publish announces each of an endpoint's addresses on its cluster
// network.
func publish(cn *clusternet.Network, ep *Endpoint) error {
	for _, l := range localsOf(ep) {
		if err := cn.Publish(l); err != nil {
			return err
		}
	}
	return nil
}

// unpublish withdraws each of an endpoint's addresses.
func unpublish(cn *clusternet.Network, ep *Endpoint) error {
	var errs []error
	for _, a := range endpointAddrs(ep) {
		errs = append(errs, cn.Unpublish(a))
	}
	return errors.Join(errs...)
}

func (l locals) Local(ip netip.Addr) (clusternet.Local, bool) {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	for _, ep := range l.d.endpoints {
		if ep.NetworkID != l.networkID {
			continue
		}
		for _, loc := range localsOf(ep) {
			if loc.IP == ip {
				return loc, true
			}
		}
	}
	return clusternet.Local{}, false
}

func (l locals) Creating(ip netip.Addr) bool {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	return l.d.creating[ip] == l.networkID
}

func (l locals) All() []clusternet.Local {
	l.d.mu.Lock()
	defer l.d.mu.Unlock()
	var out []clusternet.Local
	for _, ep := range l.d.endpoints {
		if ep.NetworkID == l.networkID {
			out = append(out, localsOf(ep)...)
		}
	}
	return out
}

// addClusterNet makes a new cluster network's object and starts its
// watch. Caller holds d.mu (the watch takes it only once running).
func (d *Driver) addClusterNet(cfg *NetworkConfig) {
	if d.nets != nil {
		d.nets.Add(clusterConfig(cfg), locals{d, cfg.ID}).Start()
	}
}

// StartCluster starts following every cluster network's peers (after
// Restore, which programmed the last known ones).
func (d *Driver) StartCluster() {
	if d.nets == nil {
		return
	}
	d.mu.Lock()
	var ids []string
	for id, n := range d.networks {
		if n.Config.Cluster != "" && n.Phase == "" {
			ids = append(ids, id)
		}
	}
	d.mu.Unlock()
	for _, id := range ids {
		if n := d.nets.Get(id); n != nil {
			n.Start()
		}
	}
}

// ResyncCluster makes every cluster network list its peers again at once
// (after this host registered anew, say).
func (d *Driver) ResyncCluster() {
	if d.nets != nil {
		d.nets.StopWatches()
		d.StartCluster()
	}
}

// RemotePeers lists the peers each cluster network knows, by network ID,
// for mynet status.
func (d *Driver) RemotePeers() map[string][]Peer {
	if d.nets == nil {
		return map[string][]Peer{}
	}
	return d.nets.Peers()
}

// HeldAddrs lists, by cluster network name, the addresses other hosts use
// though the cluster does not say so yet (clusternet Table.HeldAddrs).
func (d *Driver) HeldAddrs() map[string][]netip.Addr {
	if d.nets == nil {
		return nil
	}
	return d.nets.HeldAddrs()
}

// PeerHas tells whether another host's container on the cluster network
// (by its name) has ip, as this host programs or holds it (clusternet
// Table.Taken): the IPAM never hands it out.
func (d *Driver) PeerHas(cluster string, ip netip.Addr) bool {
	return d.nets != nil && d.nets.Taken(cluster, ip)
}

// HeldCount is how many peers' records are held (status, tests).
func (d *Driver) HeldCount() int {
	if d.nets == nil {
		return 0
	}
	return d.nets.HeldCount()
}

// RefusedRecords counts the peers' records refused, by reason.
func (d *Driver) RefusedRecords() map[string]uint64 {
	if d.nets == nil {
		return map[string]uint64{}
	}
	return d.nets.Refused()
}

// Recheck settles the held records of every cluster network (the daemon,
// every 2 s).
func (d *Driver) Recheck() {
	if d.nets != nil {
		d.nets.Recheck()
	}
}

// NoteDataLoss tells the cluster networks that etcd lost its data: the
// lists that follow keep the peers they lack, held.
func (d *Driver) NoteDataLoss() {
	if d.nets != nil {
		d.nets.NoteDataLoss()
	}
}
