package driver

import (
	"net/netip"
	"slices"
	"testing"
)

// A container's names as Docker gives them on its host (a rename, its
// aliases) reach the other hosts' name index, with name.network.
func TestEndpointNamesReachOtherHosts(t *testing.T) {
	t.Parallel()
	h, _ := newClusterHosts(t, 2)
	for _, x := range h {
		if err := x.d.CreateNetwork(createReq(map[string]any{}, "10.40.0.0/16", "10.40.0.1/16")); err != nil {
			t.Fatal(err)
		}
	}
	h[0].createEndpoint(t, epID, "10.40.0.10/16")
	resolves := func(name string) bool {
		addrs, _ := h[1].d.ResolveName([]string{netID}, name)
		return len(addrs) == 1 && addrs[0] == netip.MustParseAddr("10.40.0.10")
	}
	if err := h[0].d.SetEndpointNames(epID, "web", []string{"API", "web", "bad name", "db.local"}); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "host2 answers web, api and db.local", func() bool { return resolves("web") && resolves("api") && resolves("db.local") })
	if addrs, local := h[0].d.ResolveName([]string{netID}, "api"); !local || len(addrs) != 0 {
		t.Errorf("host1's own alias: %v %v, want Docker's to answer", addrs, local)
	}
	// docker rename web web2
	if err := h[0].d.SetEndpointNames(epID, "web2", []string{"api"}); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "host2 follows the rename", func() bool { return resolves("web2") && !resolves("web") && !resolves("db.local") && resolves("api") })
	h[1].d.SetNetworkNames(map[string]string{netID: "ov_net1"})
	if !resolves("web2.ov_net1") || resolves("web2.other") {
		t.Error("name.network is not answered as Docker does")
	}
	// The local record keeps the names across a restart.
	ep, _, err := h[0].d.endpoint(netID, epID)
	if err != nil || ep.Name != "web2" || !slices.Equal(ep.Aliases, []string{"api"}) {
		t.Errorf("saved endpoint %+v %v", ep, err)
	}
}
