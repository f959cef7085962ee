package driver

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/store"
)

// portmap builds the option dockerd sends, as decoded from JSON.
func portmap(bindings ...map[string]any) map[string]any {
	list := make([]any, len(bindings))
	for i, b := range bindings {
		list[i] = b
	}
	return map[string]any{optPortMap: list}
}

func binding(proto, hostIP string, port, hostPort, hostPortEnd float64) map[string]any {
	p := map[string]float64{"tcp": 6, "udp": 17, "sctp": 132}[proto]
	return map[string]any{"Proto": p, "IP": "", "Port": port, "HostIP": hostIP, "HostPort": hostPort, "HostPortEnd": hostPortEnd}
}

func publishedHarness(t *testing.T, st store.Store, generic map[string]any) *harness {
	t.Helper()
	h := newHarness(t, st)
	if err := h.d.CreateNetwork(createReq(generic, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", "")); err != nil {
		t.Fatal(err)
	}
	return h
}

func program(h *harness, opts map[string]any) error {
	return h.d.ProgramExternalConnectivity(&network.ProgramExternalConnectivityRequest{NetworkID: netID, EndpointID: epID, Options: opts})
}

func TestPublishAndRevoke(t *testing.T) {
	t.Parallel()
	h := publishedHarness(t, store.NewMemory(), map[string]any{})
	err := program(h, portmap(
		binding("tcp", "", 80, 8080, 8080),
		binding("udp", "127.0.0.1", 90, 9000, 9000),
		binding("tcp", "", 81, 0, 0), // -p 81: mynet picks
		binding("tcp", "", 82, 7000, 7005),
	))
	if err != nil {
		t.Fatal(err)
	}
	info, err := h.d.EndpointInfo(&network.InfoRequest{NetworkID: netID, EndpointID: epID})
	if err != nil {
		t.Fatal(err)
	}
	want := "0.0.0.0:8080->80/tcp, 127.0.0.1:9000->90/udp, 0.0.0.0:49153->81/tcp, 0.0.0.0:7000->82/tcp"
	if info.Value["ports"] != want {
		t.Errorf("ports = %q\nwant %q", info.Value["ports"], want)
	}
	fe := h.fw.endpoints[epID]
	if len(fe.Ports) != 4 || fe.Ports[0].ContainerIP.String() != "10.1.0.2" {
		t.Errorf("firewall endpoint = %+v", fe)
	}
	if h.ports.count() != 4 {
		t.Errorf("%d reservations, want 4", h.ports.count())
	}
	// Programming again replaces rather than adds.
	if err := program(h, portmap(binding("tcp", "", 80, 8080, 8080))); err != nil {
		t.Fatal(err)
	}
	if h.ports.count() != 1 || len(h.fw.endpoints[epID].Ports) != 1 {
		t.Errorf("after re-program: %d reservations, rules %+v", h.ports.count(), h.fw.endpoints[epID])
	}
	for range 2 {
		if err := h.d.RevokeExternalConnectivity(&network.RevokeExternalConnectivityRequest{NetworkID: netID, EndpointID: epID}); err != nil {
			t.Fatal(err)
		}
	}
	if h.ports.count() != 0 || len(h.fw.endpoints) != 0 {
		t.Errorf("after revoke: %d reservations, rules %v", h.ports.count(), h.fw.endpoints)
	}
}

func TestPublishConflictLeavesNothing(t *testing.T) {
	t.Parallel()
	h := publishedHarness(t, store.NewMemory(), map[string]any{})
	h.ports.taken[9090] = true
	err := program(h, portmap(binding("tcp", "", 80, 8080, 8080), binding("tcp", "", 90, 9090, 9090)))
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "port 90") {
		t.Fatalf("err = %v", err)
	}
	if h.ports.count() != 0 || len(h.fw.endpoints) != 0 {
		t.Errorf("a failed publish left %d reservations and rules %v", h.ports.count(), h.fw.endpoints)
	}
	// A failure to write the rules also releases the ports.
	h.fw.failSetEP = errors.New("iptables broke")
	if err := program(h, portmap(binding("tcp", "", 80, 8080, 8080))); err == nil {
		t.Fatal("publish succeeded although the rules failed")
	}
	if h.ports.count() != 0 {
		t.Errorf("%d reservations left", h.ports.count())
	}
}

func TestPublishOptionsAndModes(t *testing.T) {
	t.Parallel()
	// host_binding_ipv4 is the default host address.
	h := publishedHarness(t, store.NewMemory(), map[string]any{OptHostBinding: "127.0.0.1"})
	if err := program(h, portmap(binding("tcp", "", 80, 8080, 8080))); err != nil {
		t.Fatal(err)
	}
	if got := h.fw.endpoints[epID].Ports[0].HostIP.String(); got != "127.0.0.1" {
		t.Errorf("host IP = %s", got)
	}
	// Routed mode reserves no host port.
	h2 := publishedHarness(t, store.NewMemory(), map[string]any{OptGatewayMode4: "routed"})
	if err := program(h2, portmap(binding("tcp", "", 80, 8080, 8080))); err != nil {
		t.Fatal(err)
	}
	if h2.ports.count() != 0 || h2.fw.endpoints[epID].Ports[0].HostPort != 80 {
		t.Errorf("routed: %d reservations, %+v", h2.ports.count(), h2.fw.endpoints[epID])
	}
	// Bad bindings are refused.
	for _, bad := range []map[string]any{
		binding("tcp", "not-an-ip", 80, 1, 1),
		{"Proto": 1.0, "Port": 80.0, "HostPort": 1.0},
		binding("tcp", "", 80, 9000, 8000),
		binding("tcp", "fd00::1", 80, 9000, 9000), // no IPv6 address on the endpoint
	} {
		if err := program(h, portmap(bad)); !errdefs.IsInvalid(err) {
			t.Errorf("%v: err = %v", bad, err)
		}
	}
	if err := program(h, map[string]any{optPortMap: "garbage"}); !errdefs.IsInvalid(err) {
		t.Errorf("garbage portmap: err = %v", err)
	}
}

