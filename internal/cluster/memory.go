package cluster

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// memKV is kv in memory, for unit tests of the logic above it: revisions,
// transactions, watches and leases behave as etcd's do, but leases expire
// only when a test says so (Expire), and compaction only when it calls
// Compact.
type memKV struct {
	mu        sync.Mutex // guards everything below
	rev       int64
	compacted int64
	data      map[string]memVal
	versions  map[string]int64 // puts since each key was created
	history   []memChange
	leases    map[int64]bool
	ttls      map[int64]time.Duration // what each lease was granted with
	nextLease int64
	watchers  map[*memWatcher]bool
	down      error // when set, every call fails with it (etcd unreachable)
}

type memVal struct {
	value []byte
	lease int64
}

type memChange struct {
	rev int64
	ev  event
}

type memWatcher struct {
	prefix string
	ch     chan watchBatch
}

var _ kv = (*memKV)(nil)

func newMemKV() *memKV {
	return &memKV{data: map[string]memVal{}, versions: map[string]int64{}, leases: map[int64]bool{}, ttls: map[int64]time.Duration{}, watchers: map[*memWatcher]bool{}, nextLease: 100}
}

// endWatches ends every watch with err. Caller holds mu.
func (m *memKV) endWatches(err error) {
	for w := range m.watchers {
		select {
		case w.ch <- watchBatch{Err: err}:
		default:
		}
		close(w.ch)
		delete(m.watchers, w)
	}
}

func (m *memKV) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down
}

// commit records one change and tells the watchers. Caller holds mu.
func (m *memKV) commit(ev event) {
	m.rev++
	ev.Rev = m.rev
	if ev.Delete {
		delete(m.data, ev.Key)
		delete(m.versions, ev.Key)
	} else {
		m.versions[ev.Key]++
	}
	m.history = append(m.history, memChange{rev: m.rev, ev: ev})
	for w := range m.watchers {
		if strings.HasPrefix(ev.Key, w.prefix) {
			select {
			case w.ch <- watchBatch{Events: []event{ev}, Rev: m.rev}:
			default: // a watcher that does not keep up is cut off, as etcd does
				delete(m.watchers, w)
				close(w.ch)
			}
		}
	}
}

func (m *memKV) create(ctx context.Context, key string, value []byte, lease int64) (bool, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return false, nil, err
	}
	if v, ok := m.data[key]; ok {
		return false, slices.Clone(v.value), nil
	}
	m.data[key] = memVal{value: slices.Clone(value), lease: lease}
	m.commit(event{Key: key, Value: slices.Clone(value)})
	return true, nil, nil
}

func (m *memKV) createGuarded(ctx context.Context, key string, value []byte, guard string, guardLease int64) (bool, []byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return false, nil, false, err
	}
	if g, ok := m.data[guard]; !ok || g.lease != guardLease {
		return false, nil, false, nil
	}
	if v, ok := m.data[key]; ok {
		return false, slices.Clone(v.value), true, nil
	}
	m.data[key] = memVal{value: slices.Clone(value)}
	m.commit(event{Key: key, Value: slices.Clone(value)})
	return true, nil, true, nil
}

func (m *memKV) deleteIfEmpty(ctx context.Context, del []string, guards map[string][]byte, empty []string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return false, err
	}
	for k, v := range guards {
		if have, ok := m.data[k]; !ok || !bytes.Equal(have.value, v) {
			return false, nil
		}
	}
	for k := range m.data {
		for _, p := range empty {
			if strings.HasPrefix(k, p) {
				return false, nil
			}
		}
	}
	for _, k := range del {
		if _, ok := m.data[k]; ok {
			delete(m.data, k)
			m.commit(event{Key: k, Delete: true})
		}
	}
	return true, nil
}

func (m *memKV) put(ctx context.Context, key string, value []byte, lease int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	if lease != 0 && !m.leases[lease] {
		return errors.New("requested lease not found")
	}
	m.data[key] = memVal{value: slices.Clone(value), lease: lease}
	m.commit(event{Key: key, Value: slices.Clone(value)})
	return nil
}

func (m *memKV) replaceIf(ctx context.Context, key string, old, value []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return false, err
	}
	if have, ok := m.data[key]; !ok || !bytes.Equal(have.value, old) {
		return false, nil
	}
	m.data[key] = memVal{value: slices.Clone(value)}
	m.commit(event{Key: key, Value: slices.Clone(value)})
	return true, nil
}

