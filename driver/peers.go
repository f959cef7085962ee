package driver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/ids"
	"github.com/mynet/mynet/internal/netutil"
)

// OptCluster is the network option (-o mynet.cluster=NAME) that, when
// given, must name the same cluster network as the IPAM option.
const OptCluster = "mynet.cluster"

// VXLANPrefix names a cluster network's VXLAN device, with the first 12
// hex digits of the network ID.
const VXLANPrefix = "mnv"

// clusterAPI is the part of cluster.Client the driver uses.
type clusterAPI interface {
	Node() string
	PublishEndpoint(ep cluster.Endpoint) error
	UnpublishEndpoint(net string, ip netip.Addr) error
	Endpoints(net string) ([]cluster.Endpoint, int64, error)
	WatchEndpoints(ctx context.Context, net string, rev int64, fn func(ep cluster.Endpoint, deleted bool)) error
	// What remote records are checked against (records.go).
	Claims(net string) (map[netip.Addr]cluster.Claim, error)
	RecordFacts(net string, ip netip.Addr, node string, rev int64) (cluster.RecordFacts, error)
	Nodes() ([]cluster.NodeInfo, error)
	// What tells a removal from a loss of etcd's data (held.go).
	EpochAt(rev int64) (bool, error)
	Epoch() string
	SettleMTU(net string, mtu int) (int, error)
	SettlePolicy(net string, p cluster.Policy) (cluster.Policy, error)
}

var _ clusterAPI = (*cluster.Client)(nil)

// ClusterNet is what the IPAM knows of a cluster network's pool.
type ClusterNet struct {
	Name string
	VNI  uint32
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
	// NameOf is the container name the IPAM was given with a cluster
	// network's address (ipam EndpointName); nil: none.
	NameOf func(clusterNet string, addr netip.Addr) string
}

