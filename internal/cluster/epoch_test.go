package cluster

import (
	"testing"
)

// A host notices when etcd lost the cluster's data: the epoch record gone,
// or another host's new one; a deletion is told apart from a loss.
func TestCheckDataNoticesALoss(t *testing.T) {
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

// An older backup restored whose revision writes have already carried past
// the one seen: this host's own mark, read back lower than it wrote, says
// so.
func TestCheckDataNoticesItsMarkGoingBack(t *testing.T) {
	mem := NewMemory()
	a := NewWithStore(mem, Config{Node: "host1"})
	if _, _, err := a.Register(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if lost, why, err := a.CheckData(); err != nil || lost {
			t.Fatalf("nothing lost: %v %q %v", lost, why, err)
		}
	}
	// The backup: host1's mark as it was two checks ago.
	if err := mem.kv.put(t.Context(), a.markKey(), []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if lost, why, _ := a.CheckData(); !lost || why == "" {
		t.Errorf("mark back from 3 to 1: lost %v %q", lost, why)
	}
	// Registered again, the restored mark is the one from now on.
	if _, _, err := a.Register(t.Context(), a.Lease()); err != nil {
		t.Fatal(err)
	}
	if lost, why, _ := a.CheckData(); lost {
		t.Errorf("after registering again: lost %v %q", lost, why)
	}
}
