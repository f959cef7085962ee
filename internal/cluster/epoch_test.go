package cluster

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// A host notices when etcd lost the cluster's data: the epoch record gone,
// or another host's new one; a deletion is told apart from a loss.
func TestCheckDataNoticesALoss(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	a := NewWithStore(mem, Config{Node: "host1"})
	b := NewWithStore(mem, Config{Node: "host2"})
	if lost, _, err := a.CheckData(); err != nil || lost {
		t.Fatalf("before registering: lost %v, %v", lost, err)
	}
	for _, c := range []*Client{a, b} {
		if _, _, err := c.Register(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
	}
	if a.Epoch() == "" || a.Epoch() != b.Epoch() {
		t.Fatalf("epochs %q %q: want one, the first host's", a.Epoch(), b.Epoch())
	}
	if lost, why, err := a.CheckData(); err != nil || lost {
		t.Fatalf("nothing lost: %v %q %v", lost, why, err)
	}
	if present, err := a.EpochAt(0); err != nil || !present {
		t.Fatalf("EpochAt with the data there: %v %v", present, err)
	}
	mem.DeletePrefix()
	if lost, why, err := a.CheckData(); err != nil || !lost {
		t.Fatalf("after etcdctl del --prefix: lost %v %q %v", lost, why, err)
	}
	if present, _ := a.EpochAt(0); present {
		t.Error("EpochAt says the epoch is there after the wipe")
	}
	// host2 notices first and registers again: a new epoch, which host1
	// still takes for a loss until it registers again too.
	if _, _, err := b.Register(t.Context(), b.Lease()); err != nil {
		t.Fatal(err)
	}
	if lost, why, _ := a.CheckData(); !lost || why == "" {
		t.Errorf("another host's new epoch: lost %v %q", lost, why)
	}
	if _, _, err := a.Register(t.Context(), a.Lease()); err != nil {
		t.Fatal(err)
	}
	if lost, _, _ := a.CheckData(); lost || a.Epoch() != b.Epoch() {
		t.Errorf("registered again: lost %v, epochs %q %q", lost, a.Epoch(), b.Epoch())
	}
}

// A revision below one seen means an older backup was restored.
func TestCheckDataNoticesARevisionGoingBack(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	a := NewWithStore(mem, Config{Node: "host1"})
	if _, _, err := a.Register(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if lost, _, _ := a.CheckData(); lost {
		t.Fatal("lost at once")
	}
	a.mu.Lock()
	a.maxRev += 100 // as if etcd had gone on, then been restored
	a.mu.Unlock()
	if lost, why, _ := a.CheckData(); !lost || why == "" {
		t.Errorf("revision back: lost %v %q", lost, why)
	}
}

// An older backup restored, a moment older than the restore, whose
// revision other hosts' writes have already carried past the one seen:
// the host's own write since the backup is gone, and its witness says so,
// whatever the revision. A host none of whose writes were lost is not
// told to claim again.
func TestCheckDataNoticesItsWritesGone(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	a := NewWithStore(mem, Config{Node: "host1"})
	b := NewWithStore(mem, Config{Node: "host2"})
	for _, c := range []*Client{a, b} {
		if _, _, err := c.Register(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.EnsureNetwork("blue", netip.MustParsePrefix("10.1.0.0/24"), netip.Addr{}, 0); err != nil {
		t.Fatal(err)
	}
	claim := func(c *Client, ip string) {
		t.Helper()
		if ok, holder, err := c.ClaimAddress("blue", netip.MustParseAddr(ip), "e-"+ip); err != nil || !ok {
			t.Fatalf("claim %s: %v %s %v", ip, ok, holder, err)
		}
	}
	claim(a, "10.1.0.2")
	for _, c := range []*Client{a, b} {
		if lost, why, err := c.CheckData(); err != nil || lost {
			t.Fatalf("%s before the backup: lost %v %q %v", c.Node(), lost, why, err)
		}
	}
	backup := mem.Backup()
	claim(a, "10.1.0.3") // between the backup and the restore, no check between
	mem.Restore(backup)
	for i := range 20 { // the cluster writes on: the revision passes the one seen
		claim(b, fmt.Sprintf("10.1.0.%d", 100+i))
	}
	lost, why, err := a.CheckData()
	if err != nil || !lost || !strings.Contains(why, "writes are gone") {
		t.Fatalf("host1, whose claim of 10.1.0.3 is gone: lost %v %q %v", lost, why, err)
	}
	if lost, why, err := b.CheckData(); err != nil || lost {
		t.Errorf("host2, none of whose writes is gone: lost %v %q %v", lost, why, err)
	}
	// Registered again, the restored witness is the one from now on.
	if _, _, err := a.Register(t.Context(), a.Lease()); err != nil {
		t.Fatal(err)
	}
	claim(a, "10.1.0.3")
	if lost, why, _ := a.CheckData(); lost {
		t.Errorf("after registering again: lost %v %q", lost, why)
	}
}
