package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/dockersync"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/status"
	"github.com/mynet/mynet/internal/store"
	"github.com/mynet/mynet/ipam"
)

// ClusterConfig is the multi-host part of the configuration; Store empty
// means a single-host daemon.
type ClusterConfig struct {
	// Store lists etcd's client URLs (from --cluster-store etcd://...).
	Store []string
	// Advertise is this host's underlay address or the name of its link.
	Advertise string
	Node      string
	TLS       cluster.TLS
	TTL       time.Duration
	// SubnetPool and SubnetSize are the default pool of cluster networks
	// created without --subnet (--cluster-default-address-pool).
	SubnetPool netip.Prefix
	SubnetSize int
	// SubnetPool6 and SubnetSize6 are the IPv6 pool this host proposes for
	// cluster networks created with --ipv6 and no IPv6 subnet
	// (--cluster-default-ipv6-pool; invalid: a random ULA /48).
	SubnetPool6 netip.Prefix
	SubnetSize6 int
	// DockerHost is the Docker API address cluster networks are synced
	// with (--docker-host; "" turns syncing off); DockerDriver mynet's
	// name in that Docker (--docker-driver).
	DockerHost   string
	DockerDriver string
	// Tunnel is the WireGuard tunnel of encrypted networks.
	Tunnel TunnelConfig
	// SandboxRoot is where this process sees the containers' network
	// namespaces that Docker names in Join (--sandbox-root; "": where
	// Docker says, as a plain daemon does). The managed plugin sees them
	// through its mount of the host's /run/docker.
	SandboxRoot string
}

const (
	bucketCluster = "cluster"
	keyLease      = "lease"
)

// setupCluster connects to etcd and says what the IPAM and the driver need.
// It does not wait for etcd: a daemon whose store is down starts, serves
// its local networks, and joins when the store answers.
func (d *Daemon) setupCluster() (*cluster.Client, driver.ClusterConfig, error) {
	cc := d.cfg.Cluster
	local, mtu, err := d.links.Underlay(cc.Advertise)
	if err != nil {
		return nil, driver.ClusterConfig{}, fmt.Errorf("--cluster-advertise: %w", err)
	}
	c, err := cluster.New(cluster.Config{Endpoints: cc.Store, TLS: cc.TLS, Node: cc.Node, Advertise: local, TTL: cc.TTL,
		SubnetPool: cc.SubnetPool, SubnetSize: cc.SubnetSize, SubnetPool6: cc.SubnetPool6, SubnetSize6: cc.SubnetSize6, TunnelPool: cc.Tunnel.Pool, Log: d.log.WithField("part", "cluster")})
	if err != nil {
		return nil, driver.ClusterConfig{}, err
	}
	d.underlay, d.underlayMTU = local, mtu
	dc := driver.ClusterConfig{Client: c, Underlay: local, UnderlayMTU: mtu}
	if d.tunnel, err = d.newTunnel(cc.Tunnel, mtu); err != nil {
		_ = c.Close()
		return nil, driver.ClusterConfig{}, fmt.Errorf("WireGuard: %w", err)
	}
	if d.tunnel != nil {
		dc.Tunnel = d.tunnel
	}
	return c, dc, nil
}

// clusterOf adapts the IPAM's knowledge of cluster pools for the driver.
func clusterOf(alloc *ipam.Allocator) func(string, netip.Prefix) (driver.ClusterNet, bool) {
	return func(space string, subnet netip.Prefix) (driver.ClusterNet, bool) {
		cn, ok := alloc.ClusterOf(space, subnet)
		return driver.ClusterNet{Name: cn.Name, VNI: cn.VNI, Port: cn.Port}, ok
	}
}

// clusterUpkeep runs every 2 s, from the start: it finishes what the
// cluster pools could not do while etcd did not answer (a release it
// missed, a reclaim; a look at each pool when nothing is pending), settles
// the driver's held records (driver held.go), and keeps the VXLAN guard
// current.
func (d *Daemon) clusterUpkeep(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var routes publishedRoutes
	for {
		d.guardVXLAN()
		routes.publish(d)
		if d.tunnel != nil {
			_, sealed := vxlanPorts(d.drv.Networks())
			d.tunnel.keep(len(sealed) > 0)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.alloc.RetryReclaims()
			d.drv.Recheck()
		}
	}
}

