package firewall

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/nstest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) { nstest.Main(m) }

// dumpRules returns iptables-save and ip6tables-save of this test's namespace
// without the timestamp comments: the complete state to compare with a
// golden file.
func dumpRules(t *testing.T) string {
	t.Helper()
	var keep []string
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(cmd).Output()
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		keep = append(keep, "# "+cmd)
		for _, l := range strings.Split(string(out), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				keep = append(keep, l)
			}
		}
	}
	return strings.Join(keep, "\n") + "\n"
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("ruleset differs from %s\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func ipt(t *testing.T, cmd string, args ...string) {
	t.Helper()
	if out, err := exec.Command(cmd, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", cmd, args, err, out)
	}
}

// reset removes everything from the namespace's tables.
func reset(t *testing.T) {
	t.Helper()
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, table := range baseTables {
			ipt(t, cmd, "-t", table, "-F")
			ipt(t, cmd, "-t", table, "-X")
		}
	}
}

func newReal(t *testing.T) *Firewall {
	t.Helper()
	f, _ := newRealObserved(t)
	return f
}

// newRealObserved also returns the log of batches the firewall ran.
func newRealObserved(t *testing.T) (*Firewall, *batchLog) {
	t.Helper()
	nstest.Require(t)
	reset(t)
	t.Cleanup(func() { reset(t) })
	runs := &batchLog{}
	f, err := New(Config{Observe: runs.observe})
	if err != nil {
		t.Fatal(err)
	}
	if !f.HasIPv6() {
		t.Fatal("no ip6tables in the test namespace")
	}
	if _, err := f.Reconcile(nil); err != nil { // puts the base in place
		t.Fatal(err)
	}
	return f, runs
}

// batchLog records what Config.Observe is told.
type batchLog struct {
	mu   sync.Mutex
	runs []string // "IPv4 save", ...
}

func (b *batchLog) observe(family, op string, took time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if took <= 0 {
		op += " (no duration)"
	}
	b.runs = append(b.runs, family+" "+op)
}

func (b *batchLog) count(run string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, r := range b.runs {
		if r == run {
			n++
		}
	}
	return n
}

// TestCheckAndObservedBatches: Check reads the chains through go-iptables,
// and every save and restore is timed for the metrics.
func TestKernelCheckAndObservedBatches(t *testing.T) {
	f, runs := newRealObserved(t)
	h, err := f.Check()
	if err != nil {
		t.Fatal(err)
	}
	if !h.BaseInstalled || !h.IPv6 || h.Version == "" || h.Version == "0.0.0" {
		t.Errorf("Check after the first Reconcile = %+v, want base installed, IPv6 and a version", h)
	}
	for _, run := range []string{"IPv4 save", "IPv4 restore", "IPv6 save", "IPv6 restore"} {
		if runs.count(run) != 1 {
			t.Errorf("the first Reconcile ran %q %d times, want 1 (all: %v)", run, runs.count(run), runs.runs)
		}
	}
	if err := f.RemoveBase(); err != nil {
		t.Fatal(err)
	}
	if h, err := f.Check(); err != nil || h.BaseInstalled {
		t.Errorf("Check after RemoveBase = %+v, %v; want no base and no error", h, err)
	}
}

func testNetwork(id, bridge, subnet string) Network {
	return Network{ID: id, Bridge: bridge, Subnet: netip.MustParsePrefix(subnet), ICC: true, Masquerade: true}
}

var testPorts = []PortBinding{
	{Proto: "tcp", HostPort: 8080, ContainerIP: netip.MustParseAddr("10.42.0.2"), ContainerPort: 80},
	{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9000, ContainerIP: netip.MustParseAddr("10.42.0.2"), ContainerPort: 90},
	{Proto: "tcp", HostPort: 8443, ContainerIP: netip.MustParseAddr("fd00:42::2"), ContainerPort: 443},
	{Proto: "sctp", HostPort: 3868, ContainerIP: netip.MustParseAddr("10.42.0.2"), ContainerPort: 3868},
}

