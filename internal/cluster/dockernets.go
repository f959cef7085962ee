package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// DockerNetwork is a cluster network as Docker has it: what each host's
// syncer (internal/dockersync) gives its own Docker, so that one `docker
// network create` makes the network on every host. The host where a user
// created it publishes it; a removal by a user anywhere marks it Removed,
// every host then removes its copy where no container uses it, and the
// record goes with the network's configuration (LeaveNetwork of the last
// host).
type DockerNetwork struct {
	Cluster     string            `json:"-"`
	Name        string            `json:"name"`
	Options     map[string]string `json:"options,omitempty"`
	IPAMOptions map[string]string `json:"ipam_options,omitempty"`
	Subnet      netip.Prefix      `json:"subnet"`
	Gateway     netip.Addr        `json:"gateway"`
	// IPRange is the IPv4 --ip-range; EnableIPv6, Subnet6, Gateway6 and
	// IPRange6 a dual-stack network's IPv6 (zero otherwise).
	IPRange    netip.Prefix      `json:"ip_range,omitzero"`
	NoIPv4     bool              `json:"no_ipv4,omitempty"` // IPv6-only (enable_ipv4=false): no Subnet
	EnableIPv6 bool              `json:"enable_ipv6,omitempty"`
	Subnet6    netip.Prefix      `json:"subnet6,omitzero"`
	Gateway6   netip.Addr        `json:"gateway6,omitzero"`
	IPRange6   netip.Prefix      `json:"ip_range6,omitzero"`
	Internal   bool              `json:"internal,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// Origin is the host that published it, and Created when (Unix
	// nanoseconds, its clock): of two records with one Docker name, the
	// first created is the network on every host.
	Origin  string `json:"origin"`
	Created int64  `json:"created,omitempty"`
	// Removed names the host where a user removed the network ("" while
	// it is in use).
	Removed string `json:"removed,omitempty"`
	// Rev is the revision of a watched change (0 otherwise).
	Rev int64 `json:"-"`
}

// Same reports whether two records describe the same Docker network: a
// host that created it at the same moment as another adopts the record
// that won when name, subnets, gateways and internal match (options are the
// winner's; a host's own copy keeps its own).
func (n DockerNetwork) Same(o DockerNetwork) bool {
	return n.Name == o.Name && n.Subnet == o.Subnet && n.Gateway == o.Gateway && n.Internal == o.Internal &&
		n.Subnet6 == o.Subnet6 && n.Gateway6 == o.Gateway6
}

func dockerNetworkKey(net string) string { return Prefix + "docker-networks/" + net }

func parseDockerNetwork(key string, value []byte) (DockerNetwork, bool) {
	name, ok := strings.CutPrefix(key, Prefix+"docker-networks/")
	if !ok || ValidName(name) != nil {
		return DockerNetwork{}, false
	}
	n := DockerNetwork{Cluster: name}
	if value != nil && json.Unmarshal(value, &n) != nil {
		return DockerNetwork{}, false
	}
	n.Cluster = name
	return n, true
}

// PublishDockerNetwork records how the cluster network looks in this
// host's Docker, unless the cluster has a record of it already; it returns
// the record the cluster has and whether it is this one.
func (c *Client) PublishDockerNetwork(n DockerNetwork) (have DockerNetwork, created bool, err error) {
	if err := ValidName(n.Cluster); err != nil {
		return DockerNetwork{}, false, err
	}
	n.Origin, n.Removed = c.cfg.Node, ""
	if n.Created == 0 {
		n.Created = time.Now().UnixNano()
	}
	b, _ := json.Marshal(n)
	err = c.call("publish Docker network "+n.Name, func(ctx context.Context) error {
		ok, existing, err := c.kv.create(ctx, dockerNetworkKey(n.Cluster), b, 0)
		if err != nil {
			return err
		}
		if created = ok; ok {
			have = n
			return nil
		}
		var found bool
		if have, found = parseDockerNetwork(dockerNetworkKey(n.Cluster), existing); !found {
			return fmt.Errorf("decode the Docker network record of %s", n.Cluster)
		}
		return nil
	})
	return have, created, err
}

// MarkDockerNetworkRemoved marks the cluster network's Docker record
// removed by this host (removed true: a user removed it here) or in use
// again (false: a user created it again here). A record that is absent, or
// already so, is left alone.
func (c *Client) MarkDockerNetworkRemoved(net string, removed bool) error {
	key := dockerNetworkKey(net)
	return c.call("mark Docker network of "+net, func(ctx context.Context) error {
		for range 8 {
			b, ok, err := c.kv.get(ctx, key)
			if err != nil || !ok {
				return err
			}
			n, valid := parseDockerNetwork(key, b)
			if !valid {
				return fmt.Errorf("decode the Docker network record of %s", net)
			}
			if (n.Removed != "") == removed {
				return nil
			}
			n.Removed = ""
			if removed {
				n.Removed = c.cfg.Node
			}
			nb, _ := json.Marshal(n)
			if done, err := c.kv.replaceIf(ctx, key, b, nb); err != nil || done {
				return err
			}
		}
		return conflict("the Docker network record of %s kept changing", net)
	})
}

// DockerNetworks lists the cluster networks' Docker records at one
// revision, from which WatchDockerNetworks continues.
func (c *Client) DockerNetworks() ([]DockerNetwork, int64, error) {
	var out []DockerNetwork
	var rev int64
	err := c.call("list the cluster's Docker networks", func(ctx context.Context) error {
		out = out[:0]
		pairs, r, err := c.kv.list(ctx, Prefix+"docker-networks/")
		rev = r
		for _, p := range pairs {
			if n, ok := parseDockerNetwork(p.Key, p.Value); ok {
				out = append(out, n)
			}
		}
		return err
	})
	return out, rev, err
}

// WatchDockerNetworks calls fn for every record written (deleted false) or
// deleted (only Cluster set) after rev, until ctx ends or the watch fails,
// and returns the error (ErrCompacted: list again).
func (c *Client) WatchDockerNetworks(ctx context.Context, rev int64, fn func(n DockerNetwork, deleted bool)) error {
	for b := range c.kv.watch(ctx, Prefix+"docker-networks/", rev) {
		if b.Err != nil {
			return b.Err
		}
		for _, ev := range b.Events {
			if n, ok := parseDockerNetwork(ev.Key, ev.Value); ok {
				n.Rev = ev.Rev
				fn(n, ev.Delete)
			}
		}
	}
	return ctx.Err()
}
