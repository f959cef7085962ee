package cluster

import (
	"context"
	"errors"
	"time"
)

// maxOps is etcd's default limit of operations in one transaction
// (--max-txn-ops); deletes of many keys go in batches of at most this.
const maxOps = 128

// ErrCompacted says a watch's start revision was compacted away: the
// watcher must list again (a resync) and watch from the list's revision.
var ErrCompacted = errors.New("watch revision compacted: resync")

// pair is one key with its value.
type pair struct {
	Key   string
	Value []byte
}

// event is one change a watch saw; Value is nil for a delete.
type event struct {
	Key    string
	Value  []byte
	Delete bool
	Rev    int64 // the revision of the change
}

// watchBatch is what a watch delivers: events up to Rev, or an error
// (ErrCompacted, or the watch ended).
type watchBatch struct {
	Events []event
	Rev    int64
	Err    error
}

// kv is what the cluster layer needs from its store: etcd (etcdKV) or, for
// unit tests, memory (memKV). Every call honours ctx's deadline.
type kv interface {
	// create puts key=value only if key is absent; when it exists, it
	// returns false and the value there.
	create(ctx context.Context, key string, value []byte, lease int64) (bool, []byte, error)
	// createGuarded is create that also requires guard to exist under
	// guardLease, in the same transaction; guardOK is false when it did
	// not (then nothing was written).
	createGuarded(ctx context.Context, key string, value []byte, guard string, guardLease int64) (created bool, existing []byte, guardOK bool, err error)
	// put writes key=value, under lease when it is not 0.
	put(ctx context.Context, key string, value []byte, lease int64) error
	// replaceIf writes value to key only while it holds old.
	replaceIf(ctx context.Context, key string, old, value []byte) (bool, error)
	// replaceIfLease is replaceIf that puts the new value under lease.
	replaceIfLease(ctx context.Context, key string, old, value []byte, lease int64) (bool, error)
	// deleteIf deletes key only while it holds value.
	deleteIf(ctx context.Context, key string, value []byte) (bool, error)
	// deleteIfEmpty deletes del in one transaction, only while each guard
	// key holds its value and no key exists under any of the empty
	// prefixes; it reports whether it did.
	deleteIfEmpty(ctx context.Context, del []string, guards map[string][]byte, empty []string) (bool, error)
	// deleteKeys deletes keys, in transactions of at most maxOps.
	deleteKeys(ctx context.Context, keys []string) error
	get(ctx context.Context, key string) ([]byte, bool, error)
	// getMany reads keys at one revision, in one round trip: a value per
	// key, nil for an absent one. rev 0 is the latest (a linearizable
	// read); else it is the store as of rev, read from the member asked
	// (which need not wait for writes under way), or the latest when that
	// member has not reached rev or has compacted it.
	getMany(ctx context.Context, rev int64, keys ...string) ([][]byte, error)
	// list returns the keys under prefix, in key order, at one revision.
	list(ctx context.Context, prefix string) ([]pair, int64, error)
	// listMany is list of each prefix, all at one revision, in one round
	// trip.
	listMany(ctx context.Context, prefixes ...string) ([][]pair, int64, error)
	// watch delivers the changes under prefix after revision rev until ctx
	// ends; a batch with Err is the last.
	watch(ctx context.Context, prefix string, rev int64) <-chan watchBatch
	grant(ctx context.Context, ttl time.Duration) (int64, error)
	// keepAlive keeps lease alive until ctx ends; the channel closes when
	// the lease is lost (expired, revoked) or keeping it alive failed.
	keepAlive(ctx context.Context, lease int64) (<-chan struct{}, error)
	// leaseTTL is the lease's remaining time (<= 0 when it is gone) and
	// the TTL it was granted with.
	leaseTTL(ctx context.Context, lease int64) (remaining, granted time.Duration, err error)
	revoke(ctx context.Context, lease int64) error
	// version is key's version: the puts since it was created (0 when it
	// is absent).
	version(ctx context.Context, key string) (int64, error)
	// witnessed is a view of the store whose every write also puts key,
	// in the same transaction, and counts in n the writes that committed
	// (epoch.go, writecount.go).
	witnessed(key string, n *writeCount) kv
	close() error
}
