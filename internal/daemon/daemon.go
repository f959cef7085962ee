package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/dnsforward"
	"github.com/mynet/mynet/internal/dockersync"
	"github.com/mynet/mynet/internal/fault"
	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/metrics"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/status"
	"github.com/mynet/mynet/internal/store"
	"github.com/mynet/mynet/ipam"
	"github.com/mynet/mynet/plugin"
)

// Config is the daemon's configuration, from flags and environment.
type Config struct {
	Socket   string
	StateDir string
	// ReconcileEvery is how often the daemon re-checks the kernel against
	// its state (0: only at start, on SIGHUP, on /mynet.Reconcile and on
	// link events).
	ReconcileEvery time.Duration
	// IPTables is the iptables backend: auto, nft, legacy or system.
	IPTables string
	// BridgeGroup is the device group of mynet's bridges, which the
	// firewall's shared rules match (0: firewall.DefaultBridgeGroup).
	BridgeGroup uint32
	// MetricsAddr, when set, is the TCP address /metrics is served on.
	MetricsAddr string
	// LocalPools replace Docker's default local address pools (nil: Docker's).
	LocalPools []ipam.PoolSet
	Version    string
	// Cluster makes this host part of a cluster (multi-host networks).
	Cluster ClusterConfig
	// Fault is the test-only crash hook; nil in production.
	Fault fault.Hook
}

// Daemon is mynet with every part built, ready to Run.
type Daemon struct {
	cfg     Config
	log     *logrus.Entry
	started time.Time

	store   *store.Bolt
	links   *netutil.Links
	fw      *firewall.Firewall
	alloc   *ipam.Allocator
	drv     *driver.Driver
	metrics *metrics.Metrics // nil unless cfg.MetricsAddr is set
	rec     *reconciler
	// seenBridges are others' bridges already reported by link events.
	seenBridges bridgeSet

	clusterClient *cluster.Client    // nil without --cluster-store
	syncer        *dockersync.Syncer // nil without a cluster or --docker-host
	// namesOff says why names across hosts are off on a cluster member
	// whose sandboxes it cannot see ("": on).
	namesOff string
	names    *dnsforward.Forwarders // nil without a cluster
	underlay netip.Addr             // this host's VTEP address (cluster only)
	// underlayMTU is the MTU of the underlay's link (cluster only).
	underlayMTU int
	// tunnel is the WireGuard tunnel of encrypted networks (tunnel.go);
	// nil without a cluster.
	tunnel *tunnel
	vteps  vtepGuard // the VXLAN guard's state (membership.go)
}

