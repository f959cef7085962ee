package driver

import (
	"net/netip"
	"strings"

	"github.com/mynet/mynet/internal/netaddr"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/ids"
	"github.com/mynet/mynet/internal/netutil"
)

// Option keys, as Docker's bridge driver names them.
const (
	optGeneric         = "com.docker.network.generic"
	optEnableIPv6      = "com.docker.network.enable_ipv6"
	optInternal        = "com.docker.network.internal"
	OptBridgeName      = "com.docker.network.bridge.name"
	OptEnableICC       = "com.docker.network.bridge.enable_icc"
	OptEnableMasq      = "com.docker.network.bridge.enable_ip_masquerade"
	OptMTU             = "com.docker.network.driver.mtu"
	OptContainerPrefix = "com.docker.network.container_iface_prefix"
	OptHostBinding     = "com.docker.network.bridge.host_binding_ipv4"
	OptInhibitIPv4     = "com.docker.network.bridge.inhibit_ipv4"
	OptHostIPv4        = "com.docker.network.host_ipv4"
	OptHostIPv6        = "com.docker.network.host_ipv6"
	OptTrustedIfaces   = "com.docker.network.bridge.trusted_host_interfaces"
	OptGatewayMode4    = "com.docker.network.bridge.gateway_mode_ipv4"
	OptGatewayMode6    = "com.docker.network.bridge.gateway_mode_ipv6"
	OptDefaultBridge   = "com.docker.network.bridge.default_bridge"
	optEnableIPv4      = "com.docker.network.enable_ipv4"
	OptAdvertiseNMsgs  = "com.docker.network.advertise_addr_nmsgs"
	OptAdvertiseMs     = "com.docker.network.advertise_addr_ms"
	// OptEncrypted (-o encrypted, as overlay spells it) makes a cluster
	// network's traffic between hosts go through WireGuard.
	OptEncrypted = "encrypted"
)

// Gateway modes (Docker 28): nat publishes ports through DNAT and
// masquerades; nat-unprotected does the same and lets routed traffic reach
// every container port directly; routed does neither NAT nor masquerade and
// lets routed traffic reach published container ports directly; isolated
// (internal networks only) puts no address of that family on the bridge,
// so the host cannot reach the containers.
const (
	GatewayNAT            = "nat"
	GatewayNATUnprotected = "nat-unprotected"
	GatewayRouted         = "routed"
	GatewayIsolated       = "isolated"
)

// NetworkConfig is a network's validated configuration.
type NetworkConfig struct {
	ID              string       `json:"id"`
	BridgeName      string       `json:"bridge"`
	UserBridge      bool         `json:"user_bridge"` // named by the user, so it may pre-exist
	Subnet          netip.Prefix `json:"subnet"`
	Gateway         netip.Prefix `json:"gateway"` // gateway address with the subnet's prefix length
	MTU             int          `json:"mtu,omitempty"`
	ICC             bool         `json:"icc"`
	Masquerade      bool         `json:"masquerade"`
	Internal        bool         `json:"internal"`
	ContainerPrefix string       `json:"container_prefix"`
	Subnet6         netip.Prefix `json:"subnet6"`
	Gateway6        netip.Prefix `json:"gateway6"`
	HostBinding     netip.Addr   `json:"host_binding"`             // default host address of published ports; zero: all
	InhibitIPv4     bool         `json:"inhibit_ipv4"`             // no IPv4 address on the bridge
	SNATSource      netip.Addr   `json:"snat_source"`              // host_ipv4: SNAT instead of MASQUERADE
	SNATSource6     netip.Addr   `json:"snat_source6"`             // host_ipv6: the same for IPv6
	TrustedIfaces   string       `json:"trusted_ifaces,omitempty"` // trusted_host_interfaces, ':'-separated
	NoIPv4          bool         `json:"no_ipv4,omitempty"`        // IPv6-only (EnableIPv4: false)
	GatewayMode4    string       `json:"gateway_mode4"`
	GatewayMode6    string       `json:"gateway_mode6"`
	// RandomMACs: an endpoint Docker gives no MAC gets a random one, as the
	// bridge of Engine 28 and later does (so a container restarted with the
	// same address gets a new MAC, and the engine's advertisements update
	// its peers); otherwise one derived from its IPv4 address, as 20.10's.
	// The engine's generation shows in what it sends: 28 and later send
	// com.docker.network.enable_ipv4 with every CreateNetwork.
	RandomMACs bool `json:"random_macs,omitempty"`
	// Cluster networks (multi-host): the cluster network's name, its VNI,
	// its VXLAN port (0: IANA's 4789, a network made before mynet had a
	// port of its own) and the VXLAN device on the bridge; all empty for a
	// local network.
	Cluster   string `json:"cluster,omitempty"`
	VNI       uint32 `json:"vni,omitempty"`
	VXLANPort int    `json:"vxlan_port,omitempty"`
	VXLAN     string `json:"vxlan,omitempty"`
	// Encrypted: the network's VXLAN goes through this host's WireGuard
	// tunnel, from VTEP, this host's tunnel address (docs/multihost.md).
	Encrypted bool       `json:"encrypted,omitempty"`
	VTEP      netip.Addr `json:"vtep,omitzero"`
}

