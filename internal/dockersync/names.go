package dockersync

import (
	"context"
	"maps"
	"slices"

	"github.com/sirupsen/logrus"
)

// Names is what the syncer tells the driver of the names Docker gives this
// host's containers on cluster networks (driver SetEndpointNames and
// SetNetworkNames), so that every host answers them as Docker does here:
// a container's name after `docker rename`, its aliases (Compose's
// service names), its short ID; and the networks' Docker names, for
// name.network.
type Names interface {
	SetEndpointNames(endpointID, name string, aliases []string) error
	SetNetworkNames(names map[string]string)
}

// learned is what was last told of one endpoint.
type learned struct {
	name    string
	aliases []string
}

// names runs at each pass: one look at each of this host's cluster
// networks' endpoints, and an inspect of each container that is new there
// or was renamed. What the driver could not publish is told again at the
// next pass.
func (s *Syncer) names(ctx context.Context, mine map[string]Network) {
	if s.cfg.Names == nil {
		return
	}
	netNames := map[string]string{}
	seen := map[string]bool{}
	for _, n := range mine {
		netNames[n.ID] = n.Name
		eps, err := s.cfg.Engine.Endpoints(ctx, n.ID)
		if err != nil {
			s.log.WithError(err).WithField("network", n.Name).Debug("could not list the network's containers for their names")
			for id := range s.learned {
				seen[id] = true // keep what is known until Docker answers
			}
			continue
		}
		for _, ep := range eps {
			seen[ep.ID] = true
			if l, ok := s.learned[ep.ID]; ok && l.name == ep.Name {
				continue
			}
			aliases, err := s.cfg.Engine.Aliases(ctx, ep.Container, n.Name)
			if err != nil {
				continue
			}
			aliases = slices.DeleteFunc(slices.Clone(aliases), func(a string) bool { return a == ep.Name })
			if err := s.cfg.Names.SetEndpointNames(ep.ID, ep.Name, aliases); err != nil {
				s.log.WithError(err).WithFields(logrus.Fields{"network": n.Name, "container": ep.Name}).Warn("could not publish a container's names; trying again")
				continue
			}
			s.learned[ep.ID] = learned{name: ep.Name, aliases: aliases}
		}
	}
	maps.DeleteFunc(s.learned, func(id string, _ learned) bool { return !seen[id] })
	s.cfg.Names.SetNetworkNames(netNames)
}
