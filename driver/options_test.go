package driver

import (
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
)

const (
	netID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	epID  = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func createReq(generic map[string]any, pool, gw string) *network.CreateNetworkRequest {
	return &network.CreateNetworkRequest{
		NetworkID: netID,
		Options:   map[string]any{optGeneric: generic, optEnableIPv6: false},
		IPv4Data:  []*network.IPAMData{{AddressSpace: "LocalDefault", Pool: pool, Gateway: gw}},
	}
}

func TestParseNetworkConfigDefaults(t *testing.T) {
	cfg, err := parseNetworkConfig(createReq(map[string]any{}, "10.1.0.0/16", "10.1.0.1/16"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BridgeName != "mn-0123456789ab" || cfg.UserBridge || !cfg.ICC || !cfg.Masquerade || cfg.Internal ||
		cfg.MTU != 0 || cfg.ContainerPrefix != "eth" || cfg.Gateway.String() != "10.1.0.1/16" || cfg.Subnet.String() != "10.1.0.0/16" {
		t.Errorf("defaults = %+v", cfg)
	}
	if len(cfg.BridgeName) > 15 {
		t.Errorf("bridge name %q too long", cfg.BridgeName)
	}
}

func TestParseNetworkConfigOptions(t *testing.T) {
	req := createReq(map[string]any{
		OptBridgeName: "mybr", OptEnableICC: "false", OptEnableMasq: false, OptMTU: "1400", OptContainerPrefix: "net",
	}, "10.2.0.0/24", "10.2.0.254")
	req.Options[optInternal] = true
	cfg, err := parseNetworkConfig(req)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BridgeName != "mybr" || !cfg.UserBridge || cfg.ICC || cfg.Masquerade || !cfg.Internal || cfg.MTU != 1400 ||
		cfg.ContainerPrefix != "net" || cfg.Gateway.String() != "10.2.0.254/24" {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestParseNetworkConfigRejects(t *testing.T) {
	tests := []struct {
		name    string
		generic map[string]any
		modify  func(*network.CreateNetworkRequest)
		mention string // the error must name this
	}{
		{"mtu not a number", map[string]any{OptMTU: "abc"}, nil, OptMTU},
		{"mtu too small", map[string]any{OptMTU: "20"}, nil, OptMTU},
		{"mtu fraction", map[string]any{OptMTU: 1400.5}, nil, OptMTU},
		{"bridge name 16 bytes", map[string]any{OptBridgeName: "sixteen-bytes-xx"}, nil, OptBridgeName},
		{"bridge name with space", map[string]any{OptBridgeName: "br 0"}, nil, OptBridgeName},
		{"bridge name path", map[string]any{OptBridgeName: "../x"}, nil, OptBridgeName},
		{"bridge name empty", map[string]any{OptBridgeName: ""}, nil, OptBridgeName},
		{"bridge name not a string", map[string]any{OptBridgeName: 7.0}, nil, OptBridgeName},
		{"icc not bool", map[string]any{OptEnableICC: "maybe"}, nil, OptEnableICC},
		{"masquerade not bool", map[string]any{OptEnableMasq: "yes please"}, nil, OptEnableMasq},
		{"prefix too long", map[string]any{OptContainerPrefix: "averyverylongprefix"}, nil, OptContainerPrefix},
		{"not yet", map[string]any{"com.docker.network.bridge.host_binding_ipv4": "1.2.3.4"}, nil, "host_binding_ipv4"},
		{"generic not an object", nil, func(r *network.CreateNetworkRequest) { r.Options[optGeneric] = "x" }, optGeneric},
		{"ipv6", map[string]any{}, func(r *network.CreateNetworkRequest) { r.Options[optEnableIPv6] = true }, "IPv6"},
		{"no ipv4", map[string]any{}, func(r *network.CreateNetworkRequest) { r.IPv4Data = nil }, "IPv4 subnet"},
		{"two ipv4", map[string]any{}, func(r *network.CreateNetworkRequest) { r.IPv4Data = append(r.IPv4Data, r.IPv4Data[0]) }, "one IPv4 subnet"},
		{"bad pool", map[string]any{}, func(r *network.CreateNetworkRequest) { r.IPv4Data[0].Pool = "10.0.0.0/99" }, "subnet"},
		{"gateway outside", map[string]any{}, func(r *network.CreateNetworkRequest) { r.IPv4Data[0].Gateway = "10.9.9.9/24" }, "gateway"},
		{"bad network id", map[string]any{}, func(r *network.CreateNetworkRequest) { r.NetworkID = "../../etc" }, "network ID"},
		{"short network id", map[string]any{}, func(r *network.CreateNetworkRequest) { r.NetworkID = "abc" }, "network ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := createReq(tt.generic, "10.1.0.0/24", "10.1.0.1/24")
			if tt.modify != nil {
				tt.modify(req)
			}
			_, err := parseNetworkConfig(req)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not name %q", err, tt.mention)
			}
		})
	}
}

func FuzzParseNetworkConfig(f *testing.F) {
	f.Add("mybr", "true", "1500", "10.0.0.0/24", "10.0.0.1")
	f.Add("a b", "nope", "abc", "garbage", "")
	f.Fuzz(func(t *testing.T, bridge, icc, mtu, pool, gw string) {
		cfg, err := parseNetworkConfig(createReq(map[string]any{OptBridgeName: bridge, OptEnableICC: icc, OptMTU: mtu}, pool, gw))
		if err != nil {
			return
		}
		if len(cfg.BridgeName) > 15 || strings.ContainsAny(cfg.BridgeName, " /:") || !cfg.Subnet.Contains(cfg.Gateway.Addr()) {
			t.Errorf("accepted a config that cannot be built: %+v", cfg)
		}
	})
}
