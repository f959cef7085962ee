package store

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Where the daemon keeps its state by default (--state-dir), and the file's
// name there.
const (
	DefaultDir = "/var/lib/mynet"
	FileName   = "mynet.db"
)

// ErrNotFound is returned by Tx.Get when a key does not exist.
var ErrNotFound = errors.New("not found")

// Store is transactional key/value state grouped in buckets.
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction. The changes fn made are
	// durable when Update returns nil and discarded when fn returns an error.
	Update(fn func(Tx) error) error
	// Close releases the store.
	Close() error
}

// Tx is one transaction. A Tx must not be used after its View or Update
// returned, and byte slices it returns are only valid until then.
type Tx interface {
	// Get returns the value of key in bucket, or an error wrapping ErrNotFound.
	Get(bucket, key string) ([]byte, error)
	// Put stores value under key in bucket, creating the bucket if needed.
	Put(bucket, key string, value []byte) error
	// Delete removes key from bucket; a missing key or bucket is not an error.
	Delete(bucket, key string) error
	// ForEach calls fn for every key of bucket in byte order; a missing
	// bucket has no keys. An error from fn stops the walk and is returned.
	ForEach(bucket string, fn func(key string, value []byte) error) error
	// DeleteBucket removes bucket and every key in it; a missing bucket is
	// not an error.
	DeleteBucket(bucket string) error
}

// PutJSON encodes v and stores it under key in bucket.
func PutJSON(tx Tx, bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return tx.Put(bucket, key, b)
}

// ForEachJSON decodes every value of bucket into a new T and calls fn with
// its key.
func ForEachJSON[T any](tx Tx, bucket string, fn func(key string, v *T) error) error {
	return tx.ForEach(bucket, func(key string, raw []byte) error {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
		}
		return fn(key, v)
	})
}
