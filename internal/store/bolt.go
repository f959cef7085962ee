package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bolt is a Store in one bbolt file. Every Update is fsynced before it
// returns, so a kill -9 right after a successful call loses nothing.
type Bolt struct {
	db *bolt.DB
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (or creates) the state file at path with mode 0600, creating
// its directory with mode 0700. It fails fast when another process holds the
// file, which is the case when a second mynet daemon uses the same state dir.
// The freelist is not written at each commit (NoFreelistSync, as etcd does):
// commits write less, and bbolt rebuilds the freelist when it opens the file.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open state file %s: it is locked by another process (is another mynet daemon running with the same --state-dir?)", path)
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	// bbolt keeps the mode of an existing file; state is ours alone.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("restrict state file %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// OpenBoltReadOnly opens an existing state file for reading only (for
// `mynet status` while the daemon is stopped). It fails while a daemon holds
// the file.
func OpenBoltReadOnly(path string) (*Bolt, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open state file: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open state file %s: a running mynet holds it", path)
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// View implements Store.
func (b *Bolt) View(fn func(Tx) error) error {
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// Update implements Store.
func (b *Bolt) Update(fn func(Tx) error) error {
	return b.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// Close implements Store.
func (b *Bolt) Close() error { return b.db.Close() }

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) Get(bucket, key string) ([]byte, error) {
	bk := t.tx.Bucket([]byte(bucket))
	if bk == nil {
		return nil, fmt.Errorf("%s/%s: %w", bucket, key, ErrNotFound)
	}
	v := bk.Get([]byte(key))
	if v == nil {
		return nil, fmt.Errorf("%s/%s: %w", bucket, key, ErrNotFound)
	}
	return v, nil
}

func (t boltTx) Put(bucket, key string, value []byte) error {
	bk, err := t.tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	if err := bk.Put([]byte(key), value); err != nil {
		return fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (t boltTx) Delete(bucket, key string) error {
	bk := t.tx.Bucket([]byte(bucket))
	if bk == nil {
		return nil
	}
	if err := bk.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (t boltTx) DeleteBucket(bucket string) error {
	err := t.tx.DeleteBucket([]byte(bucket))
	if err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("delete bucket %s: %w", bucket, err)
	}
	return nil
}

func (t boltTx) ForEach(bucket string, fn func(string, []byte) error) error {
	bk := t.tx.Bucket([]byte(bucket))
	if bk == nil {
		return nil
	}
	return bk.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}
