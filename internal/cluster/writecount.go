package cluster

import "sync/atomic"

// writeCount is this host's count of its writes that committed, which its
// witness's version in etcd (the puts of marks/<node>) must never be below
// (epoch.go). A write is counted once its answer is back, so a write can be
// in etcd's count before it is in this one: reading the count back from
// etcd must not take those twice, or a host would see its own writes
// "lost" (as a busy host did, in a benchmark: "its witness's version is
// 27, it wrote 28"), register again and hold its allocations for nothing.
type writeCount struct {
	n        atomic.Int64 // writes that committed, their answer back
	started  atomic.Int64 // writes sent, answered or not
	inFlight atomic.Int64 // writes sent whose answer has not come back
}

// begin is called as a write is sent, and end with its answer (committed:
// the transaction applied its operations) once it is back, on every path.
func (w *writeCount) begin() {
	w.started.Add(1)
	w.inFlight.Add(1)
}

func (w *writeCount) end(committed bool) {
	if committed {
		w.n.Add(1)
	}
	w.inFlight.Add(-1)
}

// read reads etcd's count with version and returns this host's count
// taken before it (each write in it has committed, so etcd's count is at
// least that unless writes were lost), etcd's count, and the most of
// etcd's count this host may take as its own: less every write that may be
// in etcd's count without being in this one yet (on its way as the read
// began, or sent since). Counting below etcd only delays noticing the loss
// of those few writes; counting above would report a loss that never was.
func (w *writeCount) read(version func() (int64, error)) (counted, etcd, adoptable int64, err error) {
	counted = w.n.Load()
	started, inFlight := w.started.Load(), w.inFlight.Load()
	etcd, err = version()
	if err != nil {
		return 0, 0, 0, err
	}
	adoptable = etcd - inFlight - (w.started.Load() - started)
	return counted, etcd, adoptable, nil
}

// adopt makes the count at least n, from read's values (a write whose
// answer was lost counts from then on). Writes counted meanwhile may be
// overwritten: the count only errs low.
func (w *writeCount) adopt(counted, adoptable int64) {
	w.n.Store(max(counted, adoptable, 0))
}
