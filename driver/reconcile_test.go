package driver

import (
	"slices"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/mynet/mynet/internal/store"
)

// A create and a delete that crashed midway leave records in "creating"
// and "deleting"; Restore tears both down.
func TestRestoreFinishesInterruptedCalls(t *testing.T) {
	t.Parallel()
	st := store.NewMemory()
	h := newHarness(t, st)
	if err := h.d.CreateNetwork(createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	other := createReq(map[string]any{OptBridgeName: "userbr"}, "10.2.0.0/24", "10.2.0.1/24")
	other.NetworkID = strings.Repeat("b", 64)
	h.links.links["userbr"] = "bridge" // the user's own bridge
	if err := h.d.CreateNetwork(other); err != nil {
		t.Fatal(err)
	}
	// Simulate the crashes by rewriting the phases in the store.
	for id, phase := range map[string]string{netID: phaseCreating, other.NetworkID: phaseDeleting} {
		n := *h.d.networks[id]
		n.Phase = phase
		if err := h.d.putNetwork(&n); err != nil {
			t.Fatal(err)
		}
	}
	h2 := &harness{links: h.links, fw: h.fw, ports: h.ports, st: st, sysctl: map[string]string{}}
	d2, err := New(Config{Store: st, Links: h.links, Firewall: h.fw, Ports: h.ports, EnsureSysctl: func(string, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	h2.d = d2
	rep, err := d2.Restore()
	if err != nil {
		t.Fatal(err)
	}
	d2.Close() // wait for the background deletions
	if len(rep.InterruptedCalls) != 2 || len(d2.Networks()) != 0 {
		t.Errorf("report %+v, networks left %v", rep, d2.Networks())
	}
	if _, ok := h.links.links["mn-0123456789ab"]; ok {
		t.Error("the bridge of the interrupted create survived")
	}
	if h.links.links["userbr"] != "bridge" || len(h.links.addrs["userbr"]) != 0 {
		t.Errorf("the user's bridge: kind %q addrs %v", h.links.links["userbr"], h.links.addrs["userbr"])
	}
	if len(h.fw.networks) != 0 {
		t.Errorf("rules left: %v", h.fw.networks)
	}
}

func TestReconcileRemovesOrphansAndReportsStaleEndpoints(t *testing.T) {
	t.Parallel()
	h := publishedHarness(t, store.NewMemory(), map[string]any{})
	// Leftovers a crash could leave: a veth pair and a bridge named like
	// mynet's, no record claiming them; and links that are not mynet's.
	h.links.links["mnh999999999999"] = "veth"
	h.links.links["mnc999999999999"] = "veth"
	h.links.links["mn-999999999999"] = "bridge"
	h.links.links["mnhx"] = "veth"      // not our pattern
	h.links.links["docker0"] = "bridge" // not ours
	rep, err := h.d.Reconcile()
	if err != nil {
		t.Fatal(err)
	}
	h.d.Close()
	slices.Sort(rep.OrphanLinksRemove)
	if want := []string{"mn-999999999999", "mnc999999999999", "mnh999999999999"}; !slices.Equal(rep.OrphanLinksRemove, want) {
		t.Errorf("orphans removed = %v, want %v", rep.OrphanLinksRemove, want)
	}
	for _, keep := range []string{"mnhx", "docker0", "mn-0123456789ab", "mnhfedcba987654"} {
		if _, ok := h.links.links[keep]; !ok {
			t.Errorf("%s was removed", keep)
		}
	}
	// The endpoint's veth vanishes (its container's namespace went): the
	// endpoint is reported stale, and kept until Docker deletes it.
	delete(h.links.links, "mnhfedcba987654")
	delete(h.links.links, "mncfedcba987654")
	rep, err = h.d.Reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.StaleEndpoints, []string{epID[:12]}) || len(h.d.Endpoints()) != 1 {
		t.Errorf("stale = %v, endpoints %d", rep.StaleEndpoints, len(h.d.Endpoints()))
	}
	// The bridge is deleted by hand: reconcile brings it back.
	delete(h.links.links, "mn-0123456789ab")
	rep, err = h.d.Reconcile()
	if err != nil || !slices.Equal(rep.BridgesRestored, []string{"mn-0123456789ab"}) || h.links.links["mn-0123456789ab"] != "bridge" {
		t.Errorf("bridge not restored: %+v, %v", rep, err)
	}
	// Its containers hear the gateway is at the new bridge's MAC.
	h.links.mu.Lock()
	announced := slices.Clone(h.links.announced)
	h.links.mu.Unlock()
	if !slices.Contains(announced, "10.1.0.1@mn-0123456789ab") {
		t.Errorf("the rebuilt bridge's gateway was not announced: %v", announced)
	}
}

func TestCreateEndpointReplacesLeftoverOfACrashedAttempt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.NewMemory())
	if err := h.d.CreateNetwork(createReq(map[string]any{}, "10.1.0.0/24", "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	// The first attempt created the veth and crashed before saving.
	h.links.links["mnhfedcba987654"], h.links.links["mncfedcba987654"] = "veth", "veth"
	h.links.peers["mnhfedcba987654"], h.links.peers["mncfedcba987654"] = "mncfedcba987654", "mnhfedcba987654"
	if _, err := h.d.CreateEndpoint(endpointReq(epID, "10.1.0.2/24", "")); err != nil {
		t.Fatalf("retry after a crash: %v", err)
	}
	if _, err := h.d.Join(&network.JoinRequest{NetworkID: netID, EndpointID: epID}); err != nil {
		t.Fatal(err)
	}
}

// Every kind of repair reaches Changed, Repairs (health's count, the
// metrics) and the log's summary; stale endpoints are reported, not a
// repair.
func TestReportKindsAreAllCounted(t *testing.T) {
	t.Parallel()
	r := Report{InterruptedCalls: []string{"a"}, BridgesRestored: []string{"b"}, VethsReattached: []string{"c"},
		OrphanLinksRemove: []string{"d"}, PeersReprogrammed: []string{"e"}}
	r.Firewall.BaseFixed, r.Firewall.Reapplied, r.Firewall.OrphansFound = true, []string{"f"}, []string{"g"}
	rep := r.Repairs()
	for _, kind := range []string{"interrupted_call", "bridge_restored", "veth_reattached", "orphan_link", "peer_reprogrammed",
		"iptables_base", "iptables_rules", "iptables_orphan"} {
		if rep[kind] != 1 {
			t.Errorf("Repairs()[%s] = %d, want 1 (%v)", kind, rep[kind], rep)
		}
	}
	if len(rep) != 8 {
		t.Errorf("Repairs() has %d kinds, want 8: %v", len(rep), rep)
	}
	if s := r.summary(); !strings.Contains(s, "peers reprogrammed: e") || !strings.Contains(s, "iptables chains and jumps reinstalled") {
		t.Errorf("summary %q", s)
	}
	for _, one := range []Report{{PeersReprogrammed: []string{"x"}}, {VethsReattached: []string{"x"}}} {
		if !one.Changed() {
			t.Errorf("%+v: Changed() = false", one)
		}
	}
	if (Report{StaleEndpoints: []string{"x"}}).Changed() {
		t.Error("a stale endpoint alone counted as a repair")
	}
}
