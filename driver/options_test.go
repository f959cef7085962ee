package driver

import (
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/mynet/mynet/internal/store"
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
	t.Parallel()
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
	t.Parallel()
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

func TestParseNetworkConfigParityOptions(t *testing.T) {
	t.Parallel()
	req := createReq(map[string]any{
		OptHostBinding: "127.0.0.1", OptHostIPv4: "192.0.2.7", OptInhibitIPv4: "true",
		OptGatewayMode4: "routed", OptGatewayMode6: "nat", OptDefaultBridge: "false",
	}, "10.2.0.0/24", "10.2.0.1/24")
	req.Options[optEnableIPv6] = true
	req.IPv6Data = []*network.IPAMData{{Pool: "fd00:2::/64", Gateway: "fd00:2::1/64"}}
	cfg, err := parseNetworkConfig(req)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HostBinding.String() != "127.0.0.1" || cfg.SNATSource.String() != "192.0.2.7" || !cfg.InhibitIPv4 ||
		!cfg.Routed(4) || cfg.Routed(6) || cfg.Subnet6.String() != "fd00:2::/64" || cfg.Gateway6.String() != "fd00:2::1/64" {
		t.Errorf("cfg = %+v", cfg)
	}
	if got := bridgeAddrs(cfg); len(got) != 1 || got[0].String() != "fd00:2::1/64" {
		t.Errorf("inhibit_ipv4 bridge addresses = %v, want only the IPv6 gateway", got)
	}
}

// Gateway modes nat-unprotected and isolated, as Docker 28's bridge takes
// them: isolated only on an internal network, with no gateway address of
// that family on the bridge (none needed in the request either).
func TestGatewayModes(t *testing.T) {
	t.Parallel()
	req := createReq(map[string]any{OptGatewayMode4: "nat-unprotected", OptGatewayMode6: "nat-unprotected"}, "10.1.0.0/24", "10.1.0.1/24")
	cfg, err := parseNetworkConfig(req)
	if err != nil || !cfg.Unprotected(4) || !cfg.Unprotected(6) || cfg.Routed(4) {
		t.Fatalf("nat-unprotected: %+v, %v", cfg, err)
	}
	if fw := firewallNetwork(cfg); !fw.Unprotected || !fw.Unprotected6 {
		t.Errorf("firewall network %+v, want unprotected", fw)
	}

	req = createReq(map[string]any{OptGatewayMode4: "isolated", OptGatewayMode6: "isolated"}, "10.1.0.0/24", "")
	req.Options[optInternal] = true
	req.Options[optEnableIPv6] = true
	req.IPv6Data = []*network.IPAMData{{Pool: "fd00:3::/64"}}
	cfg, err = parseNetworkConfig(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := bridgeAddrs(cfg); len(got) != 0 {
		t.Errorf("isolated bridge addresses = %v, want none", got)
	}
	if bc := bridgeConfig(cfg, 0); !bc.NoIPv6 {
		t.Errorf("isolated IPv6: bridge config %+v, want NoIPv6", bc)
	}
	// Docker 20.10 allocates an IPv4 gateway anyway; the bridge still takes none.
	req.IPv4Data[0].Gateway = "10.1.0.1/24"
	if cfg, err = parseNetworkConfig(req); err != nil || len(bridgeAddrs(cfg)) != 0 {
		t.Errorf("isolated with a gateway from Docker: %v, %v", bridgeAddrs(cfg), err)
	}
	d := newHarness(t, store.NewMemory()).d
	if v4, v6, err := d.GwAllocCheck(map[string]any{optInternal: true, optGeneric: map[string]any{OptGatewayMode4: "isolated", OptGatewayMode6: "isolated"}}); err != nil || !v4 || !v6 {
		t.Errorf("GwAllocCheck(isolated) = %v, %v, %v; want both skipped", v4, v6, err)
	}
}

func TestHostIPv6AndTrustedInterfaces(t *testing.T) {
	t.Parallel()
	cfg, err := parseNetworkConfig(createReq(map[string]any{OptHostIPv6: "2001:db8::7", OptTrustedIfaces: "eth0::wg0:"}, "10.1.0.0/24", "10.1.0.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	fw := firewallNetwork(cfg)
	if fw.SNATSource6.String() != "2001:db8::7" || strings.Join(fw.Trusted, ",") != "eth0,wg0" {
		t.Errorf("firewall network %+v, want SNAT source 2001:db8::7 and trusted eth0, wg0", fw)
	}
}

func TestParseNetworkConfigRejects(t *testing.T) {
	t.Parallel()
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
		{"bridge name like an option", map[string]any{OptBridgeName: "--flush"}, nil, OptBridgeName},
		{"prefix like an option", map[string]any{OptContainerPrefix: "-j"}, nil, OptContainerPrefix},
		{"bridge name empty", map[string]any{OptBridgeName: ""}, nil, OptBridgeName},
		{"bridge name not a string", map[string]any{OptBridgeName: 7.0}, nil, OptBridgeName},
		{"icc not bool", map[string]any{OptEnableICC: "maybe"}, nil, OptEnableICC},
		{"masquerade not bool", map[string]any{OptEnableMasq: "yes please"}, nil, OptEnableMasq},
		{"prefix too long", map[string]any{OptContainerPrefix: "averyverylongprefix"}, nil, OptContainerPrefix},
		{"host binding not an IP", map[string]any{OptHostBinding: "localhost"}, nil, OptHostBinding},
		{"host_ipv4 is IPv6", map[string]any{OptHostIPv4: "fd00::1"}, nil, OptHostIPv4},
		{"host_ipv4 unspecified", map[string]any{OptHostIPv4: "0.0.0.0"}, nil, OptHostIPv4},
		{"host_ipv6 is IPv4", map[string]any{OptHostIPv6: "192.0.2.1"}, nil, OptHostIPv6},
		{"host_ipv6 unspecified", map[string]any{OptHostIPv6: "::"}, nil, OptHostIPv6},
		{"trusted interface like an option", map[string]any{OptTrustedIfaces: "eth0:-j"}, nil, OptTrustedIfaces},
		{"trusted interface too long", map[string]any{OptTrustedIfaces: "averyverylonginterface"}, nil, OptTrustedIfaces},
		{"unknown gateway mode", map[string]any{OptGatewayMode4: "bridged"}, nil, OptGatewayMode4},
		{"unknown gateway mode v6", map[string]any{OptGatewayMode6: "nat-protected"}, nil, OptGatewayMode6},
		{"isolated, not internal", map[string]any{OptGatewayMode4: "isolated"}, nil, "--internal"},
		{"isolated v6, not internal", map[string]any{OptGatewayMode6: "isolated"}, nil, "--internal"},
		{"default bridge", map[string]any{OptDefaultBridge: "true"}, nil, OptDefaultBridge},
		{"inhibit not bool", map[string]any{OptInhibitIPv4: "sometimes"}, nil, OptInhibitIPv4},
		{"advertise nmsgs 4", map[string]any{OptAdvertiseNMsgs: "4"}, nil, OptAdvertiseNMsgs + " must be in the range 0 to 3"},
		{"advertise nmsgs -1", map[string]any{OptAdvertiseNMsgs: "-1"}, nil, OptAdvertiseNMsgs + " must be in the range 0 to 3"},
		{"advertise nmsgs word", map[string]any{OptAdvertiseNMsgs: "three"}, nil, `value for option ` + OptAdvertiseNMsgs + ` "three" must be an integer`},
		{"advertise ms 99", map[string]any{OptAdvertiseMs: "99"}, nil, OptAdvertiseMs + " must be in the range 100 to 2000"},
		{"advertise ms 2001", map[string]any{OptAdvertiseMs: "2001"}, nil, OptAdvertiseMs + " must be in the range 100 to 2000"},
		{"advertise ms 1.5", map[string]any{OptAdvertiseMs: "1.5"}, nil, `value for option ` + OptAdvertiseMs + ` "1.5" must be integer milliseconds`},
		{"ipv4 off", map[string]any{}, func(r *network.CreateNetworkRequest) { r.Options[optEnableIPv4] = false }, "IPv4"},
		{"ipv6 data without ipv6", map[string]any{}, func(r *network.CreateNetworkRequest) {
			r.IPv6Data = []*network.IPAMData{{Pool: "fd00::/64", Gateway: "fd00::1/64"}}
		}, "--ipv6"},
		{"ipv6 bad gateway", map[string]any{}, func(r *network.CreateNetworkRequest) {
			r.Options[optEnableIPv6] = true
			r.IPv6Data = []*network.IPAMData{{Pool: "fd00::/64", Gateway: "fd01::1/64"}}
		}, "IPv6 gateway"},
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
	f.Add("--flush", "false", "0", "10.0.0.0/8", "10.0.0.1/8")
	f.Fuzz(func(t *testing.T, bridge, icc, mtu, pool, gw string) {
		cfg, err := parseNetworkConfig(createReq(map[string]any{OptBridgeName: bridge, OptEnableICC: icc, OptMTU: mtu}, pool, gw))
		if err != nil {
			return
		}
		if len(cfg.BridgeName) > 15 || strings.ContainsAny(cfg.BridgeName, " /:\"'!") || strings.HasPrefix(cfg.BridgeName, "-") ||
			!cfg.Subnet.Contains(cfg.Gateway.Addr()) {
			t.Errorf("accepted a config that cannot be built: %+v", cfg)
		}
	})
}

func TestGwAllocCheck(t *testing.T) {
	t.Parallel()
	d := &Driver{}
	tests := []struct {
		opts      map[string]any
		skip4     bool
		wantError bool
	}{
		{map[string]any{}, false, false},
		{map[string]any{optInternal: true, optGeneric: map[string]any{OptInhibitIPv4: "true"}}, true, false},
		{map[string]any{optGeneric: map[string]any{OptInhibitIPv4: "true"}}, false, false},
		{map[string]any{optGeneric: map[string]any{OptMTU: "abc"}}, false, true},
	}
	for _, tt := range tests {
		skip4, skip6, err := d.GwAllocCheck(tt.opts)
		if (err != nil) != tt.wantError || skip4 != tt.skip4 || skip6 {
			t.Errorf("GwAllocCheck(%v) = %v %v %v", tt.opts, skip4, skip6, err)
		}
	}
	// The network Docker then creates has no IPv4 gateway, and that is fine.
	req := createReq(map[string]any{OptInhibitIPv4: "true"}, "10.9.0.0/24", "")
	req.Options[optInternal] = true
	if cfg, err := parseNetworkConfig(req); err != nil || cfg.Gateway.IsValid() {
		t.Errorf("gateway-less internal network: %+v, %v", cfg, err)
	}
}
