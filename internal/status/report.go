package status

import (
	"net/netip"
	"sort"
	"time"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/internal/dockersync"
	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/ipam"
)

// Report is what `mynet status` shows and what the daemon serves at
// /mynet.Status.
type Report struct {
	Source    string          `json:"source"`           // "daemon" or "state file (daemon not running)"
	Socket    string          `json:"socket,omitempty"` // the socket that answered
	Health    *Health         `json:"health,omitempty"` // nil when read from the state file
	Networks  []Network       `json:"networks"`
	Endpoints []Endpoint      `json:"endpoints"`
	Pools     []ipam.PoolInfo `json:"pools"`
	Cluster   *Cluster        `json:"cluster,omitempty"` // nil on a single-host daemon
}

// Cluster is this host's view of its cluster.
type Cluster struct {
	Node      string   `json:"node"`
	Advertise string   `json:"advertise"`
	Store     []string `json:"store"`
	Reachable bool     `json:"reachable"`
	Error     string   `json:"error,omitempty"`
	// Hosts are the other hosts of the cluster (the key "peers" of earlier
	// versions is kept).
	Hosts []Host `json:"peers"`
	// Peers lists, per network ID, the other hosts' containers this host
	// has programmed (the key of earlier versions is kept).
	Peers map[string][]Peer `json:"remote_endpoints"`
	// DockerSync is the syncing of cluster networks with this host's
	// Docker; nil when it is off by configuration (--docker-host "").
	DockerSync *dockersync.Status `json:"docker_sync,omitempty"`
	// Tunnel is this host's WireGuard tunnel of encrypted networks; nil
	// while it has none.
	Tunnel *Tunnel `json:"wireguard,omitempty"`
}

// Tunnel is this host's WireGuard device and what it has of its peers.
type Tunnel struct {
	Device    string       `json:"device"`
	Kind      string       `json:"kind"` // kernel or userspace
	Address   netip.Prefix `json:"address"`
	Port      int          `json:"port"`
	PublicKey string       `json:"public_key"`
	Error     string       `json:"error,omitempty"` // the device could not be read
	Peers     []TunnelPeer `json:"peers"`
}

// TunnelPeer is another host as the WireGuard device has it.
type TunnelPeer struct {
	Node          string         `json:"node"`
	Endpoint      netip.AddrPort `json:"endpoint"`
	Tunnel        netip.Addr     `json:"tunnel"`
	LastHandshake time.Time      `json:"last_handshake,omitzero"` // zero: none yet
	Received      int64          `json:"received_bytes"`
	Sent          int64          `json:"sent_bytes"`
}

// Peer is another host's container on a cluster network, as this host
// programs it.
type Peer struct {
	Node    string     `json:"node"`
	IP      netip.Addr `json:"ip"`
	MAC     string     `json:"mac"`
	VTEP    netip.Addr `json:"vtep"`
	Name    string     `json:"name,omitempty"`
	Aliases []string   `json:"aliases,omitempty"`
}

// PeersOf are the driver's peers, sorted by address, as the report shows
// them.
func PeersOf(ps []driver.Peer) []Peer {
	out := make([]Peer, 0, len(ps))
	for _, p := range ps {
		out = append(out, Peer{Node: p.Node, IP: p.IP, MAC: p.MAC, VTEP: p.VTEP, Name: p.Name, Aliases: p.Aliases})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out
}

// Host is another host of the cluster.
type Host struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Alive bool   `json:"alive"` // its lease is alive in etcd
}

// Network is a network as mynet status shows it, with its endpoint count:
// a type of the report's own (its JSON keys are the report's, whatever
// the driver saves), filled by networkOf.
type Network struct {
	ID              string       `json:"id"`
	BridgeName      string       `json:"bridge"`
	UserBridge      bool         `json:"user_bridge"`
	Subnet          netip.Prefix `json:"subnet"`
	Gateway         netip.Prefix `json:"gateway"`
	MTU             int          `json:"mtu,omitempty"`
	ICC             bool         `json:"icc"`
	Masquerade      bool         `json:"masquerade"`
	Internal        bool         `json:"internal"`
	ContainerPrefix string       `json:"container_prefix"`
	Subnet6         netip.Prefix `json:"subnet6"`
	Gateway6        netip.Prefix `json:"gateway6"`
	HostBinding     netip.Addr   `json:"host_binding"`
	InhibitIPv4     bool         `json:"inhibit_ipv4"`
	SNATSource      netip.Addr   `json:"snat_source"`
	SNATSource6     netip.Addr   `json:"snat_source6"`
	TrustedIfaces   string       `json:"trusted_ifaces,omitempty"`
	NoIPv4          bool         `json:"no_ipv4,omitempty"`
	GatewayMode4    string       `json:"gateway_mode4"`
	GatewayMode6    string       `json:"gateway_mode6"`
	RandomMACs      bool         `json:"random_macs,omitempty"`
	Cluster         string       `json:"cluster,omitempty"`
	VNI             uint32       `json:"vni,omitempty"`
	VXLAN           string       `json:"vxlan,omitempty"`
	Encrypted       bool         `json:"encrypted,omitempty"`
	Endpoints       int          `json:"endpoints"`
}