// publishedRoutes is what clusterUpkeep last published of this host's
// routes, and under which lease.
type publishedRoutes struct {
	lease  int64
	routes []netip.Prefix
}

// publish records this host's routes in the cluster when they changed or
// the lease did (the record is under it), so that no host picks a default
// subnet a network here uses.
func (p *publishedRoutes) publish(d *Daemon) {
	lease := d.clusterClient.Lease()
	routes, err := d.links.Routes()
	if lease == 0 || err != nil || (lease == p.lease && slices.Equal(routes, p.routes)) {
		return
	}
	if err := d.clusterClient.PublishRoutes(routes); err != nil {
		d.log.WithError(err).Debug("could not publish this host's routes; trying again")
		return
	}
	p.lease, p.routes = lease, routes
}

// remoteAddrs are the addresses of other hosts' endpoints the driver knows,
// by cluster network name.
func (d *Daemon) remoteAddrs() map[string][]netip.Addr {
	names := map[string]string{}
	for _, n := range d.drv.Networks() {
		if n.Cluster != "" {
			names[n.ID] = n.Cluster
		}
	}
	out := map[string][]netip.Addr{}
	for id, peers := range d.drv.RemotePeers() {
		for _, p := range peers {
			out[names[id]] = append(out[names[id]], p.IP)
		}
	}
	return out
}

// inUse is the IPAM's view of the addresses of other hosts' containers the
// driver programs or holds (internal/clusternet): what it never hands out,
// whatever etcd's claims say.
type inUse struct{ d *Daemon }

func (u inUse) Addrs(cluster string) []netip.Addr {
	out := u.d.remoteAddrs()[cluster]
	return append(out, u.d.drv.HeldAddrs()[cluster]...)
}

func (u inUse) Has(cluster string, addr netip.Addr) bool { return u.d.drv.PeerHas(cluster, addr) }

// registration is one Register's outcome.
type registration struct {
	lease int64
	lost  <-chan struct{}
	err   error
	// newEpoch: the cluster's epoch is not the one of the registration
	// before (etcd lost its data meanwhile).
	newEpoch bool
}

// register registers this host once, reusing the lease its last run kept
// (so a restart within the TTL causes no churn), and saves the lease.
func (d *Daemon) register(ctx context.Context) registration {
	var saved int64
	_ = d.store.View(func(tx store.Tx) error {
		b, err := tx.Get(bucketCluster, keyLease)
		if err == nil && b != nil {
			_ = json.Unmarshal(b, &saved)
		}
		return nil
	})
	before := d.clusterClient.Epoch()
	lease, lost, err := d.clusterClient.Register(ctx, saved)
	newEpoch := err == nil && before != "" && d.clusterClient.Epoch() != before
	if err == nil && lease != saved {
		b, _ := json.Marshal(lease)
		if err := d.store.Update(func(tx store.Tx) error { return tx.Put(bucketCluster, keyLease, b) }); err != nil {
			d.log.WithError(err).Warn("could not save the cluster lease; a restart will register anew")
		}
	}
	return registration{lease: lease, lost: lost, err: err, newEpoch: newEpoch}
}

