package driver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/store"
)

type harness struct {
	d      *Driver
	links  *fakeLinks
	fw     *fakeFirewall
	ports  *fakePorts
	st     store.Store
	sysctl map[string]string
}

func newHarness(t *testing.T, st store.Store) *harness {
	t.Helper()
	h := &harness{links: newFakeLinks(), fw: newFakeFirewall(), ports: newFakePorts(), st: st, sysctl: map[string]string{}}
	var mu sync.Mutex
	d, err := New(Config{Store: st, Links: h.links, Firewall: h.fw, Ports: h.ports, EnsureSysctl: func(n, v string) error {
		mu.Lock()
		defer mu.Unlock()
		h.sysctl[n] = v
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	return h
}

// boltStore opens a store in the test's directory, at the path restarted
// opens it again.
func boltStore(t *testing.T) (*store.Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	return st, path
}

// restarted closes the store at path as a dying daemon would and starts a
// driver on it again, over a fresh kernel (as after a reboot), restored.
func restarted(t *testing.T, st *store.Bolt, path string) *harness {
	t.Helper()
	st.Close()
	st2, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	h := newHarness(t, st2)
	if _, err := h.d.Restore(); err != nil {
		t.Fatal(err)
	}
	return h
}

func endpointReq(ep, addr, mac string) *network.CreateEndpointRequest {
	return &network.CreateEndpointRequest{NetworkID: netID, EndpointID: ep, Interface: &network.EndpointInterface{Address: addr, MacAddress: mac}}
}

func TestNetworkAndEndpointLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	if err := h.d.CreateNetwork(createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if h.links.links["mn-0123456789ab"] != "bridge" || h.fw.networks[netID].Bridge != "mn-0123456789ab" || h.sysctl["net/ipv4/ip_forward"] != "1" {
		t.Fatalf("after create: links=%v fw=%v sysctl=%v", h.links.links, h.fw.networks, h.sysctl)
	}
	res, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", ""))
	if err != nil {
		t.Fatal(err)
	}
	if res.Interface == nil || res.Interface.MacAddress != "02:42:0a:01:00:02" || res.Interface.Address != "" {
		t.Errorf("CreateEndpoint response = %+v, want only the generated MAC", res.Interface)
	}
	if h.links.links["mnhfedcba987654"] != "veth" || h.links.links["mncfedcba987654"] != "veth" {
		t.Errorf("veths = %v", h.links.links)
	}
	join, err := h.d.Join(&network.JoinRequest{NetworkID: netID, EndpointID: epID, SandboxKey: "/var/run/docker/netns/x"})
	if err != nil {
		t.Fatal(err)
	}
	if join.InterfaceName.SrcName != "mncfedcba987654" || join.InterfaceName.DstPrefix != "eth" || join.Gateway != "10.1.0.1" {
		t.Errorf("Join = %+v", join)
	}
	info, err := h.d.EndpointInfo(&network.InfoRequest{NetworkID: netID, EndpointID: epID})
	if err != nil || info.Value["mac"] != "02:42:0a:01:00:02" || info.Value["ipv4"] != "10.1.0.2/24" {
		t.Errorf("EndpointInfo = %+v, %v", info, err)
	}
	if err := h.d.Leave(&network.LeaveRequest{NetworkID: netID, EndpointID: epID}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second delete finds nothing and succeeds
		if err := h.d.DeleteEndpoint(&network.DeleteEndpointRequest{NetworkID: netID, EndpointID: epID}); err != nil {
			t.Fatal(err)
		}
	}
	h.d.Close() // wait for the background deletions
	if h.links.count() != 1 {
		t.Errorf("links after DeleteEndpoint = %v", h.links.links)
	}
	for range 2 {
		if err := h.d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
			t.Fatal(err)
		}
	}
	h.d.Close() // wait for the background deletions
	if h.links.count() != 0 || len(h.fw.networks) != 0 {
		t.Errorf("left behind: links=%v fw=%v", h.links.links, h.fw.networks)
	}
	_ = h.st.View(func(tx store.Tx) error {
		n := 0
		_ = tx.ForEach(bucketNetworks, func(string, []byte) error { n++; return nil })
		_ = tx.ForEach(bucketEndpoints, func(string, []byte) error { n++; return nil })
		if n != 0 {
			t.Errorf("%d records left in the store", n)
		}
		return nil
	})
}

func TestDockerMACIsKeptAndNotReturned(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	if err := h.d.CreateNetwork(createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	res, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.9/24", "02:aa:bb:cc:dd:ee"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Interface != nil {
		t.Errorf("response sets fields Docker gave: %+v", res.Interface)
	}
	// A repeated call answers the same and creates nothing new.
	res2, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.9/24", "02:aa:bb:cc:dd:ee"))
	if err != nil || res2.Interface != nil {
		t.Errorf("repeat = %+v, %v", res2, err)
	}
	if _, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.10/24", "")); !errdefs.IsConflict(err) {
		t.Errorf("same endpoint ID, other address: err = %v", err)
	}
}

func TestCreateNetworkConflicts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	if err := h.d.CreateNetwork(createReq(map[string]any{OptBridgeName: "br-a"}, "10.1.0.0/16", "10.1.0.1/16")); err != nil {
		t.Fatal(err)
	}
	// The same request again succeeds (dockerd may retry).
	if err := h.d.CreateNetwork(createReq(map[string]any{OptBridgeName: "br-a"}, "10.1.0.0/16", "10.1.0.1/16")); err != nil {
		t.Errorf("repeated CreateNetwork: %v", err)
	}
	other := func(generic map[string]any, pool, gw string) *network.CreateNetworkRequest {
		r := createReq(generic, pool, gw)
		r.NetworkID = strings.Repeat("b", 64)
		return r
	}
	tests := []struct {
		name string
		req  *network.CreateNetworkRequest
		want string
	}{
		{"overlapping subnet", other(map[string]any{}, "10.1.2.0/24", "10.1.2.1/24"), "overlaps"},
		{"same bridge", other(map[string]any{OptBridgeName: "br-a"}, "10.2.0.0/24", "10.2.0.1/24"), "already used"},
		{"same ID, other config", createReq(map[string]any{}, "10.3.0.0/24", "10.3.0.1/24"), "already exists"},
	}
	for _, tt := range tests {
		err := h.d.CreateNetwork(tt.req)
		if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
	if len(h.d.Networks()) != 1 || h.links.count() != 1 {
		t.Errorf("conflicts changed state: %d networks, links %v", len(h.d.Networks()), h.links.links)
	}
}

func TestFailedCreateNetworkLeavesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	h.fw.failAdd = errors.New("iptables exploded")
	err := h.d.CreateNetwork(createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24"))
	if err == nil || !strings.Contains(err.Error(), "iptables exploded") {
		t.Fatalf("err = %v", err)
	}
	if h.links.count() != 0 || len(h.d.Networks()) != 0 {
		t.Errorf("left behind: links=%v networks=%v", h.links.links, h.d.Networks())
	}
	// An adopted bridge is handed back without our address.
	h.links.links["userbr"] = "bridge"
	err = h.d.CreateNetwork(createReq(map[string]any{OptBridgeName: "userbr"}, "10.1.0.0/24", "10.1.0.1/24"))
	if err == nil {
		t.Fatal("expected failure")
	}
	if h.links.links["userbr"] != "bridge" || len(h.links.addrs["userbr"]) != 0 {
		t.Errorf("adopted bridge after failure: kind=%q addrs=%v", h.links.links["userbr"], h.links.addrs["userbr"])
	}
	// A user-named link that is not a bridge is refused before anything happens.
	h.fw.failAdd = nil
	h.links.links["notbr"] = "veth"
	err = h.d.CreateNetwork(createReq(map[string]any{OptBridgeName: "notbr"}, "10.1.0.0/24", "10.1.0.1/24"))
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), OptBridgeName) {
		t.Errorf("non-bridge link: err = %v", err)
	}
}

func TestUserBridgeIsKeptOnDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	h.links.links["userbr"] = "bridge"
	if err := h.d.CreateNetwork(createReq(map[string]any{OptBridgeName: "userbr"}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := h.d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
		t.Fatal(err)
	}
	h.d.Close() // wait for the background deletions
	if h.links.links["userbr"] != "bridge" || len(h.links.addrs["userbr"]) != 0 {
		t.Errorf("user bridge after delete: kind=%q addrs=%v", h.links.links["userbr"], h.links.addrs["userbr"])
	}
}

func TestEndpointErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	if err := h.d.CreateNetwork(createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	unknownNet := endpointReq(epID, "10.1.0.2/24", "")
	unknownNet.NetworkID = strings.Repeat("c", 64)
	tests := []struct {
		name string
		req  *network.CreateEndpointRequest
		kind func(error) bool
	}{
		{"unknown network", unknownNet, errdefs.IsNotFound},
		{"no interface", &network.CreateEndpointRequest{NetworkID: netID, EndpointID: epID}, errdefs.IsInvalid},
		{"address outside subnet", endpointReq(epID, "10.2.0.2/24", ""), errdefs.IsInvalid},
		{"bad address", endpointReq(epID, "nonsense", ""), errdefs.IsInvalid},
		{"bad mac", endpointReq(epID, "10.1.0.2/24", "zz:zz"), errdefs.IsInvalid},
		{"bad endpoint id", endpointReq("x y", "10.1.0.2/24", ""), errdefs.IsInvalid},
	}
	for _, tt := range tests {
		if _, err := h.d.CreateEndpoint(tt.req); !tt.kind(err) {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
	if _, err := h.d.Join(&network.JoinRequest{NetworkID: netID, EndpointID: epID}); !errdefs.IsNotFound(err) {
		t.Errorf("Join unknown endpoint: %v", err)
	}
	if _, err := h.d.EndpointInfo(&network.InfoRequest{NetworkID: netID, EndpointID: epID}); !errdefs.IsNotFound(err) {
		t.Errorf("EndpointInfo unknown endpoint: %v", err)
	}
	h.links.failOn["AddVeth"] = errors.New("no veth today")
	if _, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", "")); err == nil {
		t.Error("CreateEndpoint succeeded although the veth failed")
	}
	if len(h.d.Endpoints()) != 0 {
		t.Errorf("failed CreateEndpoint left a record")
	}
	// The record is written while the veth is made: a failed veth takes
	// the written record back out of the store too.
	if err := h.st.View(func(tx store.Tx) error {
		if _, err := tx.Get(bucketEndpoints, epID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("failed CreateEndpoint left a stored record (Get: %v)", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A crash between the endpoint's record and its veth (they are made at
// once) leaves a record without a veth: dockerd's retry of the same
// CreateEndpoint makes the veth, and is answered as the first was.
func TestEndpointRecordedWithoutVethIsMadeOnRetry(t *testing.T) {
	t.Parallel()
	st, path := boltStore(t)
	h := newHarness(t, st)
	if err := h.d.CreateNetwork(createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	first, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", ""))
	if err != nil {
		t.Fatal(err)
	}
	// The record survives; the kernel (a fresh fake one) has no veth.
	h2 := restarted(t, st, path)
	ep := h2.d.Endpoints()
	if len(ep) != 1 || h2.links.links[ep[0].HostVeth] != "" {
		t.Fatalf("after restart: endpoints %+v, links %v", ep, h2.links.links)
	}
	again, err := h2.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", ""))
	if err != nil {
		t.Fatalf("retried CreateEndpoint: %v", err)
	}
	if h2.links.links[ep[0].HostVeth] != "veth" {
		t.Errorf("retried CreateEndpoint did not make the veth: links %v", h2.links.links)
	}
	if again.Interface.MacAddress != first.Interface.MacAddress {
		t.Errorf("retry answered MAC %q, the first %q", again.Interface.MacAddress, first.Interface.MacAddress)
	}
	// And a third time it is there: answered, nothing made again.
	if _, err := h2.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", "")); err != nil {
		t.Errorf("CreateEndpoint of an endpoint with its veth: %v", err)
	}
}

func TestInternalNetworkHasNoGatewayAndNoForwarding(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	req := createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")
	req.Options[optInternal] = true
	if err := h.d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.sysctl["net/ipv4/ip_forward"]; ok {
		t.Error("internal network turned on forwarding")
	}
	if !h.fw.networks[netID].Internal {
		t.Error("firewall not told the network is internal")
	}
	if _, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", "")); err != nil {
		t.Fatal(err)
	}
	join, err := h.d.Join(&network.JoinRequest{NetworkID: netID, EndpointID: epID})
	if err != nil || join.Gateway != "" {
		t.Errorf("Join = %+v, %v; want no gateway", join, err)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	st, path := boltStore(t)
	h := newHarness(t, st)
	if err := h.d.CreateNetwork(createReq(map[string]any{OptMTU: "1400"}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", "")); err != nil {
		t.Fatal(err)
	}
	h2 := restarted(t, st, path)
	if h2.links.links["mn-0123456789ab"] != "bridge" || h2.fw.networks[netID].Bridge == "" || !h2.fw.base {
		t.Errorf("restore did not rebuild the network: links=%v fw=%v", h2.links.links, h2.fw.networks)
	}
	join, err := h2.d.Join(&network.JoinRequest{NetworkID: netID, EndpointID: epID})
	if err != nil || join.Gateway != "10.1.0.1" {
		t.Errorf("Join after restart = %+v, %v", join, err)
	}
	if err := h2.d.CreateNetwork(createReq(map[string]any{OptMTU: "1400"}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Errorf("repeated create after restart: %v", err)
	}
}

func TestConcurrentEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	if err := h.d.CreateNetwork(createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("%012x%052d", i, 0)
			if _, err := h.d.CreateEndpoint(endpointReq(id, fmt.Sprintf("10.1.0.%d/24", i+2), "")); err != nil {
				errs <- err
				return
			}
			if _, err := h.d.Join(&network.JoinRequest{NetworkID: netID, EndpointID: id}); err != nil {
				errs <- err
			}
			if err := h.d.DeleteEndpoint(&network.DeleteEndpointRequest{NetworkID: netID, EndpointID: id}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.d.Close() // wait for the background deletions
	if len(h.d.Endpoints()) != 0 || h.links.count() != 1 {
		t.Errorf("left: %d endpoints, links %v", len(h.d.Endpoints()), h.links.links)
	}
}

// enable_icc=false needs the bridge to hand its traffic to iptables; ICC on
// does not touch the setting. Both the create and the rebuild by Reconcile
// (one bridge setup) make the same decision.
func TestICCOffSetsBridgeNetfilter(t *testing.T) {
	t.Parallel()
	for _, icc := range []string{"true", "false"} {
		h := newHarness(t, store.NewMemory())
		if err := h.d.CreateNetwork(createReq(map[string]any{OptEnableICC: icc}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
			t.Fatal(err)
		}
		want := icc == "false"
		if got := h.links.settings["mn-0123456789ab/nf_call_iptables"]; got != want {
			t.Errorf("icc=%s: bridge netfilter set = %v, want %v", icc, got, want)
		}
		if !h.links.settings["mn-0123456789ab/route_localnet"] {
			t.Errorf("icc=%s: route_localnet not set on the bridge", icc)
		}
		// The bridge is deleted by hand; Reconcile rebuilds it the same way.
		if err := h.links.DeleteLink("mn-0123456789ab"); err != nil {
			t.Fatal(err)
		}
		h.links.settings = nil
		rep, err := h.d.Reconcile()
		if err != nil || len(rep.BridgesRestored) != 1 {
			t.Fatalf("icc=%s: Reconcile = %+v, %v", icc, rep, err)
		}
		if got := h.links.settings["mn-0123456789ab/nf_call_iptables"]; got != want {
			t.Errorf("icc=%s: after the rebuild, bridge netfilter set = %v, want %v", icc, got, want)
		}
	}
}

// IPv6-only networks (EnableIPv4: false, Engine 28 and later): no IPv4
// anywhere, an IPv6 gateway on the bridge and in Join, a random MAC, and
// ports published on IPv6 only.
func TestIPv6OnlyNetwork(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	req := &network.CreateNetworkRequest{NetworkID: netID,
		Options:  map[string]any{optGeneric: map[string]any{}, optEnableIPv4: false, optEnableIPv6: true},
		IPv6Data: []*network.IPAMData{{AddressSpace: "LocalDefault", Pool: "fd00:6::/64", Gateway: "fd00:6::1/64"}}}
	if err := h.d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	n := h.fw.networks[netID]
	if n.Subnet.IsValid() || n.Subnet6.String() != "fd00:6::/64" {
		t.Errorf("firewall network %+v, want IPv6 only", n)
	}
	if got := h.links.addrs["mn-0123456789ab"]; len(got) != 1 || !got[netip.MustParsePrefix("fd00:6::1/64")] {
		t.Errorf("bridge addresses %v, want the IPv6 gateway only", got)
	}
	if _, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", "")); err == nil {
		t.Error("an IPv4 endpoint address was accepted on an IPv6-only network")
	}
	res, err := h.d.CreateEndpoint(&network.CreateEndpointRequest{NetworkID: netID, EndpointID: epID,
		Interface: &network.EndpointInterface{AddressIPv6: "fd00:6::2/64"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Interface == nil || res.Interface.MacAddress == "" {
		t.Errorf("no MAC in %+v", res)
	}
	j, err := h.d.Join(&network.JoinRequest{NetworkID: netID, EndpointID: epID, SandboxKey: "/x"})
	if err != nil || j.Gateway != "" || j.GatewayIPv6 != "fd00:6::1" {
		t.Errorf("Join = %+v, %v; want only the IPv6 gateway", j, err)
	}
	if err := program(h, portmap(binding("tcp", "", 80, 8080, 8080))); err != nil {
		t.Fatal(err)
	}
	ports := h.fw.endpoints[epID].Ports
	if len(ports) != 1 || !ports[0].ContainerIP.Is6() {
		t.Errorf("published %+v, want one IPv6 binding", ports)
	}
	if err := program(h, portmap(binding("tcp", "192.0.2.1", 80, 8081, 8081))); err == nil || !strings.Contains(err.Error(), "no IPv4 address") {
		t.Errorf("an IPv4 host address on an IPv6-only container: %v", err)
	}
	// Without IPv6 it is refused: a network needs one family.
	bad := &network.CreateNetworkRequest{NetworkID: "aaaaaaaaaaaa" + netID[12:], Options: map[string]any{optEnableIPv4: false}}
	if err := h.d.CreateNetwork(bad); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "IPv6") {
		t.Errorf("no IPv4 and no IPv6: %v", err)
	}
}

// com.docker.network.endpoint.ifname becomes Join's DstName, kept across a
// restart; a bad name is refused by CreateEndpoint before any veth exists.
func TestEndpointIfName(t *testing.T) {
	t.Parallel()
	st, path := boltStore(t)
	h := newHarness(t, st)
	if err := h.d.CreateNetwork(createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []any{"", "-eth2", "eth 2", "averyveryverylongname", "eth2/x", 7} {
		req := endpointReq(epID, "10.1.0.2/24", "")
		req.Options = map[string]any{OptEndpointIfName: bad}
		if _, err := h.d.CreateEndpoint(req); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), OptEndpointIfName) {
			t.Errorf("ifname %#v: err = %v, want an invalid-option error naming the option", bad, err)
		}
		if n := h.links.count(); n != 1 {
			t.Fatalf("ifname %#v: %d links after the refusal, want the bridge alone: %v", bad, n, h.links.links)
		}
	}
	req := endpointReq(epID, "10.1.0.2/24", "")
	req.Options = map[string]any{OptEndpointIfName: "eth2"}
	if _, err := h.d.CreateEndpoint(req); err != nil {
		t.Fatal(err)
	}
	// The same request again is the same endpoint; another name is not.
	if _, err := h.d.CreateEndpoint(req); err != nil {
		t.Errorf("repeated CreateEndpoint: %v", err)
	}
	other := endpointReq(epID, "10.1.0.2/24", "")
	other.Options = map[string]any{OptEndpointIfName: "eth3"}
	if _, err := h.d.CreateEndpoint(other); !errdefs.IsConflict(err) {
		t.Errorf("CreateEndpoint with another ifname: %v, want a conflict", err)
	}
	h = restarted(t, st, path)
	join, err := h.d.Join(&network.JoinRequest{NetworkID: netID, EndpointID: epID})
	if err != nil {
		t.Fatal(err)
	}
	if got := join.InterfaceName; got.DstName != "eth2" || got.DstPrefix != "eth" || got.SrcName != "mncfedcba987654" {
		t.Errorf("Join's InterfaceName after a restart = %+v, want DstName eth2 beside the prefix", got)
	}
}

// On a network an Engine 28 or later created (it sends enable_ipv4), an
// endpoint without a MAC from Docker gets a random one, a new one each time
// the address is used again; an older engine's network derives it from the
// address, as that engine's bridge does.
func TestEndpointMACFollowsTheEngine(t *testing.T) {
	t.Parallel()
	macs := func(engine28 bool) []string {
		h := newHarness(t, store.NewMemory())
		req := createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")
		if engine28 {
			req.Options[optEnableIPv4] = true
		}
		if err := h.d.CreateNetwork(req); err != nil {
			t.Fatal(err)
		}
		var out []string
		for range 2 {
			res, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", ""))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, res.Interface.MacAddress)
			if err := h.d.DeleteEndpoint(&network.DeleteEndpointRequest{NetworkID: netID, EndpointID: epID}); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	if got := macs(false); got[0] != "02:42:0a:01:00:02" || got[1] != got[0] {
		t.Errorf("20.10's network: MACs %v, want 02:42:0a:01:00:02 twice", got)
	}
	got := macs(true)
	if got[0] == got[1] || got[0] == "02:42:0a:01:00:02" {
		t.Errorf("Engine 28+'s network: MACs %v, want two different random ones", got)
	}
	for _, m := range got {
		if hw, err := net.ParseMAC(m); err != nil || hw[0]&1 != 0 || hw[0]&2 == 0 {
			t.Errorf("MAC %s is not a unicast, locally administered address", m)
		}
	}
}

// -o encrypted: on (no value, as the docker CLI sends it), and refused on
// a local network, before anything is made.
func TestEncryptedOptionIsForClusterNetworks(t *testing.T) {
	t.Parallel()
	cfg, err := parseNetworkConfig(createReq(map[string]any{OptEncrypted: ""}, "10.1.0.0/24", "10.1.0.1/24"))
	if err != nil || !cfg.Encrypted {
		t.Fatalf("-o encrypted: %+v, %v", cfg, err)
	}
	if cfg, err := parseNetworkConfig(createReq(map[string]any{OptEncrypted: "false"}, "10.1.0.0/24", "10.1.0.1/24")); err != nil || cfg.Encrypted {
		t.Errorf("-o encrypted=false: %+v, %v", cfg, err)
	}
	h := newHarness(t, store.NewMemory())
	err = h.d.CreateNetwork(createReq(map[string]any{OptEncrypted: ""}, "10.1.0.0/24", "10.1.0.1/24"))
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "only cluster networks are encrypted") {
		t.Errorf("an encrypted local network: %v", err)
	}
	if len(h.links.links) != 0 || len(h.d.Networks()) != 0 {
		t.Errorf("left behind: links=%v networks=%v", h.links.links, h.d.Networks())
	}
}
