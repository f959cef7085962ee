package dockersync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
)

// optCluster is the IPAM option that makes a pool a cluster network's
// (ipam.OptCluster).
const optCluster = "mynet.cluster"

// Cluster is what the syncer needs of internal/cluster's Client.
type Cluster interface {
	DockerNetworks() ([]cluster.DockerNetwork, int64, error)
	WatchDockerNetworks(ctx context.Context, rev int64, fn func(n cluster.DockerNetwork, deleted bool)) error
	PublishDockerNetwork(n cluster.DockerNetwork) (have cluster.DockerNetwork, created bool, err error)
	MarkDockerNetworkRemoved(net string, removed bool) error
	// Endpoints lists a cluster network's endpoint records (who uses it).
	Peers(net string) ([]cluster.Peer, int64, error)
	Node() string
}

// Config is what a Syncer needs.
type Config struct {
	Engine  Engine
	Cluster Cluster
	// Local maps the Docker ID of each of this host's cluster networks to
	// its cluster network's name (the driver's knowledge).
	Local func() map[string]string
	// Driver is mynet's driver and IPAM name in this host's Docker (the
	// socket's base name), until a network of mynet's in Docker shows
	// another (a managed plugin's is its reference, mynet:latest).
	Driver string
	// PluginID is the managed plugin's ID, when mynet runs as one: its
	// reference in Docker (PluginName) is the driver name, from the first
	// pass Docker answers, whatever Driver says and before any network of
	// mynet's exists there.
	PluginID string
	// Names is told the names of this host's containers on cluster
	// networks (nil: not followed).
	Names Names
	// Host is the Docker API address, for Status.
	Host string
	// Every is the pause between passes (default 1 s).
	Every time.Duration
	Log   *logrus.Entry
}

// Status is what the syncer reports to mynet status and health.
type Status struct {
	DockerHost string `json:"docker_host"`
	// On is false while Docker or etcd does not answer; Reason says why.
	On       bool            `json:"on"`
	Reason   string          `json:"reason,omitempty"`
	Driver   string          `json:"driver"`
	LastPass time.Time       `json:"last_pass"`
	Networks []NetworkStatus `json:"networks"`
}

// NetworkStatus is one cluster network's state on this host.
type NetworkStatus struct {
	Cluster string `json:"cluster"`
	Name    string `json:"name"`
	// State is present, created, recreated (removed here by a user while
	// other hosts use it), removed, removal-pending, conflict, refused (the
	// record did not pass the checks) or failed.
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// Syncer keeps this host's Docker in step with the cluster's networks.
type Syncer struct {
	cfg  Config
	log  *logrus.Entry
	kick chan struct{}

	mu      sync.Mutex // guards records, listed, etcdErr and status
	records map[string]cluster.DockerNetwork
	listed  bool
	etcdErr error
	status  Status

	// Only the pass's goroutine touches these.
	had         map[string]bool // cluster networks this host's Docker had after the last pass
	passes      int
	removedHere map[string]bool // removed by this syncer, not by a user
	driver      string
	pluginNamed bool                // driver is the managed plugin's reference, from Docker
	backoffs    map[string]*backoff // creates Docker refused
	logged      map[string]string   // what was last logged of a record (refusals, options left out)
	learned     map[string]learned  // endpoint ID -> the names last told (names.go)
}

// New returns a Syncer; Run starts it.
func New(cfg Config) *Syncer {
	if cfg.Every == 0 {
		cfg.Every = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Syncer{cfg: cfg, log: cfg.Log, kick: make(chan struct{}, 1), records: map[string]cluster.DockerNetwork{},
		had: map[string]bool{}, removedHere: map[string]bool{}, driver: cfg.Driver, backoffs: map[string]*backoff{}, logged: map[string]string{},
		learned: map[string]learned{},
		status:  Status{DockerHost: cfg.Host, Driver: cfg.Driver, Reason: "starting"}}
}

// Close releases the engine's connections (after Run has returned).
func (s *Syncer) Close() error { return s.cfg.Engine.Close() }

// Kick asks for a pass soon (never blocks).
func (s *Syncer) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Status returns the last pass's report.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Networks = slices.Clone(st.Networks)
	return st
}

// Run follows the cluster's records and runs passes until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	go s.follow(ctx)
	backoff := time.Duration(0)
	t := time.NewTimer(s.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
		delay := s.cfg.Every
		if err := s.Pass(ctx); err != nil {
			backoff = min(max(2*backoff, time.Second), 10*time.Second)
			delay = backoff
		} else {
			backoff = 0
		}
		t.Reset(delay)
	}
}

