package dockersync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
)

// What a pass does with one cluster network: keep one this host's Docker
// has, bring one it lacks (see doc.go).

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
		IPAMOptions: rec.IPAMOptions, Labels: rec.Labels, Subnet: rec.Subnet, Gateway: rec.Gateway, IPRange: rec.IPRange, NoIPv4: rec.NoIPv4,
		EnableIPv6: rec.EnableIPv6, Subnet6: rec.Subnet6, Gateway6: rec.Gateway6, IPRange6: rec.IPRange6, Internal: rec.Internal})
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
	eps, _, err := s.cfg.Cluster.Peers(c)
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
		rec.Origin, rec.Name, subnets(rec.Subnet, rec.Subnet6), n.Name, subnets(n.Subnet, n.Subnet6))
}

// subnets names a network's subnets, IPv4 then IPv6 ("10.0.0.0/24",
// "10.0.0.0/24 fd00::/64", "fd00::/64").
func subnets(ps ...netip.Prefix) string {
	var out []string
	for _, p := range ps {
		if p.IsValid() {
			out = append(out, p.String())
		}
	}
	return strings.Join(out, " ")
}

// recordOf is the cluster's record of this host's Docker network n.
func recordOf(c string, n Network) cluster.DockerNetwork {
	opts, _ := portable(n.Options)
	return cluster.DockerNetwork{Cluster: c, Name: n.Name, Options: opts, IPAMOptions: n.IPAMOptions, Labels: n.Labels,
		Subnet: n.Subnet, Gateway: n.Gateway, IPRange: n.IPRange, NoIPv4: n.NoIPv4,
		EnableIPv6: n.EnableIPv6, Subnet6: n.Subnet6, Gateway6: n.Gateway6, IPRange6: n.IPRange6, Internal: n.Internal}
}
