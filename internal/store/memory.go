package store

import (
	"fmt"
	"maps"
	"sort"
	"sync"
)

// Memory is a Store held in memory, for tests of pure logic. Update works on
// a copy and swaps it in only when fn succeeds, like a real transaction.
type Memory struct {
	mu      sync.RWMutex // guards buckets; Update holds it for the whole transaction
	buckets map[string]map[string][]byte
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{buckets: map[string]map[string][]byte{}} }

// View implements Store.
func (m *Memory) View(fn func(Tx) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fn(memTx{buckets: m.buckets, readOnly: true})
}

// Update implements Store.
func (m *Memory) Update(fn func(Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	work := make(map[string]map[string][]byte, len(m.buckets))
	for name, b := range m.buckets {
		work[name] = maps.Clone(b)
	}
	if err := fn(memTx{buckets: work}); err != nil {
		return err
	}
	m.buckets = work
	return nil
}

// Close implements Store.
func (m *Memory) Close() error { return nil }

type memTx struct {
	buckets  map[string]map[string][]byte
	readOnly bool
}

func (t memTx) Get(bucket, key string) ([]byte, error) {
	v, ok := t.buckets[bucket][key]
	if !ok {
		return nil, fmt.Errorf("%s/%s: %w", bucket, key, ErrNotFound)
	}
	return v, nil
}

func (t memTx) Put(bucket, key string, value []byte) error {
	if t.readOnly {
		return fmt.Errorf("put %s/%s: read-only transaction", bucket, key)
	}
	b := t.buckets[bucket]
	if b == nil {
		b = map[string][]byte{}
		t.buckets[bucket] = b
	}
	b[key] = append([]byte(nil), value...)
	return nil
}

func (t memTx) Delete(bucket, key string) error {
	if t.readOnly {
		return fmt.Errorf("delete %s/%s: read-only transaction", bucket, key)
	}
	delete(t.buckets[bucket], key)
	return nil
}

func (t memTx) DeleteBucket(bucket string) error {
	if t.readOnly {
		return fmt.Errorf("delete bucket %s: read-only transaction", bucket)
	}
	delete(t.buckets, bucket)
	return nil
}

func (t memTx) ForEach(bucket string, fn func(string, []byte) error) error {
	b := t.buckets[bucket]
	keys := make([]string, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(k, b[k]); err != nil {
			return err
		}
	}
	return nil
}
