package netutil

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/nstest"
)

// TestKernelDNSNATIsSafeForConcurrentUse: a name forwarder renews its lease
// from its serving loop while its keeper checks (and puts back) the rules,
// on the one netlink socket of their DNSNAT. A receive that took the
// other's replies left the other waiting for ever: the lease lapsed (the
// container's names of other hosts were gone) and the box's close, and so
// Docker's Leave, hung. Both at once, many times: each call returns, and
// the rules are whole at the end.
func TestKernelDNSNATIsSafeForConcurrentUse(t *testing.T) {
	nstest.Require(t)
	d, err := OpenDNSNAT("/proc/self/ns/net", "mynet-test-dns", 0x6d6e53)
	if err != nil {
		t.Fatal(err)
	}
	stuck := false // then Remove and Close would wait for ever too
	defer func() {
		if !stuck {
			_ = d.Remove()
			d.Close()
		}
	}()
	const rounds = 2000
	done := make(chan error, 2)
	go func() {
		for i := range rounds {
			// Another port each time: a read, then a rewrite.
			if _, err := d.Ensure(uint16(40000+i%2), 40100); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() {
		for range rounds {
			if err := d.Renew(time.Second); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Minute):
			stuck = true
			t.Fatal("Ensure and Renew at once on one DNSNAT did not return (a netlink reply taken by the other call)")
		}
	}
	if changed, err := d.Ensure(40001, 40100); err != nil || changed {
		t.Errorf("after the rounds: Ensure of the last ports changed %v, %v; want the rules whole", changed, err)
	}
	out, err := exec.Command("nft", "list", "table", "ip", "mynet-test-dns").CombinedOutput()
	if err != nil || strings.Count(string(out), "mynet:dns") != 2 {
		t.Errorf("the table after the rounds (%v):\n%s", err, out)
	}
}