// Peer is a remote endpoint as programmed on a VXLAN device.
type Peer struct {
	Node string     `json:"node"`
	IP   netip.Addr `json:"ip"`
	MAC  string     `json:"mac"`
	VTEP netip.Addr `json:"vtep"`
	// Name is the container's name, when its host gave one that is a valid
	// DNS label; Aliases its other names (valid DNS names, lower case).
	Name    string   `json:"name,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
}

func (p Peer) equal(o Peer) bool {
	return p.Node == o.Node && p.IP == o.IP && p.MAC == o.MAC && p.VTEP == o.VTEP && p.Name == o.Name && slices.Equal(p.Aliases, o.Aliases)
}

func (p Peer) remote() netutil.Remote {
	mac, _ := net.ParseMAC(p.MAC)
	return netutil.Remote{IP: p.IP, MAC: mac, VTEP: p.VTEP}
}

// clusterNameOf is the cluster network's name of a network ("" for a local
// one).
func (d *Driver) clusterNameOf(networkID string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.networks[networkID]; n != nil {
		return n.Config.Cluster
	}
	return ""
}

// publish announces a local endpoint of a cluster network.
func (d *Driver) publish(cfg *NetworkConfig, ep *Endpoint) error {
	return d.cluster.Client.PublishEndpoint(cluster.Endpoint{Network: cfg.Cluster, IP: ep.Address.Addr(), MAC: ep.MAC, Name: ep.Name, Aliases: ep.Aliases})
}

// peerOf is a remote endpoint's record as a Peer; a name that is not a
// valid DNS label is dropped (the peer is kept).
func peerOf(ep cluster.Endpoint) Peer {
	p := Peer{Node: ep.Node, IP: ep.IP, MAC: ep.MAC, VTEP: ep.VTEP}
	if ValidDNSName(ep.Name) {
		p.Name = strings.ToLower(ep.Name)
	}
	p.Aliases = dnsNames(ep.Aliases, p.Name)
	return p
}

// ValidDNSName reports whether name is one DNS label that Docker could
// have given a container: 1 to 63 letters, digits, '-' and '_', not
// starting with '-'.
func ValidDNSName(name string) bool {
	if name == "" || len(name) > 63 || name[0] == '-' {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// bigList is the size of an endpoint list after which the memory it took
// is returned to the system at once.
const bigList = 10000

// peerSync follows one cluster network's remote endpoints.
type peerSync struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startPeerSync follows the cluster network's endpoints until
// stopPeerSync: list at a revision, program the difference both ways
// (remote entries on the VXLAN device; this host's own records in etcd),
// watch from the next revision, and on any failure list again after a
// pause. Entries are removed only by a list or an explicit event, never
// because a watch failed. Caller holds d.mu.
func (d *Driver) startPeerSync(cfg NetworkConfig) {
	if d.cluster.Client == nil || d.syncs[cfg.ID] != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &peerSync{cancel: cancel, done: make(chan struct{})}
	d.syncs[cfg.ID] = s
	log := d.log.WithFields(logrus.Fields{"network": ids.Short(cfg.ID), "cluster_network": cfg.Cluster})
	go func() {
		defer close(s.done)
		pause := time.Duration(0)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = time.Second
			start := time.Now()
			eps, rev, err := d.cluster.Client.Endpoints(cfg.Cluster)
			if err != nil {
				log.WithError(err).Warn("cannot list the cluster's endpoints; traffic to known peers keeps flowing, retrying")
				continue
			}
			listed, records := time.Since(start), len(eps)
			d.syncPeers(&cfg, eps, log)
			if records >= bigList {
				// A list of a big network is the daemon's peak of
				// memory: what it no longer needs goes back to the
				// system now, not minutes later.
				debug.FreeOSMemory()
			}
			log.WithFields(logrus.Fields{"records": records, "revision": rev, "list": listed.Round(time.Millisecond),
				"total": time.Since(start).Round(time.Millisecond)}).Info("cluster endpoints listed and programmed; watching")
			err = d.cluster.Client.WatchEndpoints(ctx, cfg.Cluster, rev, func(ep cluster.Endpoint, deleted bool) {
				d.peerEvent(&cfg, ep, deleted, log)
			})
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, cluster.ErrCompacted) {
				pause = 0
			}
			log.WithError(err).Info("endpoint watch ended; listing again")
		}
	}()
}

// stopPeerSync ends a network's sync and waits for it. Caller must not
// hold d.mu.
func (d *Driver) stopPeerSync(networkID string) {
	d.mu.Lock()
	s := d.syncs[networkID]
	delete(d.syncs, networkID)
	d.mu.Unlock()
	if s != nil {
		s.cancel()
		<-s.done
	}
}

// localByIP finds this host's endpoint of a network by address.
func (d *Driver) localByIP(networkID string, ip netip.Addr) *Endpoint {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ep := range d.endpoints {
		if ep.NetworkID == networkID && ep.Address.Addr() == ip {
			cp := *ep
			return &cp
		}
	}
	return nil
}

// beingCreated tells whether CreateEndpoint is at work on a cluster
// endpoint of this address: its record may be in etcd before it is saved.
func (d *Driver) beingCreated(networkID string, ip netip.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.creating[ip] == networkID
}

// syncPeers makes the VXLAN device and this host's records match a full
// list of the cluster network's endpoints.
func (d *Driver) syncPeers(cfg *NetworkConfig, eps []cluster.Endpoint, log *logrus.Entry) {
	self := d.cluster.Client.Node()
	facts, err := d.listFacts(cfg)
	if err != nil {
		log.WithError(err).Warn("cannot read the cluster's claims and nodes to check its endpoint records; keeping the entries as they are")
		return
	}
	want := map[netip.Addr]Peer{}
	listed := map[netip.Addr]bool{} // other hosts' records in the list
	published := map[netip.Addr]bool{}
	for _, ep := range eps {
		if ep.Node == self {
			local := d.localByIP(cfg.ID, ep.IP)
			switch {
			case local == nil && !d.beingCreated(cfg.ID, ep.IP):
				// A record of ours no endpoint claims (a crash between the
				// two): withdraw it.
				published[ep.IP] = true
				if err := d.cluster.Client.UnpublishEndpoint(cfg.Cluster, ep.IP); err != nil {
					log.WithError(err).Warn("could not withdraw a stale endpoint record")
				}
			case ep.VTEP != d.cluster.Underlay:
				// Published before this host's underlay address changed:
				// re-published below, so the peers send to the new one.
			case local != nil && !recordOfLocal(local, ep):
				// Another endpoint's record at this address (an older
				// backup of etcd restored): re-published below.
			default:
				published[ep.IP] = true
			}
			continue
		}
		listed[ep.IP] = true
		if d.accept(cfg, ep, facts, log) {
			want[ep.IP] = peerOf(ep)
		}
	}
	d.keepVanished(cfg, want, listed, log)
	d.mu.Lock()
	var mine []*Endpoint
	for _, ep := range d.endpoints {
		if ep.NetworkID == cfg.ID && !published[ep.Address.Addr()] {
			cp := *ep
			mine = append(mine, &cp)
		}
	}
	d.mu.Unlock()
	for _, ep := range mine {
		// Ours but not in etcd: its data was wiped, or our lease lapsed.
		if err := d.publish(cfg, ep); err != nil {
			log.WithError(err).Warn("could not re-publish an endpoint")
		}
	}
	d.setPeers(cfg, want, log)
}

// peerEvent applies one watched change.
func (d *Driver) peerEvent(cfg *NetworkConfig, ep cluster.Endpoint, deleted bool, log *logrus.Entry) {
	if ep.Node == d.cluster.Client.Node() {
		if deleted {
			if local := d.localByIP(cfg.ID, ep.IP); local != nil {
				if err := d.publish(cfg, local); err != nil {
					log.WithError(err).Warn("our endpoint's record vanished and could not be re-published")
				}
			}
		}
		return
	}
	start := time.Now()
	if !deleted && !d.accept(cfg, ep, d.eventFacts(cfg, ep), log) {
		return
	}
	if deleted {
		d.mu.Lock()
		p, had := d.peers[cfg.ID][ep.IP]
		d.mu.Unlock()
		switch {
		case !had || p.Node != ep.Node:
			d.held.drop(cfg.ID, ep.IP)
		case d.lostWithData(ep):
			d.holdVanished(cfg, p, log)
			return
		default:
			d.held.drop(cfg.ID, ep.IP)
		}
	}
	checked := time.Since(start)
	d.applyPeer(cfg, peerOf(ep), deleted, log)
	log.WithFields(logrus.Fields{"address": ep.IP, "deleted": deleted, "took_us": time.Since(start).Microseconds(),
		"check_us": checked.Microseconds()}).Debug("remote endpoint change applied")
}

// StartCluster starts following every cluster network's peers (after
// Restore, which programmed the last known ones).
func (d *Driver) StartCluster() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.networks {
		if n.Config.Cluster != "" && n.Phase == "" {
			d.startPeerSync(n.Config)
		}
	}
}

// ResyncCluster makes every cluster network list its endpoints again at
// once (after this host registered anew, say).
func (d *Driver) ResyncCluster() {
	d.stopPeerSyncs()
	d.StartCluster()
}

// stopPeerSyncs ends every network's sync and waits for them.
func (d *Driver) stopPeerSyncs() {
	d.mu.Lock()
	var nets []string
	for id := range d.syncs {
		nets = append(nets, id)
	}
	d.mu.Unlock()
	for _, id := range nets {
		d.stopPeerSync(id)
	}
}

// RemotePeers lists the remote endpoints each cluster network knows, by
// network ID, for mynet status.
func (d *Driver) RemotePeers() map[string][]Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]Peer{}
	for id, m := range d.peers {
		for _, p := range m {
			out[id] = append(out[id], p)
		}
	}
	return out
}

// recordOfLocal reports whether a record of this host's says what its
// endpoint local would publish.
func recordOfLocal(local *Endpoint, ep cluster.Endpoint) bool {
	return strings.EqualFold(ep.MAC, local.MAC) && ep.Name == local.Name && slices.Equal(ep.Aliases, local.Aliases)
}