// TestGoldenRulesets compares the complete IPv4 and IPv6 rulesets of a
// network with one published endpoint, for each option combination, with
// golden iptables-save output.
func TestKernelGoldenRulesets(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Network)
	}{
		{"default", func(*Network) {}},
		{"icc_off", func(n *Network) { n.ICC = false }},
		{"masquerade_off", func(n *Network) { n.Masquerade = false }},
		{"internal", func(n *Network) { n.Internal = true }},
		{"host_ipv4", func(n *Network) { n.SNATSource = netip.MustParseAddr("192.0.2.10") }},
		{"routed", func(n *Network) { n.Routed = true }},
		{"dual_stack", func(n *Network) { n.Subnet6 = netip.MustParsePrefix("fd00:42::/64") }},
		{"dual_stack_routed6", func(n *Network) { n.Subnet6 = netip.MustParsePrefix("fd00:42::/64"); n.Routed6 = true }},
		{"trusted_host_ipv6", func(n *Network) {
			n.Subnet6 = netip.MustParsePrefix("fd00:42::/64")
			n.SNATSource6 = netip.MustParseAddr("2001:db8::10")
			n.Trusted = []string{"eth9", "wg0"}
		}},
		{"nat_unprotected", func(n *Network) {
			n.Subnet6 = netip.MustParsePrefix("fd00:42::/64")
			n.Unprotected, n.Unprotected6 = true, true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newReal(t)
			n := testNetwork("0123456789abcdef0123", "mybr0", "10.42.0.0/16")
			tt.modify(&n)
			if err := f.AddNetwork(n); err != nil {
				t.Fatal(err)
			}
			ep := Endpoint{NetworkID: n.ID, EndpointID: "fedcba9876543210", Ports: testPorts}
			if err := f.SetEndpoint(n, ep); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, dumpRules(t))
		})
	}
}