func TestPublishedPortsSurviveRestartAndDelete(t *testing.T) {
	t.Parallel()
	st, path := boltStore(t)
	h := publishedHarness(t, st, map[string]any{})
	if err := program(h, portmap(binding("tcp", "", 80, 8080, 8080))); err != nil {
		t.Fatal(err)
	}
	h2 := restarted(t, st, path)
	if h2.ports.count() != 1 || len(h2.fw.endpoints[epID].Ports) != 1 {
		t.Errorf("after restart: %d reservations, rules %v", h2.ports.count(), h2.fw.endpoints)
	}
	// DeleteEndpoint without a revoke still cleans up.
	if err := h2.d.DeleteEndpoint(&network.DeleteEndpointRequest{NetworkID: netID, EndpointID: epID}); err != nil {
		t.Fatal(err)
	}
	if h2.ports.count() != 0 || len(h2.fw.endpoints) != 0 {
		t.Errorf("after delete: %d reservations, rules %v", h2.ports.count(), h2.fw.endpoints)
	}
}

func TestInternalNetworkPublishesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	req := createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")
	req.Options[optInternal] = true
	if err := h.d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	if _, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", "")); err != nil {
		t.Fatal(err)
	}
	if err := program(h, portmap(binding("tcp", "", 80, 8080, 8080))); err != nil {
		t.Fatal(err)
	}
	if h.ports.count() != 0 || len(h.fw.endpoints) != 0 {
		t.Error("an internal network published a port")
	}
}

func FuzzParsePortMap(f *testing.F) {
	f.Add([]byte(`[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]`))
	f.Add([]byte(`[{"Proto":17,"Port":53,"HostIP":"::1","HostPort":0}]`))
	f.Add([]byte(`"x"`))
	cfg := defaultConfig(netID)
	ep := &Endpoint{Address: netip.MustParsePrefix("10.1.0.2/24"), AddressIPv6: netip.MustParsePrefix("fd00::2/64")}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return
		}
		reqs, err := parsePortMap(map[string]any{optPortMap: v}, cfg, ep)
		if err != nil {
			if !errdefs.IsInvalid(err) {
				t.Errorf("error of the wrong kind: %v", err)
			}
			return
		}
		for _, r := range reqs {
			if r.proto != "tcp" && r.proto != "udp" && r.proto != "sctp" || r.containerPort == 0 ||
				!r.containerIP.IsValid() || !r.hostIP.IsValid() || r.hostIP.Is4() != r.containerIP.Is4() || r.last < r.first {
				t.Errorf("accepted a binding that cannot be programmed: %+v", r)
			}
		}
	})
}

// On a routed network the published container ports open at Join, gateway
// endpoint or not (Engine 29 calls ProgramExternalConnectivity for the
// gateway only), stay through a Revoke and close at Leave; a NAT network's
// wait for ProgramExternalConnectivity and go at Revoke.
func TestRoutedPortsOpenFromJoinToLeave(t *testing.T) {
	t.Parallel()
	opts := portmap(binding("tcp", "", 80, 8080, 8080))
	join := func(h *harness) {
		t.Helper()
		if _, err := h.d.Join(&network.JoinRequest{NetworkID: netID, EndpointID: epID, Options: opts}); err != nil {
			t.Fatal(err)
		}
	}
	revoke := func(h *harness) {
		t.Helper()
		if err := h.d.RevokeExternalConnectivity(&network.RevokeExternalConnectivityRequest{NetworkID: netID, EndpointID: epID}); err != nil {
			t.Fatal(err)
		}
	}

	routed := publishedHarness(t, store.NewMemory(), map[string]any{OptGatewayMode4: GatewayRouted})
	join(routed)
	if got := routed.fw.endpoints[epID].Ports; len(got) != 1 || got[0].ContainerPort != 80 || got[0].HostPort != 80 || routed.ports.count() != 0 {
		t.Fatalf("routed network after Join: ports %+v, %d host ports reserved; want container port 80 open, none reserved", got, routed.ports.count())
	}
	revoke(routed)
	if got := routed.fw.endpoints[epID].Ports; len(got) != 1 {
		t.Errorf("routed network after Revoke: ports %+v, want them kept until Leave", got)
	}
	if err := routed.d.Leave(&network.LeaveRequest{NetworkID: netID, EndpointID: epID}); err != nil {
		t.Fatal(err)
	}
	if got := routed.fw.endpoints[epID].Ports; len(got) != 0 {
		t.Errorf("routed network after Leave: ports %+v, want none", got)
	}
	if ep, _, _ := routed.d.endpoint(netID, epID); len(ep.Ports) != 0 {
		t.Errorf("routed network after Leave: the record keeps ports %+v", ep.Ports)
	}

	nat := publishedHarness(t, store.NewMemory(), map[string]any{})
	join(nat)
	if got := nat.fw.endpoints[epID].Ports; len(got) != 0 {
		t.Errorf("NAT network after Join: ports %+v, want none before ProgramExternalConnectivity", got)
	}
	if err := program(nat, opts); err != nil {
		t.Fatal(err)
	}
	revoke(nat)
	if got := nat.fw.endpoints[epID].Ports; len(got) != 0 || nat.ports.count() != 0 {
		t.Errorf("NAT network after Revoke: ports %+v, %d reserved; want none", got, nat.ports.count())
	}
}