// New opens the state file and builds the parts. It changes nothing in the
// kernel: Run restores the networks.
func New(cfg Config, log *logrus.Entry) (_ *Daemon, err error) {
	d := &Daemon{cfg: cfg, log: log, started: time.Now()}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if cfg.MetricsAddr != "" {
		d.metrics = metrics.New(cfg.Version, d.snapshot)
	}
	if d.store, err = store.OpenBolt(d.stateFile()); err != nil {
		return nil, err
	}
	if d.links, err = netutil.New(); err != nil {
		return nil, err
	}
	fwLog := log.WithField("part", "firewall")
	fwCfg := firewall.Config{Backend: cfg.IPTables, Log: fwLog, BridgeGroup: cfg.BridgeGroup, DockerNFTBridges: func() []string {
		names, err := netutil.DockerNFTBridges()
		if err != nil {
			// Only bridges Docker names itself are known then.
			fwLog.WithError(err).Debug("cannot read dockerd's nftables chains")
		}
		return names
	}}
	if d.metrics != nil {
		fwCfg.Observe = d.metrics.ObserveBatch
	}
	if d.fw, err = firewall.New(fwCfg); err != nil {
		return nil, err
	}
	ipamCfg := ipam.Config{
		Store: d.store, HostRoutes: d.links.Routes, LocalPools: cfg.LocalPools, Fault: cfg.Fault, Log: log.WithField("part", "ipam"),
	}
	var clusterCfg driver.ClusterConfig
	if len(cfg.Cluster.Store) > 0 {
		if d.clusterClient, clusterCfg, err = d.setupCluster(); err != nil {
			return nil, err
		}
		ipamCfg.Cluster = d.clusterClient
	}
	if d.alloc, err = ipam.New(ipamCfg); err != nil {
		return nil, err
	}
	drvCfg := driver.Config{
		Store: d.store, Links: d.links, Firewall: d.fw, EnsureSysctl: netutil.EnsureSysctl, Cluster: clusterCfg,
		Fault: cfg.Fault, Log: log.WithField("part", "driver"),
	}
	if d.clusterClient != nil {
		drvCfg.Cluster.Of, drvCfg.Cluster.NameOf = clusterOf(d.alloc), d.alloc.EndpointName
		if d.namesOff = namesOff(cfg.Cluster.SandboxRoot, netutil.ReceivesMounts); d.namesOff != "" {
			log.Warn("names across hosts are off: " + d.namesOff)
		} else {
			d.names = d.newNames(log)
			drvCfg.Names = d.names
		}
	}
	d.drv, err = driver.New(drvCfg)
	if err != nil {
		return nil, err
	}
	if d.clusterClient != nil {
		// Addresses other hosts' containers have that etcd may not show
		// (its data lost) are never handed out here.
		d.alloc.SetInUse(inUse{d})
	}
	d.rec = newReconciler(d.drv.Reconcile, d.metrics, log.WithField("part", "reconcile"))
	if d.clusterClient != nil && cfg.Cluster.DockerHost != "" {
		if d.syncer, err = d.newSyncer(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *Daemon) stateFile() string { return filepath.Join(d.cfg.StateDir, store.FileName) }

// Driver is the daemon's NetworkDriver (for the integration tests, which
// call it directly on the wiring main uses).
func (d *Daemon) Driver() *driver.Driver { return d.drv }

// IPAM is the daemon's IpamDriver.
func (d *Daemon) IPAM() *ipam.Allocator { return d.alloc }

// Close waits for background deletions and releases what New opened, in
// reverse (see stop). Run calls it; calling it again does nothing.
func (d *Daemon) Close() {
	if d.drv != nil {
		d.drv.Close()
	}
	if d.names != nil {
		// First: the containers' questions go to Docker alone from now.
		d.names.Close()
	}
	if d.syncer != nil {
		_ = d.syncer.Close()
		d.syncer = nil
	}
	if d.tunnel != nil {
		_ = d.tunnel.wg.Close()
		d.tunnel = nil
	}
	if d.clusterClient != nil {
		_ = d.clusterClient.Close()
		d.clusterClient = nil
	}
	if d.links != nil {
		d.links.Close()
		d.links = nil
	}
	if d.store != nil {
		d.store.Close()
		d.store = nil
	}
}

// Listen returns the socket to serve on: the one systemd passed (socket
// activation, mynet.socket) or a new one at cfg.Socket. owned says whether
// the daemon made the socket file and so removes it when it stops.
func Listen(cfg Config) (l net.Listener, owned bool, err error) {
	passed, err := activation.Listeners()
	if err != nil {
		return nil, false, fmt.Errorf("sockets passed by systemd: %w", err)
	}
	for _, p := range passed {
		if p != nil && p.Addr().Network() == "unix" {
			return p, false, nil
		}
	}
	if len(passed) > 0 {
		return nil, false, errors.New("systemd passed sockets, but none is a unix stream socket")
	}
	l, err = plugin.Listen(cfg.Socket)
	return l, err == nil, err
}

// Run restores the networks, serves Docker on l until ctx ends, and shuts
// down. Shutting down touches no bridge, veth or rule: containers keep their
// networking. systemd is told READY=1 once state is restored and l is being
// served, and STOPPING=1 when the daemon begins to stop.
func (d *Daemon) Run(ctx context.Context, l net.Listener) error {
	defer d.Close()
	log := d.log
	log.WithFields(logrus.Fields{"version": d.cfg.Version, "socket": l.Addr().String(), "state_dir": d.cfg.StateDir}).Info("mynet starting")
	// Networks come back before the first call is answered; connections that
	// arrive meanwhile wait in the listen backlog.
	if d.tunnel != nil {
		// Before the networks: their VXLAN devices' VTEP is its address.
		d.tunnel.restore()
	}
	rep, err := d.drv.Restore()
	d.rec.record(triggerStart, rep, err)
	if err != nil {
		log.WithError(err).Error("some networks could not be restored; they may lack connectivity")
	}
	d.drv.AttachSandboxes()

	srv := &http.Server{
		Handler: plugin.NewHandler(d.drv, d.alloc, plugin.Extras{
			Status: func() any {
				h := d.Health()
				r := status.Build("daemon", d.drv, d.alloc, &h)
				r.Cluster = d.clusterStatus()
				return r
			},
			Health:    func() (any, error) { h := d.Health(); return h, healthErr(h) },
			Reconcile: func() (any, error) { return d.rec.run(triggerAPI) },
			RotateKey: d.rotateKey,
			Observe:   d.metrics.ObserveCall,
		}, log.WithField("part", "plugin")),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 2)
	go func() { served <- srv.Serve(l) }()
	var metricsSrv *http.Server
	if d.metrics != nil {
		if metricsSrv, err = d.serveMetrics(served); err != nil {
			_ = d.stop(srv, nil, false)
			return err
		}
	}
	if err := netutil.WatchLinks(ctx, d.onLinkEvent, func(err error) {
		log.WithError(err).Warn("link events lost; reconciling")
		d.rec.kick(triggerLink)
	}); err != nil {
		log.WithError(err).Warn("no link events: deleted bridges wait for the periodic reconcile")
	}
	go d.rec.loop(ctx, d.cfg.ReconcileEvery)
	if d.clusterClient != nil {
		// A node name another live host holds is refused at start: the two
		// would withdraw each other's records. (With etcd unreachable the
		// daemon starts and keeps trying; see membership.)
		reg := d.register(ctx)
		if errors.Is(reg.err, cluster.ErrNodeNameInUse) {
			_ = d.stop(srv, metricsSrv, false)
			return fmt.Errorf("cluster: %w", reg.err)
		}
		if reg.err != nil {
			// Registered, membership lists every network at once (after
			// the pools' reclaim); else the networks follow etcd from
			// now, and list again once registered.
			d.drv.StartCluster()
		}
		go d.membership(ctx, reg)
		go d.clusterUpkeep(ctx)
		if d.tunnel != nil {
			go d.tunnel.follow(ctx)
		}
		if d.syncer != nil {
			go d.syncer.Run(ctx)
		}
	}
	if _, err := sd.SdNotify(false, sd.SdNotifyReady); err != nil {
		log.WithError(err).Warn("could not tell systemd the daemon is ready")
	}
	log.Info("mynet ready")

	select {
	case err := <-served:
		_ = d.stop(srv, metricsSrv, false)
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	if err := d.stop(srv, metricsSrv, true); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// stop is the one way Run ends, in this order: systemd is told STOPPING;
// the API's and the metrics' listeners close (gracefully, the calls under
// way answered within 10 s, when asked to stop; at once when serving
// failed); the driver ends its watches and waits for its background
// deletions; with no network left, mynet's iptables chains and the VXLAN
// members' set go (an uninstall ends here). Then Run's Close releases
// what New opened, in reverse: the name forwarders first (containers' DNS
// is Docker's alone from then), the Docker sync, etcd, netlink, the store.
// Container networking is left as it is.
func (d *Daemon) stop(srv, metricsSrv *http.Server, graceful bool) error {
	_, _ = sd.SdNotify(false, sd.SdNotifyStopping)
	d.log.Info("shutting down; container networking is left as it is")
	var err error
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if metricsSrv != nil {
			_ = metricsSrv.Shutdown(ctx)
		}
		err = srv.Shutdown(ctx)
	} else {
		if metricsSrv != nil {
			_ = metricsSrv.Close()
		}
		_ = srv.Close()
	}
	d.drv.Close()
	if len(d.drv.Networks()) == 0 {
		if err := d.fw.RemoveBase(); err != nil {
			d.log.WithError(err).Warn("could not remove mynet's iptables chains")
		} else if d.links != nil {
			d.destroyVTEPSets()
		}
	}
	return err
}

// onLinkEvent asks for a reconcile when a bridge or veth of ours goes away,
// so the repair is at once instead of at the next tick.
func (d *Daemon) onLinkEvent(ev netutil.LinkEvent) {
	if ev.Deleted {
		d.seenBridges.forget(ev.Name)
	}
	firstSeen := func() bool { return d.seenBridges.add(ev.Name) }
	switch linkEventAction(ev, d.drv.OwnsLink(ev.Name), d.fw.BridgeGroup(), firstSeen) {
	case linkReconcileNow:
		d.log.WithField("link", ev.Name).Info("a link of ours was deleted; reconciling now")
		d.rec.kick(triggerLink)
	case linkReconcileSoon:
		d.log.WithField("link", ev.Name).Debug("a new bridge; reconciling soon to learn whether it is Docker's")
		time.AfterFunc(time.Second, func() { d.rec.kick(triggerLink) })
	}
}

// bridgeSet remembers the bridges already seen, so that their many
// RTM_NEWLINK events (ports, state) do not each schedule a reconcile.
type bridgeSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *bridgeSet) forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.seen, name)
}

// add reports whether name is new.
func (s *bridgeSet) add(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if s.seen[name] {
		return false
	}
	s.seen[name] = true
	return true
}
