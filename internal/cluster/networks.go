package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"

	"github.com/sirupsen/logrus"
)

// NetworkSpec is a cluster network's shared configuration.
type NetworkSpec struct {
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	VNI     uint32       `json:"vni"`
	// Port is the UDP port of the network's VXLAN on every host: mynet's
	// own (DefaultVXLANPort) for a network made since mynet has one, 0 for
	// one made before, which keeps IANA's (VXLANPort says which).
	Port int `json:"port,omitempty"`
	// MTU of the network's interfaces on every host, settled by the first
	// host's driver (SettleMTU); 0 until then.
	MTU int `json:"mtu,omitempty"`
	// Policy is the network's behaviour on every host, settled by the
	// first host's driver (SettlePolicy); nil until then.
	Policy *Policy `json:"policy,omitempty"`
	// Subnet6 and Gateway6 are a dual-stack network's IPv6 subnet and the
	// gateway every host carries, settled by the first host that asks
	// (SettleSubnet6); unset for an IPv4-only network.
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
}

// Policy is what a cluster network does the same on every host: a host
// that asks for another is refused with the values to use.
type Policy struct {
	Internal    bool   `json:"internal"`
	ICC         bool   `json:"icc"`
	Masquerade  bool   `json:"masquerade"`
	GatewayMode string `json:"gateway_mode"`
	// GatewayMode6 is the IPv6 gateway mode ("": a policy settled before
	// it was kept, which is NAT's).
	GatewayMode6 string `json:"gateway_mode_ipv6,omitempty"`
	// Encrypted networks carry their VXLAN inside WireGuard (tunnels.go).
	Encrypted bool `json:"encrypted,omitempty"`
}

// VXLAN ports. Docker's overlay (swarm's too) uses IANA's 4789, with VNIs
// from 4096 up, and a firewall may admit it from hosts that are not in
// mynet's cluster: mynet's networks use a port of their own, so that
// neither's VNIs can meet the other's and mynet's guard (which drops VXLAN
// from non-members on mynet's port) never touches overlay's traffic.
const (
	DefaultVXLANPort = 4799
	IANAVXLANPort    = 4789
)

// VXLANPort is the network's VXLAN port on every host.
func (s NetworkSpec) VXLANPort() int {
	if s.Port == 0 {
		return IANAVXLANPort
	}
	return s.Port
}

func networkKey(net string) string { return Prefix + "networks/" + net + "/" }