// membership keeps this host registered from its first registration on:
// it registers again whenever the lease is lost, or etcd lost the
// cluster's data (checked every second: cluster CheckData), after which
// every cluster pool claims its addresses again and every cluster network
// lists its endpoints again and re-publishes this host's.
func (d *Daemon) membership(ctx context.Context, reg registration) {
	check := time.NewTicker(time.Second)
	defer check.Stop()
	lost := false // etcd lost its data since the last registration
	for ctx.Err() == nil {
		if reg.err != nil {
			if errors.Is(reg.err, cluster.ErrNodeNameInUse) {
				d.log.WithError(reg.err).Error("cannot register in the cluster; retrying")
			} else {
				d.log.WithError(reg.err).Warn("cannot register in the cluster; local networks and known peers are not affected, retrying")
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			reg = d.register(ctx)
			continue
		}
		lost = lost || reg.newEpoch
		if lost {
			d.drv.NoteDataLoss()
		}
		// The pools check their claims (etcd may have lost them), then the
		// networks list again now that this host's records can be
		// (re)published.
		d.alloc.ClusterRegistered(d.remoteAddrs(), lost)
		d.drv.ResyncCluster()
		lost = false
		reg = d.awaitLoss(ctx, reg, check.C, &lost)
	}
}

// awaitLoss waits until the registration is lost or etcd lost its data,
// and registers again.
func (d *Daemon) awaitLoss(ctx context.Context, reg registration, tick <-chan time.Time, lost *bool) registration {
	for {
		select {
		case <-ctx.Done():
			return reg
		case <-reg.lost:
			d.log.Warn("cluster lease lost; registering again")
			return d.register(ctx)
		case <-tick:
			gone, why, err := d.clusterClient.CheckData()
			if err != nil || !gone {
				continue
			}
			d.log.WithField("why", why).Warn("etcd lost the cluster's data: registering again, claiming this host's addresses and publishing its records again")
			*lost = true
			return d.register(ctx)
		}
	}
}

// newSyncer builds the syncing of cluster networks with this host's Docker
// (internal/dockersync): Docker's API is called from its goroutine only.
func (d *Daemon) newSyncer() (*dockersync.Syncer, error) {
	cc := d.cfg.Cluster
	engine, err := dockersync.Dial(cc.DockerHost)
	if err != nil {
		return nil, fmt.Errorf("--docker-host: %w", err)
	}
	name := cc.DockerDriver
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(d.cfg.Socket), ".sock")
	}
	// A managed plugin's reference is asked of Docker by its ID, unless
	// set by hand.
	var pluginID string
	if cc.DockerDriver == "" {
		pluginID = netutil.PluginID(filepath.Dir(d.cfg.Socket))
	}
	return dockersync.New(dockersync.Config{Engine: engine, Cluster: d.clusterClient, Driver: name, PluginID: pluginID, Host: cc.DockerHost, Names: d.drv,
		Local: func() map[string]string {
			out := map[string]string{}
			for _, n := range d.drv.Networks() {
				if n.Cluster != "" {
					out[n.ID] = n.Cluster
				}
			}
			return out
		}, Log: d.log.WithField("part", "dockersync")}), nil
}

// dockerSync is what health says of the syncing ("" on a single host).
func (d *Daemon) dockerSync() string {
	switch {
	case d.clusterClient == nil:
		return ""
	case d.syncer == nil:
		return "off: --docker-host is empty; create cluster networks on each host"
	}
	st := d.syncer.Status()
	if !st.On {
		return "off: " + st.Reason + " (trying again; cluster networks created by hand on each host work meanwhile)"
	}
	return "on (" + st.DockerHost + ")"
}

// clusterStatus is what mynet status shows of the cluster.
func (d *Daemon) clusterStatus() *status.Cluster {
	if d.clusterClient == nil {
		return nil
	}
	c := &status.Cluster{Node: d.cfg.Cluster.Node, Advertise: d.cfg.Cluster.Advertise, Store: d.cfg.Cluster.Store,
		Peers: map[string][]status.Peer{}}
	if d.syncer != nil {
		st := d.syncer.Status()
		c.DockerSync = &st
	}
	for id, peers := range d.drv.RemotePeers() {
		c.Peers[id] = status.PeersOf(peers)
	}
	nodes, err := d.clusterClient.Nodes()
	c.Reachable = err == nil
	if err != nil {
		c.Error = err.Error()
	}
	c.Hosts = clusterHosts(nodes, c.Peers)
	if d.tunnel != nil {
		c.Tunnel = d.tunnel.status()
	}
	return c
}

// nodeNames are the names of the hosts whose leases are alive.
func nodeNames(nodes []cluster.NodeInfo) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}
