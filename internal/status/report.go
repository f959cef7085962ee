package status

import (
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
	Peers map[string][]driver.Peer `json:"remote_endpoints"`
	// DockerSync is the syncing of cluster networks with this host's
	// Docker; nil when it is off by configuration (--docker-host "").
	DockerSync *dockersync.Status `json:"docker_sync,omitempty"`
}

// Host is another host of the cluster.
type Host struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Alive bool   `json:"alive"` // its lease is alive in etcd
}

// Network is a network with its endpoint count.
type Network struct {
	driver.NetworkConfig
	Endpoints int `json:"endpoints"`
}

// Endpoint is an endpoint with its published ports in `docker ps` form.
type Endpoint struct {
	driver.Endpoint
	PortsText string `json:"ports_text,omitempty"`
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
		r.Endpoints = append(r.Endpoints, Endpoint{Endpoint: ep, PortsText: driver.FormatPorts(ep.Ports)})
	}
	for _, n := range drv.Networks() {
		r.Networks = append(r.Networks, Network{NetworkConfig: n, Endpoints: count[n.ID]})
	}
	sort.Slice(r.Networks, func(i, j int) bool { return r.Networks[i].BridgeName < r.Networks[j].BridgeName })
	sort.Slice(r.Endpoints, func(i, j int) bool { return r.Endpoints[i].HostVeth < r.Endpoints[j].HostVeth })
	sort.Slice(r.Pools, func(i, j int) bool { return r.Pools[i].ID < r.Pools[j].ID })
	return r
}