func TestKernelAddIsIdempotentAndRemoveLeavesOnlyBase(t *testing.T) {
	f := newReal(t)
	base := dumpRules(t)
	golden(t, "base", base)
	a := testNetwork("aaaaaaaaaaaa11", "bra", "10.1.0.0/24")
	a.Subnet6 = netip.MustParsePrefix("fd00:1::/64")
	b := testNetwork("bbbbbbbbbbbb22", "brb", "10.2.0.0/24")
	for range 2 {
		if err := f.AddNetwork(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.AddNetwork(b); err != nil {
		t.Fatal(err)
	}
	epA := Endpoint{NetworkID: a.ID, EndpointID: "e1e1e1e1e1e1e1", Ports: []PortBinding{
		{Proto: "tcp", HostPort: 80, ContainerIP: netip.MustParseAddr("10.1.0.2"), ContainerPort: 80},
	}}
	for range 2 {
		if err := f.SetEndpoint(a, epA); err != nil {
			t.Fatal(err)
		}
	}
	got := dumpRules(t)
	want := len(a.Rules(IPv4)) + len(a.Rules(IPv6)) + len(epA.Rules(a, IPv4))
	if n := strings.Count(got, `"`+Tag(a.ID)); n != want {
		t.Errorf("network a has %d rules after adding twice, want %d:\n%s", n, want, got)
	}
	// Re-adding the network with another option replaces its rules and
	// keeps its endpoint's.
	a.ICC = false
	if err := f.AddNetwork(a); err != nil {
		t.Fatal(err)
	}
	got = dumpRules(t)
	if !strings.Contains(got, `-A MYNET-INGRESS -i bra -o bra -m comment --comment "mynet:aaaaaaaaaaaa" -j DROP`) ||
		!strings.Contains(got, `"mynet:aaaaaaaaaaaa:e1e1e1e1e1e1" -j DNAT --to-destination 10.1.0.2:80`) {
		t.Errorf("re-add with icc off:\n%s", got)
	}
	// Removing the endpoint's ports, then both networks.
	epA.Ports = nil
	if err := f.SetEndpoint(a, epA); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dumpRules(t), "e1e1e1e1e1e1") {
		t.Error("endpoint rules left after SetEndpoint without ports")
	}
	for _, n := range []Network{a, b, a} { // the second removal of a finds nothing
		if err := f.RemoveNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
	if got := dumpRules(t); got != base {
		t.Errorf("after removing both networks:\n%s\nwant the base ruleset:\n%s", got, base)
	}
}

func TestKernelReconcileRepairsBaseAfterDockerRestartAndFlush(t *testing.T) {
	f := newReal(t)
	n := testNetwork("cccccccccccc33", "brc", "10.3.0.0/24")
	if err := f.AddNetwork(n); err != nil {
		t.Fatal(err)
	}
	// dockerd starts after mynet: it adopts DOCKER-USER (appending its
	// RETURN) and puts its own jumps and accepts at the top of FORWARD.
	ipt(t, "iptables", "-A", "DOCKER-USER", "-j", "RETURN")
	ipt(t, "iptables", "-N", "DOCKER-ISOLATION-STAGE-1")
	ipt(t, "iptables", "-I", "FORWARD", "1", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT")
	ipt(t, "iptables", "-I", "FORWARD", "1", "-j", "DOCKER-ISOLATION-STAGE-1")
	ipt(t, "iptables", "-I", "FORWARD", "1", "-j", "DOCKER-USER")
	// ... and someone damages a fixed chain of ours.
	ipt(t, "iptables", "-F", ChainAccept)
	states := []State{{Network: n}}
	for range 2 {
		if _, err := f.Reconcile(states); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("iptables", "-S", "FORWARD").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "-P FORWARD ACCEPT\n-A FORWARD -j DOCKER-USER\n-A FORWARD -j MYNET-FORWARD\n-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n-A FORWARD -i docker0 ! -o docker0 -j ACCEPT\n"
	if string(out) != want {
		t.Errorf("FORWARD =\n%s\nwant\n%s", out, want)
	}
	// Whatever dockerd inserts into FORWARD, the guard runs first, from
	// DOCKER-USER, ahead of any user rule.
	ipt(t, "iptables", "-I", "DOCKER-USER", "1", "-s", "192.0.2.0/24", "-j", "DROP")
	if _, err := f.Reconcile(states); err != nil {
		t.Fatal(err)
	}
	out, _ = exec.Command("iptables", "-S", "DOCKER-USER").Output()
	if want := "-N DOCKER-USER\n-A DOCKER-USER -j MYNET-ISOLATION\n-A DOCKER-USER -s 192.0.2.0/24 -j DROP\n-A DOCKER-USER -j RETURN\n"; string(out) != want {
		t.Errorf("DOCKER-USER =\n%s\nwant\n%s", out, want)
	}
	if out, _ := exec.Command("iptables", "-S", ChainAccept).Output(); !strings.Contains(string(out), "CONNMARK") {
		t.Errorf("MYNET-ACCEPT not repaired:\n%s", out)
	}
	// A full flush (iptables -F) loses every rule; one Reconcile brings the
	// jumps and the network's rules back.
	for _, table := range []string{"filter", "nat"} {
		ipt(t, "iptables", "-t", table, "-F")
	}
	if rep, err := f.Reconcile(states); err != nil || !rep.BaseFixed || !slices.Equal(rep.Reapplied, []string{BaseTag, Tag(n.ID)}) {
		t.Fatalf("Reconcile after a flush = %+v, %v; want the base, the shared and the network's rules repaired", rep, err)
	}
	got := dumpRules(t)
	static := staticChains(DefaultBridgeGroup)
	for _, line := range append(append(append(static[ChainForward], static[ChainAccept]...), static[ChainIsolation]...), static[ChainBridges]...) {
		if !strings.Contains(got, line) {
			t.Errorf("after flush, missing %q", line)
		}
	}
	if !strings.Contains(got, "-A FORWARD -j MYNET-FORWARD") || !strings.Contains(got, `-A MYNET-INGRESS ! -i brc -o brc -m conntrack ! --ctstate DNAT -m comment --comment "mynet:cccccccccccc" -j DROP`) {
		t.Errorf("after flush:\n%s", got)
	}
}

func TestValidateRejectsInjection(t *testing.T) {
	good := testNetwork("abc", "br0", "10.0.0.0/24")
	tests := []struct {
		name   string
		modify func(*Network)
	}{
		{"space in bridge", func(n *Network) { n.Bridge = "br0 -j ACCEPT" }},
		{"long bridge", func(n *Network) { n.Bridge = "sixteen-bytes-xx" }},
		{"bridge like an option", func(n *Network) { n.Bridge = "--flush" }},
		{"quote in id", func(n *Network) { n.ID = `a"b` }},
		{"empty id", func(n *Network) { n.ID = "" }},
		{"v6 subnet as v4", func(n *Network) { n.Subnet = netip.MustParsePrefix("fd00::/64") }},
		{"no subnet", func(n *Network) { n.Subnet = netip.Prefix{} }},
		{"v6 snat", func(n *Network) { n.SNATSource = netip.MustParseAddr("fd00::1") }},
	}
	for _, tt := range tests {
		n := good
		tt.modify(&n)
		if n.Validate() == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if err := good.Validate(); err != nil {
		t.Error(err)
	}
	badEP := []Endpoint{
		{NetworkID: "abc", EndpointID: "a b"},
		{NetworkID: "abc", EndpointID: "e", Ports: []PortBinding{{Proto: "icmp", HostPort: 1, ContainerPort: 1, ContainerIP: netip.MustParseAddr("10.0.0.2")}}},
		{NetworkID: "abc", EndpointID: "e", Ports: []PortBinding{{Proto: "tcp", HostPort: 0, ContainerPort: 1, ContainerIP: netip.MustParseAddr("10.0.0.2")}}},
	}
	for _, e := range badEP {
		if e.Validate() == nil {
			t.Errorf("endpoint %+v accepted", e)
		}
	}
}

// fakeBatcher records restores over a canned ruleset, for logic that needs
// no kernel.
type fakeBatcher struct {
	saved    string
	restores []string
}

var _ batcher = (*fakeBatcher)(nil)

func (f *fakeBatcher) Save() (string, error)   { return f.saved, nil }
func (f *fakeBatcher) Restore(in string) error { f.restores = append(f.restores, in); return nil }

func TestRemoveBuildsOneBatchPerFamily(t *testing.T) {
	fb := &fakeBatcher{saved: `*filter
:MYNET-INGRESS - [0:0]
-A MYNET-INGRESS -i x -m comment --comment "mynet:abc" -j MYNET-ACCEPT
-A MYNET-INGRESS -i y -m comment --comment "mynet:abcd" -j MYNET-ACCEPT
COMMIT
*nat
-A MYNET-DNAT -p tcp -m tcp --dport 80 -m comment --comment "mynet:abc:ep1" -j DNAT --to-destination 10.0.0.2:80
COMMIT
`}
	f := newFirewall(&backend{family: IPv4, batch: fb}, nil, nil, 0)
	if err := f.RemoveNetwork(testNetwork("abc", "x", "10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	want := `*filter
-D MYNET-INGRESS -i x -m comment --comment "mynet:abc" -j MYNET-ACCEPT
COMMIT
*nat
-D MYNET-DNAT -p tcp -m tcp --dport 80 -m comment --comment "mynet:abc:ep1" -j DNAT --to-destination 10.0.0.2:80
COMMIT
`
	if len(fb.restores) != 1 || fb.restores[0] != want {
		t.Errorf("restores = %q\nwant one: %q", fb.restores, want)
	}
	fb.restores = nil
	if err := f.RemoveNetwork(testNetwork("zzz", "z", "10.9.0.0/24")); err != nil || len(fb.restores) != 0 {
		t.Errorf("removing an unknown network ran %d restores, err %v", len(fb.restores), err)
	}
}

func TestKernelBaseFixesNothingWhenInPlace(t *testing.T) {
	f := newReal(t)
	b := f.backends()[0]
	saved, err := b.batch.Save()
	if err != nil {
		t.Fatal(err)
	}
	var bt batch
	if baseFixes(parseSave(saved), &bt, DefaultBridgeGroup) {
		t.Errorf("base in place, yet fixes proposed: %v", bt.tables)
	}
}

func TestKernelReconcileRepairsAndRemovesOrphans(t *testing.T) {
	f := newReal(t)
	a := testNetwork("aaaaaaaaaaaa11", "bra", "10.1.0.0/24")
	a.Subnet6 = netip.MustParsePrefix("fd00:1::/64")
	epA := Endpoint{NetworkID: a.ID, EndpointID: "e1e1e1e1e1e1e1", Ports: []PortBinding{
		{Proto: "tcp", HostPort: 80, ContainerIP: netip.MustParseAddr("10.1.0.2"), ContainerPort: 80},
		{Proto: "udp", HostPort: 53, ContainerIP: netip.MustParseAddr("10.1.0.2"), ContainerPort: 53},
	}}
	gone := testNetwork("dddddddddddd44", "brd", "10.4.0.0/24")
	for _, n := range []Network{a, gone} {
		if err := f.AddNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.SetEndpoint(a, epA); err != nil {
		t.Fatal(err)
	}
	want := []State{{Network: a, Endpoints: []Endpoint{epA}}}

	// In place except for the orphan network: only it goes.
	rep, err := f.Reconcile(want)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BaseFixed || len(rep.Reapplied) != 0 || !slices.Equal(rep.OrphansFound, []string{Tag(gone.ID)}) {
		t.Errorf("first reconcile: %+v", rep)
	}
	good := dumpRules(t)
	if strings.Contains(good, Tag(gone.ID)) {
		t.Error("orphan rules survived")
	}
	// Nothing to do the second time.
	if rep, err := f.Reconcile(want); err != nil || rep.Changed() {
		t.Errorf("second reconcile: %+v, %v", rep, err)
	}
	// iptables -F in both families: everything comes back as it was.
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat"} {
			ipt(t, cmd, "-t", table, "-F")
		}
	}
	rep, err = f.Reconcile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.BaseFixed || !slices.Equal(rep.Reapplied, []string{Tag(a.ID), EndpointTag(a.ID, epA.EndpointID), BaseTag}) {
		t.Errorf("after flush: %+v", rep)
	}
	if got := dumpRules(t); got != good {
		t.Errorf("after flush and reconcile:\n%s\nwant\n%s", got, good)
	}
	// One rule deleted by hand is noticed and the set rewritten.
	ipt(t, "iptables", "-t", "nat", "-D", "MYNET-DNAT", "-p", "udp", "-m", "udp", "--dport", "53", "-m", "comment",
		"--comment", EndpointTag(a.ID, epA.EndpointID), "-j", "DNAT", "--to-destination", "10.1.0.2:53")
	rep, err = f.Reconcile(want)
	if err != nil || !slices.Equal(rep.Reapplied, []string{EndpointTag(a.ID, epA.EndpointID)}) {
		t.Errorf("after a deleted rule: %+v, %v", rep, err)
	}
	if got := dumpRules(t); got != good {
		t.Errorf("after repair:\n%s\nwant\n%s", got, good)
	}
}

func TestKernelRemoveBaseLeavesNothingOfOurs(t *testing.T) {
	f := newReal(t)
	for range 2 {
		if err := f.RemoveBase(); err != nil {
			t.Fatal(err)
		}
	}
	if got := dumpRules(t); strings.Contains(got, "MYNET") {
		t.Errorf("after RemoveBase:\n%s", got)
	}
	if _, err := f.Reconcile(nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dumpRules(t), "-A FORWARD -j MYNET-FORWARD") {
		t.Error("Reconcile after RemoveBase did not reinstall")
	}
}

// Only the first change after a Reconcile reads the ruleset: later ones
// work on what the last change left, so a network's create costs the same
// with 2 networks on the host as with 200. A change that no longer fits
// the kernel (someone flushed a chain of ours) is redone on a fresh read.
func TestKernelChangesWorkOnTheLastRuleset(t *testing.T) {
	f, runs := newRealObserved(t)
	saves := func() int { return runs.count("IPv4 save") }
	before := saves()
	var nets []Network
	for i := range 5 {
		n := testNetwork(fmt.Sprintf("%012d", i+1), fmt.Sprintf("cbr%d", i), fmt.Sprintf("10.60.%d.0/24", i))
		if err := f.AddNetwork(n); err != nil {
			t.Fatal(err)
		}
		if err := f.SetEndpoint(n, Endpoint{NetworkID: n.ID, EndpointID: "e1e1e1e1e1e1e1", Ports: testPorts[:1]}); err != nil {
			t.Fatal(err)
		}
		nets = append(nets, n)
	}
	if got := saves() - before; got > 1 {
		t.Errorf("5 networks and 5 endpoints read the IPv4 ruleset %d times, want at most once", got)
	}
	// Behind our back: the network's rules go from MYNET-INGRESS.
	if out, err := exec.Command("iptables", "-F", ChainIngress).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if err := f.RemoveNetwork(nets[0]); err != nil {
		t.Fatalf("RemoveNetwork after an outside flush: %v", err)
	}
	if strings.Contains(dumpRules(t), Tag(nets[0].ID)+`"`) {
		t.Errorf("rules of the removed network remain:\n%s", dumpRules(t))
	}
	// A Reconcile reads fresh and leaves exactly the wanted rules.
	var states []State
	for _, n := range nets[1:] {
		states = append(states, State{Network: n, Endpoints: []Endpoint{{NetworkID: n.ID, EndpointID: "e1e1e1e1e1e1e1", Ports: testPorts[:1]}}})
	}
	if _, err := f.Reconcile(states); err != nil {
		t.Fatal(err)
	}
	rep, err := f.Reconcile(states)
	if err != nil || rep.Changed() {
		t.Errorf("a second Reconcile found %+v, %v; want nothing to repair", rep, err)
	}
}

// The rules of a mynet from before the shared rules (ten per network, the
// accepts naming each bridge in MYNET-BRIDGES) become today's at the first
// Reconcile, the one every daemon start runs: exactly the ruleset a new
// install has for the same network and endpoint.
func TestKernelReconcileConvertsTheRulesOfAnOlderMynet(t *testing.T) {
	f := newReal(t)
	reset(t)
	old, err := os.ReadFile(filepath.Join("testdata", "before-devgroup.save"))
	if err != nil {
		t.Fatal(err)
	}
	v4, v6, ok := strings.Cut(strings.TrimPrefix(string(old), "# iptables-save\n"), "# ip6tables-save\n")
	if !ok {
		t.Fatal("testdata/before-devgroup.save: no ip6tables part")
	}
	for cmd, in := range map[string]string{"iptables-restore": v4, "ip6tables-restore": v6} {
		c := exec.Command(cmd)
		c.Stdin = strings.NewReader(in)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", cmd, err, out)
		}
	}
	n := testNetwork("0123456789abcdef0123", "mybr0", "10.42.0.0/16")
	ep := Endpoint{NetworkID: n.ID, EndpointID: "fedcba9876543210", Ports: testPorts}
	rep, err := f.Reconcile([]State{{Network: n, Endpoints: []Endpoint{ep}}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.BaseFixed || !slices.Contains(rep.Reapplied, Tag(n.ID)) {
		t.Errorf("Reconcile = %+v; want MYNET-BRIDGES and the network's rules rewritten", rep)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "default.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if got := dumpRules(t); got != string(want) {
		t.Errorf("after Reconcile:\n%s\nwant (testdata/default.golden):\n%s", got, want)
	}
}

// A port published on a loopback address gets a raw-table drop of what
// arrives for it on any interface but lo (in both families); other
// bindings, and routed networks, which have no DNAT, get none.
func TestLoopbackBindingsAreDroppedFromElsewhere(t *testing.T) {
	n := testNetwork("0123456789abcdef0123", "mybr0", "10.42.0.0/16")
	n.Subnet6 = netip.MustParsePrefix("fd00:42::/64")
	bind := func(host, ctr string, port uint16) PortBinding {
		b := PortBinding{Proto: "tcp", HostPort: port, ContainerIP: netip.MustParseAddr(ctr), ContainerPort: 80}
		if host != "" {
			b.HostIP = netip.MustParseAddr(host)
		}
		return b
	}
	ep := Endpoint{NetworkID: n.ID, EndpointID: "fedcba9876543210", Ports: []PortBinding{
		bind("127.0.0.2", "10.42.0.2", 8080),
		bind("", "10.42.0.2", 8081),
		bind("192.0.2.1", "10.42.0.2", 8082),
		bind("::1", "fd00:42::2", 8083),
	}}
	raw := func(n Network, f Family) []string {
		var out []string
		for _, r := range ep.Rules(n, f) {
			if r.Table == "raw" {
				out = append(out, r.String())
			}
		}
		return out
	}
	tag := EndpointTag(n.ID, ep.EndpointID)
	want4 := []string{`-A MYNET-LOOPBACK -d 127.0.0.2/32 ! -i lo -p tcp -m tcp --dport 8080 -m comment --comment "` + tag + `" -j DROP`}
	want6 := []string{`-A MYNET-LOOPBACK -d ::1/128 ! -i lo -p tcp -m tcp --dport 8083 -m comment --comment "` + tag + `" -j DROP`}
	if got := raw(n, IPv4); !slices.Equal(got, want4) {
		t.Errorf("IPv4 raw rules = %q, want %q", got, want4)
	}
	if got := raw(n, IPv6); !slices.Equal(got, want6) {
		t.Errorf("IPv6 raw rules = %q, want %q", got, want6)
	}
	n.Routed, n.Routed6 = true, true
	if got := append(raw(n, IPv4), raw(n, IPv6)...); len(got) != 0 {
		t.Errorf("routed network: raw rules %q, want none", got)
	}
}

// The VXLAN guard is one rule first in INPUT, kept by Reconcile (it is no
// orphan, and comes back after a flush) and removed with nil.
func TestKernelVXLANGuard(t *testing.T) {
	f := newReal(t)
	links, err := netutil.New()
	if err != nil {
		t.Fatal(err)
	}
	defer links.Close()
	if err := links.SyncIPSet("mynet-vteps", []netip.Addr{netip.MustParseAddr("198.18.0.12")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = links.DestroyIPSet("mynet-vteps") })
	guardLine := func(port string) string {
		return `-A INPUT -d 198.18.0.11/32 -p udp -m udp --dport ` + port + ` -m set ! --match-set mynet-vteps src -m comment --comment "mynet:vxlan" -j DROP`
	}
	// A network made before mynet had a port of its own (4789) beside one
	// made since (4799): a rule each.
	g := &VXLANGuard{Local: netip.MustParseAddr("198.18.0.11"), Ports: []int{4789, 4799}, Set: "mynet-vteps"}
	if err := f.SetVXLANGuard(g); err != nil {
		t.Fatal(err)
	}
	if got := dumpRules(t); !strings.Contains(got, guardLine("4789")) || !strings.Contains(got, guardLine("4799")) {
		t.Fatalf("no guard rule for each port:\n%s", got)
	}
	// The old network goes: 4789 (Docker overlay's too) is no longer guarded.
	g = &VXLANGuard{Local: netip.MustParseAddr("198.18.0.11"), Ports: []int{4799}, Set: "mynet-vteps"}
	if err := f.SetVXLANGuard(g); err != nil {
		t.Fatal(err)
	}
	line := guardLine("4799")
	if got := dumpRules(t); !strings.Contains(got, line) || strings.Contains(got, guardLine("4789")) {
		t.Fatalf("want the guard on 4799 alone:\n%s", got)
	}
	if rep, err := f.Reconcile(nil); err != nil || slices.Contains(rep.OrphansFound, VXLANTag) {
		t.Errorf("Reconcile with the guard in place: %+v, %v", rep, err)
	}
	ipt(t, "iptables", "-F", "INPUT")
	if rep, err := f.Reconcile(nil); err != nil || !slices.Contains(rep.Reapplied, VXLANTag) {
		t.Errorf("Reconcile after iptables -F INPUT: %+v, %v; want the guard reapplied", rep, err)
	}
	if got := dumpRules(t); !strings.Contains(got, line) {
		t.Errorf("guard not back after the flush:\n%s", got)
	}
	if err := f.SetVXLANGuard(nil); err != nil {
		t.Fatal(err)
	}
	if got := dumpRules(t); strings.Contains(got, VXLANTag) {
		t.Errorf("guard left after SetVXLANGuard(nil):\n%s", got)
	}
	for _, bad := range []VXLANGuard{
		{Local: netip.MustParseAddr("198.18.0.11"), Set: "x"}, // no port
		{Local: netip.MustParseAddr("198.18.0.11"), Ports: []int{4799, 4789}, Set: "x"},
		{Local: netip.MustParseAddr("198.18.0.11"), Ports: []int{4799, 4799}, Set: "x"},
		{Local: netip.MustParseAddr("198.18.0.11"), Ports: []int{70000}, Set: "x"},
	} {
		if err := f.SetVXLANGuard(&bad); err == nil {
			t.Errorf("guard %+v was accepted", bad)
		}
	}
}

// An IPv6 underlay's guard is in ip6tables, against an IPv6 set; IPv4
// has none of it.
func TestKernelVXLANGuardIPv6Underlay(t *testing.T) {
	f := newReal(t)
	if !f.HasIPv6() {
		t.Fatal("this host has no ip6tables")
	}
	links, err := netutil.New()
	if err != nil {
		t.Fatal(err)
	}
	defer links.Close()
	if err := links.SyncIPSet6("mynet-vteps6", []netip.Addr{netip.MustParseAddr("fd00:198:18::12")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = links.DestroyIPSet("mynet-vteps6") })
	g := &VXLANGuard{Local: netip.MustParseAddr("fd00:198:18::11"), Ports: []int{4799}, Set: "mynet-vteps6"}
	if err := f.SetVXLANGuard(g); err != nil {
		t.Fatal(err)
	}
	want := `-A INPUT -d fd00:198:18::11/128 -p udp -m udp --dport 4799 -m set ! --match-set mynet-vteps6 src -m comment --comment "mynet:vxlan" -j DROP`
	out, err := exec.Command("ip6tables", "-S", "INPUT").CombinedOutput()
	if err != nil || !strings.Contains(string(out), want) {
		t.Errorf("ip6tables -S INPUT (%v):\n%s\nwant %s", err, out, want)
	}
	if out, _ := exec.Command("iptables-save").Output(); strings.Contains(string(out), VXLANTag) {
		t.Errorf("an IPv6 underlay's guard in IPv4:\n%s", out)
	}
	if rep, err := f.Reconcile(nil); err != nil || slices.Contains(rep.OrphansFound, VXLANTag) || slices.Contains(rep.Reapplied, VXLANTag) {
		t.Errorf("Reconcile with the IPv6 guard in place: %+v, %v", rep, err)
	}
	if err := f.SetVXLANGuard(nil); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("ip6tables", "-S", "INPUT").CombinedOutput(); strings.Contains(string(out), VXLANTag) {
		t.Errorf("the guard left in ip6tables:\n%s", out)
	}
}

// An encrypted network's VXLAN port is the tunnel's alone: dropped on
// every other link, coming in and going out.
func TestKernelSealedVXLANGuard(t *testing.T) {
	f := newReal(t)
	g := &VXLANGuard{Sealed: []int{4798}, Tunnel: "mwtest0"}
	if err := f.SetVXLANGuard(g); err != nil {
		t.Fatal(err)
	}
	got := dumpRules(t)
	for _, want := range []string{
		`-A INPUT ! -i mwtest0 -p udp -m udp --dport 4798 -m comment --comment "mynet:vxlan" -j DROP`,
		`-A OUTPUT ! -o mwtest0 -p udp -m udp --dport 4798 -m comment --comment "mynet:vxlan" -j DROP`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no rule %q:\n%s", want, got)
		}
	}
	ipt(t, "iptables", "-F", "OUTPUT")
	if rep, err := f.Reconcile(nil); err != nil || !slices.Contains(rep.Reapplied, VXLANTag) {
		t.Errorf("Reconcile after iptables -F OUTPUT: %+v, %v; want the guard reapplied", rep, err)
	}
	if err := f.SetVXLANGuard(nil); err != nil {
		t.Fatal(err)
	}
	if got := dumpRules(t); strings.Contains(got, VXLANTag) {
		t.Errorf("guard left after SetVXLANGuard(nil):\n%s", got)
	}
	for _, bad := range []VXLANGuard{
		{Sealed: []int{4798}},                          // no tunnel device
		{Sealed: []int{4798}, Tunnel: "-j ACCEPT"},     // not a device name
		{Sealed: []int{4798, 4798}, Tunnel: "mwtest0"}, // twice
	} {
		if err := f.SetVXLANGuard(&bad); err == nil {
			t.Errorf("guard %+v was accepted", bad)
		}
	}
}