// DefaultBridgeName is the bridge of a network the user did not name one for.
func DefaultBridgeName(networkID string) string { return "mn-" + networkID[:12] }

// parseNetworkConfig validates a CreateNetwork request into a config. It
// touches nothing.
func parseNetworkConfig(req *network.CreateNetworkRequest) (*NetworkConfig, error) {
	if err := validID("network", req.NetworkID); err != nil {
		return nil, err
	}
	cfg := defaultConfig(req.NetworkID)
	ipv6, err := parseOptions(cfg, req.Options)
	if err != nil {
		return nil, err
	}
	if !cfg.UserBridge {
		cfg.BridgeName = DefaultBridgeName(cfg.ID)
	}

	if cfg.NoIPv4 {
		if len(req.IPv4Data) > 0 {
			return nil, errdefs.Invalid("IPv4 subnets were given, but IPv4 is disabled")
		}
	} else if err := parseIPv4Data(cfg, req.IPv4Data); err != nil {
		return nil, err
	}
	if err := parseIPv6Data(cfg, ipv6, req.IPv6Data); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseIPv4Data takes the network's one IPv4 subnet and gateway.
func parseIPv4Data(cfg *NetworkConfig, data []*network.IPAMData) error {
	switch len(data) {
	case 0:
		return errdefs.Invalid("mynet needs an IPv4 subnet for the network (or IPv4 disabled, with IPv6)")
	case 1:
	default:
		return errdefs.Invalid("mynet supports one IPv4 subnet per network, got %d", len(data))
	}
	d := data[0]
	if d == nil {
		return errdefs.Invalid("IPv4 data is empty")
	}
	subnet, err := netip.ParsePrefix(d.Pool)
	if err != nil || !subnet.Addr().Is4() {
		return errdefs.Invalid("invalid IPv4 subnet %q", d.Pool)
	}
	cfg.Subnet = subnet.Masked()
	switch {
	case d.Gateway == "" && skipGateway4(cfg):
		// Docker 28 allocates no gateway for it (GwAllocCheck); none is needed.
	case skipGateway4(cfg) && cfg.GatewayMode4 == GatewayIsolated:
		// Docker 20.10 allocates one anyway; an isolated bridge takes none.
	case d.Gateway == "":
		return errdefs.Invalid("no IPv4 gateway was given for subnet %s", cfg.Subnet)
	default:
		gw, err := netaddr.Parse(d.Gateway)
		if err != nil || !cfg.Subnet.Contains(gw) {
			return errdefs.Invalid("gateway %q is not an address in subnet %s", d.Gateway, cfg.Subnet)
		}
		cfg.Gateway = netip.PrefixFrom(gw, cfg.Subnet.Bits())
	}
	return nil
}

// parseIPv6Data takes the network's IPv6 subnet and gateway, if IPv6 is on.
func parseIPv6Data(cfg *NetworkConfig, ipv6 bool, data []*network.IPAMData) error {
	if !ipv6 {
		if len(data) > 0 {
			return errdefs.Invalid("IPv6 subnets were given, but IPv6 is not enabled (--ipv6)")
		}
		return nil
	}
	if len(data) != 1 || data[0] == nil {
		return errdefs.Invalid("an IPv6 network needs exactly one IPv6 subnet, got %d", len(data))
	}
	d6 := data[0]
	subnet6, err := netip.ParsePrefix(d6.Pool)
	if err != nil || !subnet6.Addr().Is6() || subnet6.Addr().Is4In6() {
		return errdefs.Invalid("invalid IPv6 subnet %q", d6.Pool)
	}
	cfg.Subnet6 = subnet6.Masked()
	if !skipGateway6(cfg) {
		gw6, err := netaddr.Parse(d6.Gateway)
		if err != nil || !cfg.Subnet6.Contains(gw6) {
			return errdefs.Invalid("IPv6 gateway %q is not an address in subnet %s", d6.Gateway, cfg.Subnet6)
		}
		cfg.Gateway6 = netip.PrefixFrom(gw6, cfg.Subnet6.Bits())
	}
	return nil
}

func defaultConfig(id string) *NetworkConfig {
	return &NetworkConfig{ID: id, ICC: true, Masquerade: true, ContainerPrefix: "eth",
		GatewayMode4: GatewayNAT, GatewayMode6: GatewayNAT}
}

// parseOptions validates the options of a CreateNetwork (or GwAllocCheck)
// request into cfg and reports whether IPv6 is enabled.
func parseOptions(cfg *NetworkConfig, opts map[string]any) (ipv6 bool, err error) {
	if v, ok := opts[optEnableIPv6]; ok {
		on, err := parseBool(optEnableIPv6, v)
		if err != nil {
			return false, err
		}
		ipv6 = on
	}
	if v, ok := opts[optEnableIPv4]; ok {
		on, err := parseBool(optEnableIPv4, v)
		if err != nil {
			return false, err
		}
		cfg.NoIPv4 = !on
		cfg.RandomMACs = true
	}
	if v, ok := opts[optInternal]; ok {
		on, err := parseBool(optInternal, v)
		if err != nil {
			return false, err
		}
		cfg.Internal = on
	}

	generic := map[string]any{}
	if g, ok := opts[optGeneric]; ok && g != nil {
		m, ok := g.(map[string]any)
		if !ok {
			return false, errdefs.Invalid("option %s must be an object, not %T", optGeneric, g)
		}
		generic = m
	}
	for key, v := range generic {
		var err error
		switch key {
		case OptBridgeName:
			cfg.BridgeName, err = parseString(key, v)
			if err == nil {
				err = validateIfName(key, cfg.BridgeName, netutil.MaxNameLen)
			}
			cfg.UserBridge = true
		case OptEnableICC:
			cfg.ICC, err = parseBool(key, v)
		case OptEnableMasq:
			cfg.Masquerade, err = parseBool(key, v)
		case OptMTU:
			cfg.MTU, err = parseMTU(key, v)
		case OptContainerPrefix:
			cfg.ContainerPrefix, err = parseString(key, v)
			if err == nil {
				// Docker appends the interface's index, so leave room for it.
				err = validateIfName(key, cfg.ContainerPrefix, netutil.MaxNameLen-3)
			}
		case OptHostBinding:
			cfg.HostBinding, err = parseIP(key, v)
		case OptHostIPv4:
			cfg.SNATSource, err = parseIP(key, v)
			if err == nil && (!cfg.SNATSource.Is4() || cfg.SNATSource.IsUnspecified()) {
				err = errdefs.Invalid("option %s: %s is not a usable IPv4 address", key, cfg.SNATSource)
			}
		case OptHostIPv6:
			cfg.SNATSource6, err = parseIP(key, v)
			if err == nil && (!cfg.SNATSource6.Is6() || cfg.SNATSource6.IsUnspecified()) {
				err = errdefs.Invalid("option %s: %s is not a usable IPv6 address", key, cfg.SNATSource6)
			}
		case OptTrustedIfaces:
			cfg.TrustedIfaces, err = parseTrustedIfaces(key, v)
		case OptInhibitIPv4:
			cfg.InhibitIPv4, err = parseBool(key, v)
		case OptGatewayMode4:
			cfg.GatewayMode4, err = parseGatewayMode(key, v)
		case OptGatewayMode6:
			cfg.GatewayMode6, err = parseGatewayMode(key, v)
		case OptCluster:
			cfg.Cluster, err = parseString(key, v)
		case OptEncrypted:
			cfg.Encrypted, err = parseFlag(key, v)
		case OptAdvertiseNMsgs, OptAdvertiseMs:
			// The engine (28 and later) sends the advertisements itself, and
			// refuses these before the driver sees them; for an engine that
			// does not, the same values are refused in the same words.
			err = checkAdvertiseOption(key, v)
		case OptDefaultBridge:
			var on bool
			if on, err = parseBool(key, v); err == nil && on {
				err = errdefs.Invalid("option %s: a mynet network cannot be Docker's default bridge", key)
			}
		}
		if err != nil {
			return false, err
		}
	}

	if cfg.NoIPv4 && !ipv6 {
		return false, errdefs.Invalid("a network without IPv4 needs IPv6 (--ipv6 and an IPv6 subnet)")
	}
	if cfg.NoIPv4 && cfg.Cluster != "" {
		return false, errdefs.Invalid("cluster networks need IPv4 (option %s)", OptCluster)
	}
	if (cfg.GatewayMode4 == GatewayIsolated || cfg.GatewayMode6 == GatewayIsolated) && !cfg.Internal {
		return false, errdefs.Invalid("gateway mode %q can only be used for an internal network (add --internal)", GatewayIsolated)
	}
	return ipv6, nil
}

// parseFlag reads an option that is on when given with no value (-o
// encrypted), or a boolean.
func parseFlag(key string, v any) (bool, error) {
	if s, ok := v.(string); ok && s == "" {
		return true, nil
	}
	return parseBool(key, v)
}

// Routed reports whether the network's family f (4 or 6) uses the routed
// gateway mode.
func (cfg *NetworkConfig) Routed(f int) bool {
	if f == 6 {
		return cfg.GatewayMode6 == GatewayRouted
	}
	return cfg.GatewayMode4 == GatewayRouted
}

// Unprotected reports whether the network's family f (4 or 6) uses the
// nat-unprotected gateway mode.
func (cfg *NetworkConfig) Unprotected(f int) bool {
	if f == 6 {
		return cfg.GatewayMode6 == GatewayNATUnprotected
	}
	return cfg.GatewayMode4 == GatewayNATUnprotected
}

// skipGateway4 reports whether a network needs no IPv4 gateway address, as
// with Docker 28's bridge driver: an isolated one, or an internal one whose
// bridge gets no IPv4 address (it routes nowhere).
func skipGateway4(cfg *NetworkConfig) bool {
	return cfg.GatewayMode4 == GatewayIsolated || cfg.Internal && cfg.InhibitIPv4
}

// skipGateway6 reports whether a network needs no IPv6 gateway address: an
// isolated one.
func skipGateway6(cfg *NetworkConfig) bool { return cfg.GatewayMode6 == GatewayIsolated }

// Trusted returns the trusted host interfaces.
func (cfg *NetworkConfig) Trusted() []string {
	if cfg.TrustedIfaces == "" {
		return nil
	}
	return strings.Split(cfg.TrustedIfaces, ":")
}

// conflicts reports why cfg cannot coexist with an existing network.
func (cfg *NetworkConfig) conflicts(other *NetworkConfig) error {
	if cfg.Subnet.Overlaps(other.Subnet) {
		return errdefs.Conflict("subnet %s overlaps subnet %s of mynet network %s", cfg.Subnet, other.Subnet, ids.Short(other.ID))
	}
	if cfg.Subnet6.IsValid() && other.Subnet6.IsValid() && cfg.Subnet6.Overlaps(other.Subnet6) {
		return errdefs.Conflict("IPv6 subnet %s overlaps subnet %s of mynet network %s", cfg.Subnet6, other.Subnet6, ids.Short(other.ID))
	}
	if cfg.BridgeName == other.BridgeName {
		return errdefs.Conflict("bridge %s is already used by mynet network %s", cfg.BridgeName, ids.Short(other.ID))
	}
	return nil
}

// same reports whether two configs describe the same network, so a repeated
// CreateNetwork can succeed. Every field is comparable (the compiler checks
// it here), so this is field-by-field equality.
func (cfg *NetworkConfig) same(o *NetworkConfig) bool { return *cfg == *o }
