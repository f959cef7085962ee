package firewall

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestLearnDockerBridges(t *testing.T) {
	rs := parseSave(`*filter
:FORWARD DROP [0:0]
:DOCKER - [0:0]
:DOCKER-BRIDGE - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -o custom20 -j DOCKER
-A FORWARD -o mn-0123456789ab -m comment --comment "mynet:0123456789ab" -j ACCEPT
-A DOCKER-BRIDGE -o br-0123456789ab -j DOCKER
-A DOCKER-BRIDGE -o custom29 -j DOCKER
-A DOCKER-ISOLATION-STAGE-2 -o custom20 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -o stage2only -j DROP
-A DOCKER-ISOLATION-STAGE-2 -o -j -j DROP
COMMIT
`)
	f := &Firewall{nftBridges: func() []string { return []string{"nftbr", "br-aaaa", "with space"} }}
	got := f.dockerBridges(rs)
	want := []string{"docker0", "br-+", "custom20", "custom29", "nftbr", "stage2only"}
	if !slices.Equal(got, want) {
		t.Errorf("dockerBridges = %v, want %v", got, want)
	}
	if got := (&Firewall{}).dockerBridges(ruleset{}); !slices.Equal(got, DefaultDockerBridges) {
		t.Errorf("with no Docker rules = %v, want the defaults", got)
	}
}

// A Docker bridge named by its user, seen in dockerd's own rules, gets the
// same egress guard as docker0 at the next reconcile (one shared rule for
// every network); when it goes, so does the guard.
func TestKernelLearnedDockerBridgeIsIsolated(t *testing.T) {
	f := newReal(t)
	n := testNetwork("0123456789abcdef0123", "mybr0", "10.42.0.0/16")
	if err := f.AddNetwork(n); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-N", "DOCKER"}, {"-N", "DOCKER-BRIDGE"}, {"-A", "DOCKER-BRIDGE", "-o", "dockcustom0", "-j", "DOCKER"}} {
		if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v %s", args, err, out)
		}
	}
	rep, err := f.Reconcile([]State{{Network: n}})
	if err != nil || !slices.Equal(rep.Reapplied, []string{BaseTag}) {
		t.Fatalf("Reconcile = %+v, %v; want the shared rules rewritten", rep, err)
	}
	if !strings.Contains(dumpRules(t), "-A MYNET-EGRESS -o dockcustom0 -m devgroup --src-group 0x6d6e ! --dst-group 0x6d6e -m conntrack ! --ctstate DNAT") {
		t.Errorf("no egress guard towards dockcustom0:\n%s", dumpRules(t))
	}
	if out, err := exec.Command("iptables", "-F", "DOCKER-BRIDGE").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if _, err := f.Reconcile([]State{{Network: n}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dumpRules(t), "dockcustom0") {
		t.Errorf("the guard stayed after Docker's bridge went:\n%s", dumpRules(t))
	}
}
