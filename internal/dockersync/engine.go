package dockersync

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Network is a Docker network as the syncer sees it.
type Network struct {
	ID, Name, Driver string
	IPAMDriver       string
	Options          map[string]string
	IPAMOptions      map[string]string
	Labels           map[string]string
	Subnet           netip.Prefix // the first IPv4 subnet
	Gateway          netip.Addr
	IPRange          netip.Prefix
	// NoIPv4: an IPv6-only network (Engine 28 and later: EnableIPv4
	// false, and no IPv4 subnet).
	NoIPv4 bool
	// EnableIPv6 and the first IPv6 subnet, its gateway and range.
	EnableIPv6 bool
	Subnet6    netip.Prefix
	Gateway6   netip.Addr
	IPRange6   netip.Prefix
	Internal   bool
	// Scope is Docker's: local, or swarm for a swarm network, which swarm
	// makes and removes on each node as its tasks come and go.
	Scope string
}

// Endpoint is a container's endpoint on a network, as Docker lists it.
type Endpoint struct {
	ID, Container, Name string
}

// Engine is the part of Docker's API the syncer uses; the unit tests fake
// it.
type Engine interface {
	// Networks lists the engine's networks.
	Networks(ctx context.Context) ([]Network, error)
	// Create creates n (its ID is ignored) and returns the new ID.
	Create(ctx context.Context, n Network) (string, error)
	// Remove removes a network; ErrInUse when containers still use it.
	Remove(ctx context.Context, id string) error
	// Containers counts the containers that use a network, running or
	// stopped (a stopped one needs it to start again).
	Containers(ctx context.Context, id string) (int, error)
	// Endpoints lists a network's endpoints: their IDs, containers and
	// the containers' names.
	Endpoints(ctx context.Context, id string) ([]Endpoint, error)
	// Aliases are the names Docker's resolver answers for a container on
	// a network besides its name (DNSNames: aliases, short ID, hostname;
	// an engine older than API 1.44 gives its aliases).
	Aliases(ctx context.Context, container, network string) ([]string, error)
	// PluginName is the reference of the managed plugin of ID id, the
	// driver name Docker knows it by (mynet:latest).
	PluginName(ctx context.Context, id string) (string, error)
	Close() error
}

// ErrInUse is a removal Docker refused because containers use the network.
var ErrInUse = errors.New("containers still use the network")

// DefaultHost is the Docker API address of a plain daemon.
const DefaultHost = "unix:///run/docker.sock"

// dockerEngine is Engine on Docker's API client.
type dockerEngine struct{ c *client.Client }

// Dial returns an Engine talking to host (unix:///path or tcp://addr). It
// does not connect: each call does, so a Docker that comes up later is
// found.
func Dial(host string) (Engine, error) {
	c, err := client.New(client.WithHost(host)) // negotiates the API version (20.10 speaks 1.41)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	return &dockerEngine{c: c}, nil
}

func (e *dockerEngine) Networks(ctx context.Context) ([]Network, error) {
	res, err := e.c.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Docker's networks: %w", err)
	}
	out := make([]Network, 0, len(res.Items))
	for _, s := range res.Items {
		n := Network{ID: s.ID, Name: s.Name, Driver: s.Driver, IPAMDriver: s.IPAM.Driver, Options: s.Options,
			IPAMOptions: s.IPAM.Options, Labels: s.Labels, Internal: s.Internal, Scope: s.Scope, EnableIPv6: s.EnableIPv6}
		for _, c := range s.IPAM.Config {
			switch {
			case c.Subnet.Addr().Is4() && !n.Subnet.IsValid():
				n.Subnet, n.Gateway, n.IPRange = c.Subnet, c.Gateway, c.IPRange
			case c.Subnet.Addr().Is6() && !n.Subnet6.IsValid():
				n.Subnet6, n.Gateway6, n.IPRange6 = c.Subnet, c.Gateway, c.IPRange
			}
		}
		// An engine older than API 1.47 has no EnableIPv4 (false here):
		// a network with an IPv4 subnet is not IPv6-only, whatever it says.
		n.NoIPv4 = !s.EnableIPv4 && !n.Subnet.IsValid() && n.Subnet6.IsValid()
		out = append(out, n)
	}
	return out, nil
}

func (e *dockerEngine) Create(ctx context.Context, n Network) (string, error) {
	var cfgs []network.IPAMConfig
	opts := client.NetworkCreateOptions{Driver: n.Driver, Options: n.Options, Labels: n.Labels, Internal: n.Internal}
	if n.NoIPv4 {
		off := false
		opts.EnableIPv4 = &off
	} else {
		cfgs = append(cfgs, network.IPAMConfig{Subnet: n.Subnet, Gateway: n.Gateway, IPRange: n.IPRange})
	}
	if n.EnableIPv6 {
		// An IPv6 subnet the cluster has: the same on every host (without
		// one, mynet's IPAM gives the cluster's).
		if n.Subnet6.IsValid() {
			cfgs = append(cfgs, network.IPAMConfig{Subnet: n.Subnet6, Gateway: n.Gateway6, IPRange: n.IPRange6})
		}
		on := true
		opts.EnableIPv6 = &on
	}
	opts.IPAM = &network.IPAM{Driver: n.IPAMDriver, Options: n.IPAMOptions, Config: cfgs}
	res, err := e.c.NetworkCreate(ctx, n.Name, opts)
	if err != nil {
		return "", fmt.Errorf("create Docker network %s: %w", n.Name, err)
	}
	return res.ID, nil
}

func (e *dockerEngine) Remove(ctx context.Context, id string) error {
	_, err := e.c.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
	// Docker forbids (403) removing a network with active endpoints; of
	// a network of ours, nothing else is forbidden.
	if cerrdefs.IsPermissionDenied(err) {
		return fmt.Errorf("remove Docker network %s: %w (%v)", id, ErrInUse, err)
	}
	if err != nil {
		return fmt.Errorf("remove Docker network %s: %w", id, err)
	}
	return nil
}

func (e *dockerEngine) Containers(ctx context.Context, id string) (int, error) {
	res, err := e.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("network", id)})
	if err != nil {
		return 0, fmt.Errorf("list the containers of Docker network %s: %w", id, err)
	}
	return len(res.Items), nil
}

func (e *dockerEngine) Endpoints(ctx context.Context, id string) ([]Endpoint, error) {
	res, err := e.c.NetworkInspect(ctx, id, client.NetworkInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspect Docker network %s: %w", id, err)
	}
	out := make([]Endpoint, 0, len(res.Network.Containers))
	for c, r := range res.Network.Containers {
		out = append(out, Endpoint{ID: r.EndpointID, Container: c, Name: r.Name})
	}
	return out, nil
}

func (e *dockerEngine) PluginName(ctx context.Context, id string) (string, error) {
	res, err := e.c.PluginInspect(ctx, id, client.PluginInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("inspect plugin %s: %w", id, err)
	}
	return res.Plugin.Name, nil
}

func (e *dockerEngine) Aliases(ctx context.Context, container, network string) ([]string, error) {
	res, err := e.c.ContainerInspect(ctx, container, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", container, err)
	}
	if res.Container.NetworkSettings == nil {
		return nil, nil
	}
	es := res.Container.NetworkSettings.Networks[network]
	if es == nil {
		return nil, nil
	}
	if len(es.DNSNames) > 0 {
		return es.DNSNames, nil
	}
	return es.Aliases, nil
}

func (e *dockerEngine) Close() error { return e.c.Close() }