func networkOf(n driver.NetworkConfig, endpoints int) Network {
	return Network{ID: n.ID, BridgeName: n.BridgeName, UserBridge: n.UserBridge, Subnet: n.Subnet, Gateway: n.Gateway, MTU: n.MTU,
		ICC: n.ICC, Masquerade: n.Masquerade, Internal: n.Internal, ContainerPrefix: n.ContainerPrefix, Subnet6: n.Subnet6,
		Gateway6: n.Gateway6, HostBinding: n.HostBinding, InhibitIPv4: n.InhibitIPv4, SNATSource: n.SNATSource,
		SNATSource6: n.SNATSource6, TrustedIfaces: n.TrustedIfaces, NoIPv4: n.NoIPv4, GatewayMode4: n.GatewayMode4,
		GatewayMode6: n.GatewayMode6, RandomMACs: n.RandomMACs, Cluster: n.Cluster, VNI: n.VNI, VXLAN: n.VXLAN, Encrypted: n.Encrypted, Endpoints: endpoints}
}

// Endpoint is an endpoint as mynet status shows it, with its published
// ports also in `docker ps` form (a type of the report's own, filled by
// endpointOf).
type Endpoint struct {
	ID            string       `json:"id"`
	NetworkID     string       `json:"network_id"`
	HostVeth      string       `json:"host_veth"`
	PeerVeth      string       `json:"peer_veth"`
	MAC           string       `json:"mac"`
	Address       netip.Prefix `json:"address"`
	AddressIPv6   netip.Prefix `json:"address6"`
	Ports         []Port       `json:"ports,omitempty"`
	MACFromDocker bool         `json:"mac_from_docker"`
	IfName        string       `json:"ifname,omitempty"`
	Name          string       `json:"name,omitempty"`
	Aliases       []string     `json:"aliases,omitempty"`
	Sandbox       string       `json:"sandbox,omitempty"`
	PortsText     string       `json:"ports_text,omitempty"`
}

// Port is one published port.
type Port struct {
	Proto         string     `json:"proto"`
	HostIP        netip.Addr `json:"host_ip"`
	HostPort      uint16     `json:"host_port"`
	ContainerIP   netip.Addr `json:"container_ip"`
	ContainerPort uint16     `json:"container_port"`
}

func endpointOf(ep driver.Endpoint) Endpoint {
	out := Endpoint{ID: ep.ID, NetworkID: ep.NetworkID, HostVeth: ep.HostVeth, PeerVeth: ep.PeerVeth, MAC: ep.MAC, Address: ep.Address,
		AddressIPv6: ep.AddressIPv6, MACFromDocker: ep.MACFromDocker, IfName: ep.IfName, Name: ep.Name, Aliases: ep.Aliases,
		Sandbox: ep.Sandbox, PortsText: driver.FormatPorts(ep.Ports)}
	for _, p := range ep.Ports {
		out.Ports = append(out.Ports, Port{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, ContainerIP: p.ContainerIP, ContainerPort: p.ContainerPort})
	}
	return out
}

// Health is what /mynet.Health answers and `mynet status` prints first.
type Health struct {
	Status   string    `json:"status"`        // "ok" or "unhealthy"
	Err      string    `json:"Err,omitempty"` // Docker's error form: the problems, when unhealthy
	Problems []string  `json:"problems,omitempty"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`

	StateFile StateFileHealth `json:"state_file"`
	IPTables  IPTablesHealth  `json:"iptables"`
	Reconcile ReconcileHealth `json:"last_reconcile"`
	Networks  int             `json:"networks"`
	Endpoints int             `json:"endpoints"`
	// DockerSync says whether cluster networks are synced with this
	// host's Docker, and why not ("" on a single-host daemon). It is
	// not a problem: cluster networks created by hand on each host work.
	DockerSync string `json:"docker_sync,omitempty"`
	// Names says whether the containers of cluster networks resolve the
	// names of other hosts' containers, and why not ("" on a single-host
	// daemon). Off is not a problem: addresses, reach and Docker's own
	// names work.
	Names string `json:"names,omitempty"`
}

// StateFileHealth says whether the state file took a write.
type StateFileHealth struct {
	Path     string `json:"path"`
	Writable bool   `json:"writable"`
	Error    string `json:"error,omitempty"`
}

// IPTablesHealth says whether the iptables backend answers.
type IPTablesHealth struct {
	firewall.Health
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

// ReconcileHealth is the last reconcile's time, trigger and result.
type ReconcileHealth struct {
	Time     time.Time `json:"time"`
	Trigger  string    `json:"trigger"` // start, timer, signal, api, link_event
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	Repaired int       `json:"repaired"` // things found wrong and repaired
}

// Build assembles a report from the driver's and the allocator's state.
func Build(source string, drv *driver.Driver, alloc *ipam.Allocator, health *Health) Report {
	r := Report{Source: source, Health: health, Pools: alloc.Pools()}
	count := map[string]int{}
	for _, ep := range drv.Endpoints() {
		count[ep.NetworkID]++
		r.Endpoints = append(r.Endpoints, endpointOf(ep))
	}
	for _, n := range drv.Networks() {
		r.Networks = append(r.Networks, networkOf(n, count[n.ID]))
	}
	sort.Slice(r.Networks, func(i, j int) bool { return r.Networks[i].BridgeName < r.Networks[j].BridgeName })
	sort.Slice(r.Endpoints, func(i, j int) bool { return r.Endpoints[i].HostVeth < r.Endpoints[j].HostVeth })
	sort.Slice(r.Pools, func(i, j int) bool { return r.Pools[i].ID < r.Pools[j].ID })
	return r
}
