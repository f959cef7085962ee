package firewall

import (
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mynet/mynet/internal/nstest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) { nstest.Main(m) }

// ruleset returns iptables-save of this test's namespace without the
// timestamp comments, i.e. the complete state to compare with a golden file.
func ruleset(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
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

// reset removes everything from the namespace's tables.
func reset(t *testing.T) {
	t.Helper()
	for _, table := range []string{"filter", "nat"} {
		for _, args := range [][]string{{"-t", table, "-F"}, {"-t", table, "-X"}} {
			if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
				t.Fatalf("iptables %v: %v: %s", args, err, out)
			}
		}
	}
}

func newReal(t *testing.T) *Firewall {
	t.Helper()
	reset(t)
	t.Cleanup(func() { reset(t) })
	f, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.EnsureBase(); err != nil {
		t.Fatal(err)
	}
	return f
}

func testNetwork(id, bridge, subnet string) Network {
	return Network{ID: id, Bridge: bridge, Subnet: netip.MustParsePrefix(subnet), ICC: true, Masquerade: true}
}

// TestGoldenRulesets compares the complete ruleset of a network, for each
// option combination, with golden iptables-save output.
func TestGoldenRulesets(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Network)
	}{
		{"default", func(*Network) {}},
		{"icc_off", func(n *Network) { n.ICC = false }},
		{"masquerade_off", func(n *Network) { n.Masquerade = false }},
		{"internal", func(n *Network) { n.Internal = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newReal(t)
			n := testNetwork("0123456789abcdef0123", "mybr0", "10.42.0.0/16")
			tt.modify(&n)
			if err := f.AddNetwork(n); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, ruleset(t))
		})
	}
}

func TestAddIsIdempotentAndRemoveLeavesOnlyBase(t *testing.T) {
	f := newReal(t)
	base := ruleset(t)
	golden(t, "base", base)
	a := testNetwork("aaaaaaaaaaaa11", "bra", "10.1.0.0/24")
	b := testNetwork("bbbbbbbbbbbb22", "brb", "10.2.0.0/24")
	for range 2 {
		if err := f.AddNetwork(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.AddNetwork(b); err != nil {
		t.Fatal(err)
	}
	got := ruleset(t)
	if n := strings.Count(got, Tag(a.ID)); n != len(a.Rules()) {
		t.Errorf("network a has %d rules after adding twice, want %d:\n%s", n, len(a.Rules()), got)
	}
	// Changing an option replaces the rules rather than adding to them.
	a.ICC = false
	if err := f.AddNetwork(a); err != nil {
		t.Fatal(err)
	}
	got = ruleset(t)
	if n := strings.Count(got, Tag(a.ID)); n != len(a.Rules()) || !strings.Contains(got, "-i bra -o bra -m comment --comment \"mynet:aaaaaaaaaaaa\" -j DROP") {
		t.Errorf("re-add with icc off:\n%s", got)
	}
	tags, err := f.Tags()
	if err != nil || !tags[Tag(a.ID)] || !tags[Tag(b.ID)] || len(tags) != 2 {
		t.Errorf("Tags = %v, %v", tags, err)
	}
	for _, id := range []string{a.ID, b.ID, a.ID} { // the second removal of a finds nothing
		if err := f.RemoveNetwork(id); err != nil {
			t.Fatal(err)
		}
	}
	if got := ruleset(t); got != base {
		t.Errorf("after removing both networks:\n%s\nwant the base ruleset:\n%s", got, base)
	}
}

func TestEnsureBaseRepairsAndKeepsDockerUserFirst(t *testing.T) {
	reset(t)
	t.Cleanup(func() { reset(t) })
	for _, args := range [][]string{
		{"-N", "DOCKER-USER"}, {"-A", "FORWARD", "-j", "DOCKER-USER"}, {"-A", "FORWARD", "-o", "docker0", "-j", "ACCEPT"},
	} {
		if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v: %s", args, err, out)
		}
	}
	f, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.EnsureBase(); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("iptables", "-S", "FORWARD").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "-P FORWARD ACCEPT\n-A FORWARD -j DOCKER-USER\n-A FORWARD -j MYNET-FORWARD\n-A FORWARD -o docker0 -j ACCEPT\n"
	if string(out) != want {
		t.Errorf("FORWARD =\n%s\nwant\n%s", out, want)
	}
	// A flush of FORWARD (iptables -F) is repaired by the next EnsureBase.
	if err := exec.Command("iptables", "-F", "FORWARD").Run(); err != nil {
		t.Fatal(err)
	}
	if err := f.EnsureBase(); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("iptables", "-S", "FORWARD").Output(); !strings.Contains(string(out), "-j MYNET-FORWARD") {
		t.Errorf("jump not restored:\n%s", out)
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
		{"quote in id", func(n *Network) { n.ID = `a"b` }},
		{"empty id", func(n *Network) { n.ID = "" }},
		{"v6 subnet", func(n *Network) { n.Subnet = netip.MustParsePrefix("fd00::/64") }},
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

func TestApplyBuildsOneBatch(t *testing.T) {
	fb := &fakeBatcher{saved: `*filter
:MYNET-FORWARD - [0:0]
-A MYNET-FORWARD -i x -m comment --comment "mynet:abc" -j ACCEPT
-A MYNET-FORWARD -i y -m comment --comment "mynet:abcd" -j ACCEPT
COMMIT
*nat
-A MYNET-POSTROUTING -s 10.0.0.0/24 ! -o x -m comment --comment "mynet:abc" -j MASQUERADE
COMMIT
`}
	f := newFirewall(nil, fb, nil)
	if err := f.RemoveNetwork("abc"); err != nil {
		t.Fatal(err)
	}
	want := `*filter
-D MYNET-FORWARD -i x -m comment --comment "mynet:abc" -j ACCEPT
COMMIT
*nat
-D MYNET-POSTROUTING -s 10.0.0.0/24 ! -o x -m comment --comment "mynet:abc" -j MASQUERADE
COMMIT
`
	if len(fb.restores) != 1 || fb.restores[0] != want {
		t.Errorf("restores = %q\nwant one: %q", fb.restores, want)
	}
	fb.restores = nil
	if err := f.RemoveNetwork("zzz"); err != nil || len(fb.restores) != 0 {
		t.Errorf("removing an unknown network ran %d restores, err %v", len(fb.restores), err)
	}
}
