package cluster

import "context"

func (m *memKV) witnessed(key string, n *writeCount) kv {
	return &memWitnessed{memKV: m, key: key, n: n}
}

// memWitnessed is a memKV whose writes also put the witness key (witnessed).
// Unlike etcd's, the two are not one transaction: a test that loses data
// between them sees the write without its witness.
type memWitnessed struct {
	*memKV
	key string
	n   *writeCount
}

func (w *memWitnessed) wrote(ctx context.Context, ok bool) {
	w.n.begin()
	w.n.end(ok && w.memKV.put(ctx, w.key, nil, 0) == nil)
}

func (w *memWitnessed) create(ctx context.Context, key string, value []byte, lease int64) (bool, []byte, error) {
	ok, existing, err := w.memKV.create(ctx, key, value, lease)
	w.wrote(ctx, ok && err == nil)
	return ok, existing, err
}

func (w *memWitnessed) createGuarded(ctx context.Context, key string, value []byte, guard string, guardLease int64) (bool, []byte, bool, error) {
	ok, existing, guardOK, err := w.memKV.createGuarded(ctx, key, value, guard, guardLease)
	w.wrote(ctx, ok && err == nil)
	return ok, existing, guardOK, err
}

func (w *memWitnessed) deleteIfEmpty(ctx context.Context, del []string, guards map[string][]byte, empty []string) (bool, error) {
	ok, err := w.memKV.deleteIfEmpty(ctx, del, guards, empty)
	w.wrote(ctx, ok && err == nil)
	return ok, err
}

func (w *memWitnessed) put(ctx context.Context, key string, value []byte, lease int64) error {
	err := w.memKV.put(ctx, key, value, lease)
	w.wrote(ctx, err == nil)
	return err
}

func (w *memWitnessed) replaceIf(ctx context.Context, key string, old, value []byte) (bool, error) {
	ok, err := w.memKV.replaceIf(ctx, key, old, value)
	w.wrote(ctx, ok && err == nil)
	return ok, err
}

func (w *memWitnessed) replaceIfLease(ctx context.Context, key string, old, value []byte, lease int64) (bool, error) {
	ok, err := w.memKV.replaceIfLease(ctx, key, old, value, lease)
	w.wrote(ctx, ok && err == nil)
	return ok, err
}

func (w *memWitnessed) deleteIf(ctx context.Context, key string, value []byte) (bool, error) {
	ok, err := w.memKV.deleteIf(ctx, key, value)
	w.wrote(ctx, ok && err == nil)
	return ok, err
}

func (w *memWitnessed) deleteKeys(ctx context.Context, keys []string) error {
	err := w.memKV.deleteKeys(ctx, keys)
	w.wrote(ctx, err == nil)
	return err
}
