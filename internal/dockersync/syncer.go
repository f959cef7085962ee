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
	Endpoints(net string) ([]cluster.Endpoint, int64, error)
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
	if err != nil {
		s.report(err, nil)
		return err
	}
	local := s.cfg.Local()
	mine := map[string]Network{}
	byName := map[string]Network{}
	for _, n := range nets {
		byName[n.Name] = n
		if c, ok := local[n.ID]; ok {
			mine[c] = n
			s.driver = n.Driver
		}
	}
	// A network Docker still lists with mynet's cluster option is this
	// host's too, whatever the driver says this instant (it may be
	// restoring or deleting it): never taken for one a user removed.
	for _, n := range nets {
		if c := n.IPAMOptions[optCluster]; c != "" && n.Driver == s.driver {
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

// keep handles a cluster network this host's Docker has: publish it if the
// cluster has no record, make it in use again if a user created it again
// here, remove it if a user removed it elsewhere.
func (s *Syncer) keep(ctx context.Context, c string, n Network, recs map[string]cluster.DockerNetwork, shared map[string][]string, now map[string]bool) NetworkStatus {
	st := NetworkStatus{Cluster: c, Name: n.Name, State: "present"}
	log := s.log.WithFields(logrus.Fields{"cluster_network": c, "network": n.Name})
	rec, ok := recs[c]
	switch {
	case !ok:
		want := recordOf(c, n)
		have, created, err := s.cfg.Cluster.PublishDockerNetwork(want)
		switch {
		case err != nil:
			st.State, st.Detail = "failed", "publish: "+err.Error()
		case created:
			log.Info("cluster network published: every host creates it in its Docker")
		case !have.Same(want):
			st.State, st.Detail = "conflict", conflictDetail(have, n)
		}
	case rec.Removed == "" && !rec.Same(recordOf(c, n)):
		st.State, st.Detail = "conflict", conflictDetail(rec, n)
	case rec.Removed == "" && len(shared[rec.Name]) > 1 && shared[rec.Name][0] != c:
		st.State, st.Detail = "conflict", sharedDetail(rec.Name, shared[rec.Name])
	case rec.Removed != "" && s.passes > 0 && !s.had[c]:
		// Created again by a user here after a removal elsewhere.
		if err := s.cfg.Cluster.MarkDockerNetworkRemoved(c, false); err != nil {
			st.State, st.Detail = "failed", "mark in use again: "+err.Error()
		}
	case rec.Removed != "":
		// Stopped containers count: Docker would let the network go, and
		// they could not start again.
		count, cerr := s.cfg.Engine.Containers(ctx, n.ID)
		err := cerr
		if err == nil && count == 0 {
			err = s.cfg.Engine.Remove(ctx, n.ID)
			if errors.Is(err, ErrInUse) {
				count, _ = s.cfg.Engine.Containers(ctx, n.ID)
			}
		}
		switch {
		case count > 0 || errors.Is(err, ErrInUse):
			st.State = "removal-pending"
			st.Detail = fmt.Sprintf("removed by a user on %s; %d container(s) here still use it (running or stopped), it goes when they do", rec.Removed, count)
		case err != nil:
			st.State, st.Detail = "failed", err.Error()
		default:
			s.removedHere[c] = true
			delete(now, c)
			st.State, st.Detail = "removed", "removed by a user on "+rec.Removed
			log.Info("cluster network removed from this host's Docker: a user removed it on " + rec.Removed)
		}
	}
	return st
}

// bring handles a record whose network this host's Docker lacks: a user
// removed it here (mark the record), or it is to be created.
func (s *Syncer) bring(ctx context.Context, c string, rec cluster.DockerNetwork, byName map[string]Network, now map[string]bool) NetworkStatus {
	st := NetworkStatus{Cluster: c, Name: rec.Name}
	log := s.log.WithFields(logrus.Fields{"cluster_network": c, "network": rec.Name})
	if err := checkRecord(c, rec); err != nil {
		if logOnce(s.logged, c, err.Error()) {
			log.WithError(err).Warn("cluster network record refused")
		}
		st.State, st.Detail = "refused", err.Error()
		return st
	}
	if s.had[c] && !s.removedHere[c] {
		if users, err := s.usersElsewhere(c); err != nil {
			st.State, st.Detail = "failed", "read the network's endpoints: "+err.Error()
			return st
		} else if users != "" {
			// As Docker's overlay refused a removal while any host had
			// containers on it: it is made again here, and stays.
			detail := "removed here by a user while " + users + " use it: a cluster network goes only when no host uses it; created here again"
			if logOnce(s.logged, c, detail) {
				log.Warn(detail)
			}
			s.had[c] = false
			return s.create(ctx, c, rec, st, log, now, "recreated", detail)
		}
		if err := s.cfg.Cluster.MarkDockerNetworkRemoved(c, true); err != nil {
			st.State, st.Detail = "failed", "mark removed: "+err.Error()
			return st
		}
		log.Info("cluster network removed here by a user: every host removes it where no container uses it")
		st.State, st.Detail = "removed", "removed here; every host removes it where no container uses it"
		return st
	}
	if other, ok := byName[rec.Name]; ok {
		st.State = "conflict"
		st.Detail = fmt.Sprintf("this host has another network named %s (driver %s): rename or remove it to get cluster network %s", rec.Name, other.Driver, c)
		return st
	}
	return s.create(ctx, c, rec, st, log, now, "created", "")
}

// create makes a record's network in this host's Docker, backing off when
// Docker refuses; state and detail are the status after it worked.
func (s *Syncer) create(ctx context.Context, c string, rec cluster.DockerNetwork, st NetworkStatus, log *logrus.Entry, now map[string]bool, state, detail string) NetworkStatus {
	b := s.backoffs[c]
	if b != nil && time.Now().Before(b.next) {
		st.State, st.Detail = "failed", b.err+" (trying again in "+time.Until(b.next).Round(time.Second).String()+")"
		return st
	}
	opts, dropped := portable(rec.Options)
	if len(dropped) > 0 && logOnce(s.logged, c, fmt.Sprint(dropped)) {
		log.WithField("options", dropped).Warn("host-specific options in the cluster's record left out")
	}
	_, err := s.cfg.Engine.Create(ctx, Network{Name: rec.Name, Driver: s.driver, IPAMDriver: s.driver, Options: opts,
		IPAMOptions: rec.IPAMOptions, Labels: rec.Labels, Subnet: rec.Subnet, Gateway: rec.Gateway, Internal: rec.Internal})
	if err != nil {
		if b == nil {
			b = &backoff{}
			s.backoffs[c] = b
		}
		if b.failed(err, time.Now()) {
			log.WithError(err).Warn("could not create the cluster network in this host's Docker; trying again, less and less often")
		}
		st.State, st.Detail = "failed", err.Error()
		return st
	}
	delete(s.backoffs, c)
	now[c] = true
	log.WithField("origin", rec.Origin).Info("cluster network created in this host's Docker")
	st.State, st.Detail = state, detail
	return st
}

// usersElsewhere says which other hosts have containers on cluster network
// c, from its endpoint records ("host1 (2 containers), ..."; "" when none).
func (s *Syncer) usersElsewhere(c string) (string, error) {
	eps, _, err := s.cfg.Cluster.Endpoints(c)
	if err != nil {
		return "", err
	}
	counts := map[string]int{}
	for _, ep := range eps {
		if ep.Node != s.cfg.Cluster.Node() {
			counts[ep.Node]++
		}
	}
	var parts []string
	for _, node := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s (%d container(s))", node, counts[node]))
	}
	return strings.Join(parts, ", "), nil
}

func sharedDetail(name string, clusters []string) string {
	return fmt.Sprintf("cluster networks %s all have the Docker name %s: %s, created first, is that network on every host; remove the others",
		strings.Join(clusters, ", "), name, clusters[0])
}

func conflictDetail(rec cluster.DockerNetwork, n Network) string {
	return fmt.Sprintf("the cluster's record (from %s) is Docker network %s %s; this host's %s %s differs: remove one of them",
		rec.Origin, rec.Name, rec.Subnet, n.Name, n.Subnet)
}

// recordOf is the cluster's record of this host's Docker network n.
func recordOf(c string, n Network) cluster.DockerNetwork {
	opts, _ := portable(n.Options)
	return cluster.DockerNetwork{Cluster: c, Name: n.Name, Options: opts, IPAMOptions: n.IPAMOptions, Labels: n.Labels,
		Subnet: n.Subnet, Gateway: n.Gateway, Internal: n.Internal}
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
