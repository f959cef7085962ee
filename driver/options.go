package driver

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/mynet/mynet/errdefs"
	"github.com/mynet/mynet/netutil"
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
)

// notYet lists options of Docker's bridge driver that mynet does not
// implement yet; they are refused rather than silently ignored.
var notYet = []string{
	"com.docker.network.bridge.host_binding_ipv4",
	"com.docker.network.bridge.inhibit_ipv4",
	"com.docker.network.host_ipv4",
	"com.docker.network.bridge.gateway_mode_ipv4",
	"com.docker.network.bridge.gateway_mode_ipv6",
	"com.docker.network.bridge.default_bridge",
}

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
}

// validID accepts Docker's object IDs (hex), and nothing that could reach a
// command line or an interface name in a harmful shape.
func validID(what, id string) error {
	if len(id) < 12 || len(id) > 128 {
		return errdefs.Invalid("invalid %s ID %q: want 12 to 128 letters and digits", what, id)
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return errdefs.Invalid("invalid %s ID %q: want letters and digits only", what, id)
		}
	}
	return nil
}

// validateIfName accepts interface names the kernel takes that are also
// safe on an iptables command line: letters, digits, '_', '.' and '-'.
func validateIfName(key, name string, maxLen int) error {
	if err := netutil.ValidateName(name); err != nil {
		return errdefs.Invalid("option %s: %v", key, err)
	}
	if len(name) > maxLen {
		return errdefs.Invalid("option %s: %q is %d bytes, at most %d are allowed", key, name, len(name), maxLen)
	}
	for _, c := range name {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '.' || c == '-') {
			return errdefs.Invalid("option %s: %q may contain only letters, digits, '_', '.' and '-'", key, name)
		}
	}
	return nil
}

// DefaultBridgeName is the bridge of a network the user did not name one for.
func DefaultBridgeName(networkID string) string { return "mn-" + networkID[:12] }

// parseNetworkConfig validates a CreateNetwork request into a config. It
// touches nothing.
func parseNetworkConfig(req *network.CreateNetworkRequest) (*NetworkConfig, error) {
	if err := validID("network", req.NetworkID); err != nil {
		return nil, err
	}
	cfg := &NetworkConfig{ID: req.NetworkID, ICC: true, Masquerade: true, ContainerPrefix: "eth"}

	if v, ok := req.Options[optEnableIPv6]; ok {
		on, err := parseBool(optEnableIPv6, v)
		if err != nil {
			return nil, err
		}
		if on || len(req.IPv6Data) > 0 {
			return nil, errdefs.Invalid("mynet does not support IPv6 networks yet (--ipv6)")
		}
	}
	if v, ok := req.Options[optInternal]; ok {
		on, err := parseBool(optInternal, v)
		if err != nil {
			return nil, err
		}
		cfg.Internal = on
	}

	generic := map[string]any{}
	if g, ok := req.Options[optGeneric]; ok && g != nil {
		m, ok := g.(map[string]any)
		if !ok {
			return nil, errdefs.Invalid("option %s must be an object, not %T", optGeneric, g)
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
		default:
			for _, n := range notYet {
				if key == n {
					err = errdefs.Invalid("option %s is not supported by mynet yet", key)
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if !cfg.UserBridge {
		cfg.BridgeName = DefaultBridgeName(cfg.ID)
	}

	switch len(req.IPv4Data) {
	case 0:
		return nil, errdefs.Invalid("mynet needs an IPv4 subnet for the network")
	case 1:
	default:
		return nil, errdefs.Invalid("mynet supports one IPv4 subnet per network, got %d", len(req.IPv4Data))
	}
	d := req.IPv4Data[0]
	if d == nil {
		return nil, errdefs.Invalid("IPv4 data is empty")
	}
	subnet, err := netip.ParsePrefix(d.Pool)
	if err != nil || !subnet.Addr().Is4() {
		return nil, errdefs.Invalid("invalid IPv4 subnet %q", d.Pool)
	}
	cfg.Subnet = subnet.Masked()
	if d.Gateway == "" {
		return nil, errdefs.Invalid("no IPv4 gateway was given for subnet %s", cfg.Subnet)
	}
	gw, err := parseAddrOrPrefix(d.Gateway)
	if err != nil || !cfg.Subnet.Contains(gw) {
		return nil, errdefs.Invalid("gateway %q is not an address in subnet %s", d.Gateway, cfg.Subnet)
	}
	cfg.Gateway = netip.PrefixFrom(gw, cfg.Subnet.Bits())
	return cfg, nil
}

func parseAddrOrPrefix(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	return netip.ParseAddr(s)
}

// Docker passes -o values as strings; API clients may send JSON booleans
// and numbers, which its bridge driver accepts too.
func parseString(key string, v any) (string, error) {
	switch s := v.(type) {
	case string:
		return s, nil
	default:
		return "", errdefs.Invalid("option %s: want a string, got %v", key, v)
	}
}

func parseBool(key string, v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		on, err := strconv.ParseBool(strings.TrimSpace(b))
		if err != nil {
			return false, errdefs.Invalid("option %s: %q is not a boolean (true or false)", key, b)
		}
		return on, nil
	default:
		return false, errdefs.Invalid("option %s: want true or false, got %v", key, v)
	}
}

func parseMTU(key string, v any) (int, error) {
	var n int
	switch x := v.(type) {
	case string:
		var err error
		if n, err = strconv.Atoi(strings.TrimSpace(x)); err != nil {
			return 0, errdefs.Invalid("option %s: %q is not a number", key, x)
		}
	case float64:
		n = int(x)
		if float64(n) != x {
			return 0, errdefs.Invalid("option %s: %v is not a whole number", key, x)
		}
	default:
		return 0, errdefs.Invalid("option %s: want a number, got %v", key, v)
	}
	if n == 0 {
		return 0, nil // Docker's "0" means the default
	}
	if n < 68 || n > 65535 {
		return 0, errdefs.Invalid("option %s: MTU %d is out of range (68 to 65535)", key, n)
	}
	return n, nil
}

// conflicts reports why cfg cannot coexist with an existing network.
func (cfg *NetworkConfig) conflicts(other *NetworkConfig) error {
	if cfg.Subnet.Overlaps(other.Subnet) {
		return errdefs.Conflict("subnet %s overlaps subnet %s of mynet network %s", cfg.Subnet, other.Subnet, short(other.ID))
	}
	if cfg.BridgeName == other.BridgeName {
		return errdefs.Conflict("bridge %s is already used by mynet network %s", cfg.BridgeName, short(other.ID))
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// same reports whether two configs describe the same network, so a repeated
// CreateNetwork can succeed.
func (cfg *NetworkConfig) same(o *NetworkConfig) bool { return fmt.Sprint(*cfg) == fmt.Sprint(*o) }