// ValidName checks a cluster network's name: it becomes part of etcd keys.
func ValidName(name string) error {
	if name == "" || len(name) > 64 {
		return conflict("cluster network name %q must have 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return conflict("cluster network name %q may hold only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// EnsureNetwork creates the cluster network's configuration if it is absent
// and returns what the cluster has. port is the VXLAN port a network made
// now gets: 0 for mynet's (DefaultVXLANPort); a host restoring a network
// after etcd lost it gives the one its hosts use. A subnet or gateway that differs from
// the cluster's is refused with what to change; a zero gateway takes the
// cluster's (or the subnet's first address for a new network); a zero
// subnet takes the cluster's, or one of the default pool for a new network
// (subnets.go), and of hosts racing to create it without one, all get the
// winner's.
func (c *Client) EnsureNetwork(name string, subnet netip.Prefix, gateway netip.Addr, port int) (NetworkSpec, error) {
	return c.ensure(name, subnet, gateway, port, false)
}

// EnsureNetwork6 is EnsureNetwork for an IPv6-only network (Docker's
// --ipv6 with enable_ipv4=false): subnet and gateway are its Subnet6 and
// Gateway6, and it has no IPv4 subnet; a zero subnet takes the cluster's,
// or one of the default IPv6 pool (ipv6.go). A host asking for an
// IPv6-only network where the cluster's has IPv4, or the reverse, is
// refused with what to change.
func (c *Client) EnsureNetwork6(name string, subnet netip.Prefix, gateway netip.Addr, port int) (NetworkSpec, error) {
	return c.ensure(name, subnet, gateway, port, true)
}

// ensure checks the arguments of EnsureNetwork (only6 false) and
// EnsureNetwork6, and makes or checks the network.
func (c *Client) ensure(name string, subnet netip.Prefix, gateway netip.Addr, port int, only6 bool) (NetworkSpec, error) {
	if err := ValidName(name); err != nil {
		return NetworkSpec{}, err
	}
	if port < 0 || port > 65535 {
		return NetworkSpec{}, conflict("cluster network %s: VXLAN port %d is not a UDP port", name, port)
	}
	var spec NetworkSpec
	err := c.call("cluster network "+name, func(ctx context.Context) error {
		var err error
		spec, err = c.ensureNetwork(ctx, name, subnet, gateway, port, only6)
		return err
	})
	return spec, err
}

// LookupNetwork returns the cluster network's configuration, if the
// cluster has one.
func (c *Client) LookupNetwork(name string) (spec NetworkSpec, found bool, err error) {
	if err := ValidName(name); err != nil {
		return NetworkSpec{}, false, err
	}
	cfgKey := networkKey(name) + "config"
	err = c.call("cluster network "+name, func(ctx context.Context) error {
		b, ok, err := c.kv.get(ctx, cfgKey)
		if err != nil || !ok {
			return err
		}
		found = true
		if err := json.Unmarshal(b, &spec); err != nil {
			return fmt.Errorf("decode %s: %w", cfgKey, err)
		}
		return nil
	})
	return spec, found, err
}

func (c *Client) ensureNetwork(ctx context.Context, name string, subnet netip.Prefix, gateway netip.Addr, port int, only6 bool) (NetworkSpec, error) {
	asked := subnet // a subnet picked from the default pool is no one's ask
	check := func(have NetworkSpec) (NetworkSpec, error) {
		haveSubnet, haveGateway := have.Subnet, have.Gateway
		switch {
		case only6 && have.Subnet.IsValid():
			return have, conflict("cluster network %s has IPv4 subnet %s: it is not IPv6-only; create it with --subnet %s too, without enable_ipv4=false", name, have.Subnet, have.Subnet)
		case !only6 && !have.Subnet.IsValid():
			return have, conflict("cluster network %s is IPv6-only: create it with --ipv6 -o com.docker.network.enable_ipv4=false [--subnet %s]", name, have.Subnet6)
		case only6:
			haveSubnet, haveGateway = have.Subnet6, have.Gateway6
		}
		if asked.IsValid() && haveSubnet != asked.Masked() {
			return have, conflict("cluster network %s has subnet %s; this host asked for %s: create it with --subnet %s", name, haveSubnet, asked, haveSubnet)
		}
		if gateway.IsValid() && haveGateway != gateway {
			return have, conflict("cluster network %s has gateway %s; this host asked for %s: create it with --gateway %s (or none)", name, haveGateway, gateway, haveGateway)
		}
		return have, nil
	}
	cfgKey := networkKey(name) + "config"
	if b, ok, err := c.kv.get(ctx, cfgKey); err != nil {
		return NetworkSpec{}, err
	} else if ok {
		var have NetworkSpec
		if err := json.Unmarshal(b, &have); err != nil {
			return NetworkSpec{}, fmt.Errorf("decode %s: %w", cfgKey, err)
		}
		return check(have)
	}
	var picked netip.Prefix
	switch {
	case !subnet.IsValid() && only6:
		var err error
		if picked, err = c.pickSubnet6(ctx, name); err != nil {
			return NetworkSpec{}, err
		}
		subnet = picked
	case !subnet.IsValid():
		var err error
		if picked, err = c.pickSubnet(ctx, name); err != nil {
			return NetworkSpec{}, err
		}
		subnet = picked
	case only6 && (!subnet.Addr().Is6() || subnet.Addr().Is4In6()):
		return NetworkSpec{}, conflict("cluster network %s: its subnet must be IPv6, not %s", name, subnet)
	case !only6 && !subnet.Addr().Is4():
		return NetworkSpec{}, conflict("cluster network %s: its subnet must be IPv4, not %s", name, subnet)
	}
	subnet = subnet.Masked()
	if !gateway.IsValid() {
		gateway = subnet.Addr().Next()
	}
	if !subnet.Contains(gateway) {
		return NetworkSpec{}, conflict("gateway %s is not in subnet %s", gateway, subnet)
	}
	vni, err := c.claimVNI(ctx, name)
	if err != nil {
		c.releaseSubnet(ctx, name, picked)
		return NetworkSpec{}, err
	}
	if port == 0 {
		port = DefaultVXLANPort
	}
	want := NetworkSpec{Subnet: subnet, Gateway: gateway, VNI: vni, Port: port}
	if only6 {
		want = NetworkSpec{Subnet6: subnet, Gateway6: gateway, VNI: vni, Port: port}
	}
	b, _ := json.Marshal(want)
	created, existing, err := c.kv.create(ctx, cfgKey, b, 0)
	if err != nil {
		return NetworkSpec{}, err
	}
	if created {
		c.log.WithFields(logrus.Fields{"network": name, "subnet": subnet, "vni": vni}).Info("cluster network created")
		return want, nil
	}
	// Another host created it first: take its VNI, and give ours back
	// unless it is the same one (hosts racing for one network mostly pick
	// the same VNI, and then the claim is the winner's too).
	var have NetworkSpec
	if err := json.Unmarshal(existing, &have); err != nil {
		return NetworkSpec{}, fmt.Errorf("decode %s: %w", cfgKey, err)
	}
	if have.VNI != vni {
		_, _ = c.kv.deleteIf(ctx, vniKey(vni), []byte(name))
	}
	if picked != have.Subnet && picked != have.Subnet6 {
		c.releaseSubnet(ctx, name, picked)
	}
	return check(have)
}

// SettleMTU returns the cluster network's MTU, making it mtu if the
// network has none yet (a compare-and-swap on its configuration, so of
// hosts racing to settle it one wins and the others get its value).
func (c *Client) SettleMTU(name string, mtu int) (int, error) {
	var got int
	err := c.settle(name, "MTU", func(spec *NetworkSpec) bool {
		if spec.MTU != 0 {
			got = spec.MTU
			return false
		}
		spec.MTU, got = mtu, mtu
		return true
	})
	return got, err
}

// SettlePolicy returns the cluster network's policy on every host: the
// one settled, or p, settled now by this host.
func (c *Client) SettlePolicy(name string, p Policy) (Policy, error) {
	var got Policy
	err := c.settle(name, "policy", func(spec *NetworkSpec) bool {
		if spec.Policy != nil {
			got = *spec.Policy
			return false
		}
		spec.Policy, got = &p, p
		return true
	})
	return got, err
}

// settle reads the cluster network's configuration and, when fn changed
// it (a value not settled yet), writes it back only while it holds what
// was read, reading again when another host changed it meanwhile.
func (c *Client) settle(name, what string, fn func(*NetworkSpec) bool) error {
	cfgKey := networkKey(name) + "config"
	return c.call(what+" of cluster network "+name, func(ctx context.Context) error {
		for range 8 {
			b, ok, err := c.kv.get(ctx, cfgKey)
			if err != nil {
				return err
			}
			if !ok {
				return conflict("cluster network %s has no configuration in the cluster", name)
			}
			var spec NetworkSpec
			if err := json.Unmarshal(b, &spec); err != nil {
				return fmt.Errorf("decode %s: %w", cfgKey, err)
			}
			if !fn(&spec) {
				return nil
			}
			nb, _ := json.Marshal(spec)
			if done, err := c.kv.replaceIf(ctx, cfgKey, b, nb); err != nil || done {
				return err
			}
		}
		return conflict("cluster network %s: its configuration kept changing while its %s was settled", name, what)
	})
}

func vniKey(vni uint32) string { return fmt.Sprintf("%svnis/%d", Prefix, vni) }

// claimVNI claims a VNI for the network cluster-wide, starting from a hash
// of its name so that hosts racing for one network mostly agree.
func (c *Client) claimVNI(ctx context.Context, name string) (uint32, error) {
	h := fnv.New32a()
	h.Write([]byte(name))
	span := uint32(maxVNI - minVNI + 1)
	start := h.Sum32() % span
	for i := range uint32(64) {
		vni := minVNI + (start+i)%span
		ok, holder, err := c.kv.create(ctx, vniKey(vni), []byte(name), 0)
		if err != nil {
			return 0, err
		}
		if ok || string(holder) == name {
			return vni, nil
		}
	}
	return 0, conflict("no free VNI found for cluster network %s", name)
}

func hostKey(net, node string) string { return networkKey(net) + "hosts/" + node }

// JoinNetwork records that this host has the cluster network (a key of its
// own, under no lease: a host cut off from etcd still has it), so that its
// configuration stays while any host has it.
func (c *Client) JoinNetwork(name string) error {
	return c.call("record cluster network "+name+" on this host", func(ctx context.Context) error {
		return c.kv.put(ctx, hostKey(name, c.cfg.Node), []byte(c.cfg.Node), 0)
	})
}

// LeaveNetwork withdraws this host's record of the network (and its block
// affinities) and then
// removes the network's configuration and VNI claim if no host has the
// network any more and no address in it is claimed, in one transaction
// that checks both. It reports whether the configuration went.
func (c *Client) LeaveNetwork(name string) (deleted bool, err error) {
	err = c.call("delete cluster network "+name, func(ctx context.Context) error {
		mine := []string{hostKey(name, c.cfg.Node)}
		blocks, _, err := c.kv.list(ctx, networkKey(name)+"blocks/")
		if err != nil {
			return err
		}
		for _, b := range blocks {
			if string(b.Value) == c.cfg.Node {
				mine = append(mine, b.Key)
			}
		}
		if err := c.kv.deleteKeys(ctx, mine); err != nil {
			return err
		}
		cfgKey := networkKey(name) + "config"
		b, ok, err := c.kv.get(ctx, cfgKey)
		if err != nil || !ok {
			return err
		}
		var spec NetworkSpec
		if err := json.Unmarshal(b, &spec); err != nil {
			return err
		}
		deleted, err = c.kv.deleteIfEmpty(ctx, []string{cfgKey, vniKey(spec.VNI), dockerNetworkKey(name)},
			map[string][]byte{cfgKey: b, vniKey(spec.VNI): []byte(name)},
			[]string{networkKey(name) + "hosts/", networkKey(name) + "addrs/"})
		if deleted {
			c.releaseSubnet(ctx, name, spec.Subnet)
			c.releaseSubnet(ctx, name, spec.Subnet6)
		}
		return err
	})
	return deleted, err
}