func (m *memKV) replaceIfLease(ctx context.Context, key string, old, value []byte, lease int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return false, err
	}
	if lease != 0 && !m.leases[lease] {
		return false, errors.New("requested lease not found")
	}
	if have, ok := m.data[key]; !ok || !bytes.Equal(have.value, old) {
		return false, nil
	}
	m.data[key] = memVal{value: slices.Clone(value), lease: lease}
	m.commit(event{Key: key, Value: slices.Clone(value)})
	return true, nil
}

func (m *memKV) deleteIf(ctx context.Context, key string, value []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return false, err
	}
	if v, ok := m.data[key]; !ok || !bytes.Equal(v.value, value) {
		return false, nil
	}
	m.commit(event{Key: key, Delete: true})
	return true, nil
}

func (m *memKV) deleteKeys(ctx context.Context, keys []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	for _, k := range keys {
		if _, ok := m.data[k]; ok {
			m.commit(event{Key: k, Delete: true})
		}
	}
	return nil
}

func (m *memKV) get(ctx context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, false, err
	}
	v, ok := m.data[key]
	return slices.Clone(v.value), ok, nil
}

func (m *memKV) getMany(ctx context.Context, _ int64, keys ...string) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if v, ok := m.data[k]; ok {
			out[i] = slices.Clone(v.value)
		}
	}
	return out, nil
}

func (m *memKV) list(ctx context.Context, prefix string) ([]pair, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, 0, err
	}
	var out []pair
	for k, v := range m.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, pair{Key: k, Value: slices.Clone(v.value)})
		}
	}
	slices.SortFunc(out, func(a, b pair) int { return strings.Compare(a.Key, b.Key) })
	return out, m.rev, nil
}

func (m *memKV) listMany(ctx context.Context, prefixes ...string) ([][]pair, int64, error) {
	out := make([][]pair, len(prefixes))
	var rev int64
	for i, p := range prefixes {
		var err error
		if out[i], rev, err = m.list(ctx, p); err != nil {
			return nil, 0, err
		}
	}
	return out, rev, nil
}

func (m *memKV) watch(ctx context.Context, prefix string, rev int64) <-chan watchBatch {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &memWatcher{prefix: prefix, ch: make(chan watchBatch, 1024)}
	if rev < m.compacted {
		w.ch <- watchBatch{Err: ErrCompacted}
		close(w.ch)
		return w.ch
	}
	for _, c := range m.history {
		if c.rev > rev && strings.HasPrefix(c.ev.Key, prefix) {
			w.ch <- watchBatch{Events: []event{c.ev}, Rev: c.rev}
		}
	}
	m.watchers[w] = true
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.watchers[w] {
			delete(m.watchers, w)
			close(w.ch)
		}
	}()
	return w.ch
}

func (m *memKV) grant(ctx context.Context, ttl time.Duration) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	m.nextLease++
	m.leases[m.nextLease] = true
	m.ttls[m.nextLease] = ttl
	return m.nextLease, nil
}

func (m *memKV) keepAlive(ctx context.Context, lease int64) (<-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.leases[lease] {
		return nil, errors.New("requested lease not found")
	}
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		for ctx.Err() == nil {
			m.mu.Lock()
			alive := m.leases[lease]
			m.mu.Unlock()
			if !alive {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return lost, nil
}

func (m *memKV) leaseTTL(ctx context.Context, lease int64) (time.Duration, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return 0, 0, err
	}
	if m.leases[lease] {
		return m.ttls[lease], m.ttls[lease], nil
	}
	return 0, 0, nil
}

func (m *memKV) revoke(ctx context.Context, lease int64) error {
	if err := func() error { m.mu.Lock(); defer m.mu.Unlock(); return m.check(ctx) }(); err != nil {
		return err
	}
	m.expire(lease)
	return nil
}

func (m *memKV) expire(lease int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.leases, lease)
	var keys []string
	for k, v := range m.data {
		if v.lease == lease {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		m.commit(event{Key: k, Delete: true})
	}
}

func (m *memKV) close() error { return nil }

func (m *memKV) version(ctx context.Context, key string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	return m.versions[key], nil
}