// follow keeps records: a list, then a watch from its revision; a failed
// watch lists again after a pause.
func (s *Syncer) follow(ctx context.Context) {
	for ctx.Err() == nil {
		recs, rev, err := s.cfg.Cluster.DockerNetworks()
		if err == nil {
			s.mu.Lock()
			s.records = map[string]cluster.DockerNetwork{}
			for _, r := range recs {
				s.records[r.Cluster] = r
			}
			s.listed, s.etcdErr = true, nil
			s.mu.Unlock()
			s.Kick()
			err = s.cfg.Cluster.WatchDockerNetworks(ctx, rev, func(n cluster.DockerNetwork, deleted bool) {
				s.mu.Lock()
				if deleted {
					delete(s.records, n.Cluster)
				} else {
					s.records[n.Cluster] = n
				}
				s.mu.Unlock()
				s.Kick()
			})
		}
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, cluster.ErrCompacted) {
			s.mu.Lock()
			s.etcdErr = err
			s.mu.Unlock()
			s.log.WithError(err).Debug("cluster networks' Docker records: listing again")
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// namePlugin learns, once, the managed plugin's reference in Docker: the
// driver name of the networks the syncer creates.
func (s *Syncer) namePlugin(ctx context.Context) error {
	if s.cfg.PluginID == "" || s.pluginNamed {
		return nil
	}
	name, err := s.cfg.Engine.PluginName(ctx, s.cfg.PluginID)
	if err != nil {
		return fmt.Errorf("this plugin's name in Docker: %w", err)
	}
	s.driver, s.pluginNamed = name, true
	s.log.WithField("driver", name).Info("managed plugin: cluster networks are created with its reference")
	return nil
}

// sameDriver says whether two driver names are one plugin's: a reference
// without a tag is the one tagged latest (-d mynet is mynet:latest).
func sameDriver(a, b string) bool {
	tagged := func(s string) string {
		if i := strings.LastIndex(s, ":"); i < 0 || strings.Contains(s[i:], "/") {
			return s + ":latest"
		}
		return s
	}
	return tagged(a) == tagged(b)
}

// scopeSwarm is the Scope of a swarm network. Swarm makes it on a node
// when a task there needs it and removes it when the last one goes: not a
// user's create or rm, so the syncer neither publishes nor follows it
// (swarm has it on every node that needs it).
const scopeSwarm = "swarm"

// Pass compares this host's Docker with the cluster's records once and
// does what differs (see doc.go).
func (s *Syncer) Pass(ctx context.Context) error {
	s.mu.Lock()
	listed, etcdErr := s.listed, s.etcdErr
	recs := maps.Clone(s.records)
	s.mu.Unlock()
	if !listed {
		if etcdErr == nil {
			etcdErr = errors.New("not listed yet")
		}
		s.report(fmt.Errorf("etcd: %w", etcdErr), nil)
		return etcdErr
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nets, err := s.cfg.Engine.Networks(cctx)
	if err == nil {
		err = s.namePlugin(cctx)
	}
	if err != nil {
		s.report(err, nil)
		return err
	}
	local := s.cfg.Local()
	mine := map[string]Network{}
	byName := map[string]Network{}
	for _, n := range nets {
		byName[n.Name] = n
		if n.Scope == scopeSwarm {
			continue
		}
		if c, ok := local[n.ID]; ok {
			mine[c] = n
			s.driver = n.Driver
		}
	}
	// A network Docker still lists with mynet's cluster option is this
	// host's too, whatever the driver says this instant (it may be
	// restoring or deleting it): never taken for one a user removed.
	for _, n := range nets {
		if c := n.IPAMOptions[optCluster]; c != "" && sameDriver(n.Driver, s.driver) && n.Scope != scopeSwarm {
			if _, ok := mine[c]; !ok {
				mine[c] = n
			}
		}
	}
	var states []NetworkStatus
	now := map[string]bool{}
	shared := sharedNames(recs)
	for c, n := range mine {
		now[c] = true
		st := s.keep(cctx, c, n, recs, shared, now)
		states = append(states, st)
	}
	for c, rec := range recs {
		if _, ok := mine[c]; ok {
			continue
		}
		if others := shared[rec.Name]; len(others) > 1 && rec.Removed == "" && others[0] != c {
			states = append(states, NetworkStatus{Cluster: c, Name: rec.Name, State: "conflict", Detail: sharedDetail(rec.Name, others)})
			continue
		}
		if rec.Removed != "" {
			states = append(states, NetworkStatus{Cluster: c, Name: rec.Name, State: "removed",
				Detail: "removed by a user on " + rec.Removed + "; it goes from the cluster when no host has it"})
			continue
		}
		states = append(states, s.bring(cctx, c, rec, byName, now))
	}
	for c := range s.removedHere {
		if _, ok := recs[c]; !ok || now[c] {
			delete(s.removedHere, c)
		}
	}
	s.names(cctx, mine)
	forgetGone(s.backoffs, recs)
	forgetGone(s.logged, recs)
	s.had = now
	s.passes++
	slices.SortFunc(states, func(a, b NetworkStatus) int { return strings.Compare(a.Cluster, b.Cluster) })
	s.report(nil, states)
	return nil
}

// report records a pass's outcome: err says why syncing is off.
func (s *Syncer) report(err error, states []NetworkStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.status
	s.status.LastPass, s.status.Driver = time.Now(), s.driver
	if err != nil {
		s.status.On, s.status.Reason = false, err.Error()
		if prev.On || prev.Reason == "starting" {
			s.log.WithError(err).Warn("cluster networks are not synced with Docker; trying again")
		}
		return
	}
	if !prev.On {
		s.log.WithField("docker_host", s.cfg.Host).Info("cluster networks are synced with this host's Docker")
	}
	s.status.On, s.status.Reason, s.status.Networks = true, "", states
}
