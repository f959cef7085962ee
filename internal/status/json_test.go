package status

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"

	"github.com/mynet/mynet/driver"
)

// keys are a JSON object's keys, sorted.
func keys(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// mynet status --json is the report's own: its keys are these, whatever
// the driver saves (users' scripts read them).
func TestStatusJSONKeys(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddr("10.1.0.2")
	p := netip.MustParsePrefix("10.1.0.0/24")
	n := networkOf(driver.NetworkConfig{ID: "x", BridgeName: "b", UserBridge: true, Subnet: p, Gateway: p, MTU: 1400, TrustedIfaces: "eth0",
		NoIPv4: true, RandomMACs: true, Cluster: "blue", VNI: 7, VXLAN: "mnv"}, 1)
	want := []string{"bridge", "cluster", "container_prefix", "endpoints", "gateway", "gateway6", "gateway_mode4", "gateway_mode6", "host_binding",
		"icc", "id", "inhibit_ipv4", "internal", "masquerade", "mtu", "no_ipv4", "random_macs", "snat_source", "snat_source6", "subnet",
		"subnet6", "trusted_ifaces", "user_bridge", "vni", "vxlan"}
	if got := keys(t, n); !slices.Equal(got, want) {
		t.Errorf("network keys %v\nwant %v", got, want)
	}
	e := endpointOf(driver.Endpoint{ID: "e", Ports: []driver.PortMapping{{Proto: "tcp", HostIP: a, HostPort: 80, ContainerIP: a, ContainerPort: 80}},
		IfName: "eth0", Name: "web", Aliases: []string{"api"}, Sandbox: "/x"})
	want = []string{"address", "address6", "aliases", "host_veth", "id", "ifname", "mac", "mac_from_docker", "name", "network_id", "peer_veth",
		"ports", "ports_text", "sandbox"}
	if got := keys(t, e); !slices.Equal(got, want) {
		t.Errorf("endpoint keys %v\nwant %v", got, want)
	}
	if got := keys(t, e.Ports[0]); !slices.Equal(got, []string{"container_ip", "container_port", "host_ip", "host_port", "proto"}) {
		t.Errorf("port keys %v", got)
	}
	peers := PeersOf([]driver.Peer{{Node: "h", IP: a, MAC: "m", VTEP: a, Name: "n", Aliases: []string{"x"}}})
	if got := keys(t, peers[0]); !slices.Equal(got, []string{"aliases", "ip", "mac", "name", "node", "vtep"}) {
		t.Errorf("peer keys %v", got)
	}
}
