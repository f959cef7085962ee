package cluster

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
)

// What a unit test does to the in-memory store (memory.go) in place of
// etcd's faults: leases expired, history compacted, data wiped or put by
// hand, the store down.

// Memory is an in-memory store a test can steer.
type Memory struct{ kv *memKV }

// NewMemory returns an empty in-memory store for unit tests; give it to
// NewWithStore for each simulated host.
func NewMemory() *Memory { return &Memory{kv: newMemKV()} }

// Expire ends a lease as etcd does when its holder stops renewing it: its
// keys are deleted.
func (m *Memory) Expire(lease int64) { m.kv.expire(lease) }

// Compact forgets history up to the current revision, so watches from an
// older revision fail with ErrCompacted.
func (m *Memory) Compact() {
	m.kv.mu.Lock()
	defer m.kv.mu.Unlock()
	m.kv.compacted, m.kv.history = m.kv.rev, nil
	m.kv.endWatches(ErrCompacted)
}

// PutClaim writes an address claim of node's as it is, registered or not:
// what an etcd restored from an old backup, or a crash between a claim and
// the host's save, leaves behind.
func (m *Memory) PutClaim(net string, ip netip.Addr, node, owner string) {
	b, _ := json.Marshal(addrClaim{Node: node, Owner: owner})
	m.kv.mu.Lock()
	defer m.kv.mu.Unlock()
	m.kv.data[addrKey(net, ip)] = memVal{value: b}
	m.kv.commit(event{Key: addrKey(net, ip), Value: slices.Clone(b)})
}

// PutPeer writes an endpoint record as given (Node and VTEP
// included), under no lease: a record put by hand.
func (m *Memory) PutPeer(ep Peer) {
	b, _ := json.Marshal(ep)
	key := endpointKey(ep.Network, ep.Node, ep.IP)
	m.kv.mu.Lock()
	defer m.kv.mu.Unlock()
	m.kv.data[key] = memVal{value: b}
	m.kv.commit(event{Key: key, Value: slices.Clone(b)})
}

// Wipe loses every key and lease, as an etcd whose data was deleted and
// that was started afresh: no events, the watches end.
func (m *Memory) Wipe() {
	m.kv.mu.Lock()
	defer m.kv.mu.Unlock()
	m.kv.data, m.kv.versions, m.kv.leases = map[string]memVal{}, map[string]int64{}, map[int64]bool{}
	m.kv.compacted, m.kv.history = m.kv.rev, nil
	m.kv.endWatches(errors.New("connection to etcd lost"))
}

// SetDown makes every call fail and every watch end (err != nil), or
// calls work again (nil).
func (m *Memory) SetDown(err error) {
	m.kv.mu.Lock()
	defer m.kv.mu.Unlock()
	m.kv.down = err
	if err != nil {
		m.kv.endWatches(err)
	}
}

// DeletePrefix deletes every key of the cluster (leases stay), each with
// its deletion event, as `etcdctl del --prefix /mynet/` does.
func (m *Memory) DeletePrefix() {
	m.kv.mu.Lock()
	defer m.kv.mu.Unlock()
	for k := range m.kv.data {
		if strings.HasPrefix(k, Prefix) {
			m.kv.commit(event{Key: k, Delete: true})
		}
	}
}

// Snapshot is the store's data at one moment (Backup).
type Snapshot struct {
	rev      int64
	data     map[string]memVal
	versions map[string]int64
}

// Backup copies the store's data, as an etcd snapshot does.
func (m *Memory) Backup() Snapshot {
	m.kv.mu.Lock()
	defer m.kv.mu.Unlock()
	data := make(map[string]memVal, len(m.kv.data))
	for k, v := range m.kv.data {
		data[k] = memVal{value: slices.Clone(v.value), lease: v.lease}
	}
	versions := make(map[string]int64, len(m.kv.versions))
	for k, v := range m.kv.versions {
		versions[k] = v
	}
	return Snapshot{rev: m.kv.rev, data: data, versions: versions}
}

// Restore puts a backup's data back (leases stay), as an etcd restored
// from an older snapshot: the revision goes back, no events, the watches
// end.
func (m *Memory) Restore(s Snapshot) {
	m.kv.mu.Lock()
	defer m.kv.mu.Unlock()
	m.kv.data, m.kv.versions = map[string]memVal{}, map[string]int64{}
	for k, v := range s.data {
		m.kv.data[k] = memVal{value: slices.Clone(v.value), lease: v.lease}
	}
	for k, v := range s.versions {
		m.kv.versions[k] = v
	}
	m.kv.rev, m.kv.compacted, m.kv.history = s.rev, s.rev, nil
	m.kv.endWatches(errors.New("connection to etcd lost"))
}
