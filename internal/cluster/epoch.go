package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// etcd can lose the cluster's data while hosts run: a wipe (etcdctl del
// --prefix), a restore of an older backup, a new empty etcd under the same
// endpoints. Claims and records then say nothing of what hosts hold, so a
// host must notice, claim what it holds again before it hands out an
// address, and not take another host's vanished records for removals.
//
// The epoch record (Prefix+"epoch") is written once, with a random value,
// by the first host that registers, and read by every host at each
// registration and every second after (CheckData). Data was lost when the
// record is gone, when its value is not the one this host registered
// under (another host noticed first and wrote a new one), or when etcd's
// revision is below one this host saw (an older backup restored).
//
// Writes after a restore can carry the revision past the one seen before
// the next check, and a backup can be a moment older than the restore:
// what a host wrote in between is gone, and the revision alone may not
// say so. So every write of a host puts its witness (marks/<node>) in the
// same transaction, and the host counts its writes that committed: the
// witness's version (etcd's count of its puts) read back below that count
// means some of this host's writes were lost, however recent, whatever
// the revision says. A host that lost none of its writes lost nothing it
// must claim or publish again; what other hosts lost they notice
// themselves, and a new epoch tells everyone.
//
// A deleted record is one a user removed when the epoch was there at the
// deletion's revision (EpochAt), and one lost with the data when not.

const epochKey = Prefix + "epoch"

// ensureEpoch makes the epoch record exist and remembers its value and
// revision: this host's view of the data from now on.
func (c *Client) ensureEpoch(ctx context.Context) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	mine := []byte(hex.EncodeToString(b))
	_, existing, err := c.kv.create(ctx, epochKey, mine, 0)
	if err != nil {
		return err
	}
	epoch := string(mine)
	if existing != nil {
		epoch = string(existing)
	}
	_, rev, err := c.kv.list(ctx, epochKey)
	if err != nil {
		return err
	}
	_, _, adoptable, err := c.writes.read(func() (int64, error) { return c.kv.version(ctx, c.markKey()) })
	if err != nil {
		return err
	}
	c.mu.Lock()
	// After a restore this host registers again: the restored revisions
	// and witness are the ones from now on.
	c.epoch, c.maxRev = epoch, rev
	c.mu.Unlock()
	c.writes.n.Store(max(adoptable, 0))
	return nil
}

// markKey is this host's witness (see above).
func (c *Client) markKey() string { return Prefix + "marks/" + c.cfg.Node }

// CheckData reports whether etcd lost the cluster's data since this host
// registered, and how (see above). The daemon calls it every second and
// registers again when it did.
func (c *Client) CheckData() (lost bool, why string, err error) {
	err = c.call("check the cluster's epoch", func(ctx context.Context) error {
		pairs, rev, err := c.kv.list(ctx, epochKey)
		if err != nil {
			return err
		}
		c.mu.Lock()
		epoch, maxRev := c.epoch, c.maxRev
		c.mu.Unlock()
		switch {
		case epoch == "":
			return nil // not registered yet
		case len(pairs) == 0:
			lost, why = true, "the cluster's epoch record is gone: etcd lost its data (wiped, or a new etcd)"
			return nil
		case string(pairs[0].Value) != epoch:
			lost, why = true, "the cluster's epoch changed: etcd lost its data and another host noticed first"
			return nil
		case rev < maxRev:
			lost, why = true, fmt.Sprintf("etcd's revision went back from %d to %d: it was restored from an older backup", maxRev, rev)
			return nil
		}
		// Counted before the read: a write counted has committed, so the
		// witness's version is at least the count unless writes were lost.
		wrote, v, adoptable, err := c.writes.read(func() (int64, error) { return c.kv.version(ctx, c.markKey()) })
		if err != nil {
			return err
		}
		if v < wrote {
			lost, why = true, fmt.Sprintf("%d of this host's writes are gone from etcd (its witness's version is %d, it wrote %d): etcd was restored from an older backup", wrote-v, v, wrote)
			return nil
		}
		c.writes.adopt(wrote, adoptable)
		c.mu.Lock()
		c.maxRev = max(c.maxRev, rev)
		c.mu.Unlock()
		return nil
	})
	return lost, why, err
}

// EpochAt reports whether the epoch record this host registered under
// existed at revision rev: a record deleted at rev was removed by a user
// when it did, and lost with etcd's data when it did not. When etcd
// cannot say (the revision compacted), the answer is the latest.
func (c *Client) EpochAt(rev int64) (bool, error) {
	var present bool
	err := c.call("read the cluster's epoch", func(ctx context.Context) error {
		vals, err := c.kv.getMany(ctx, rev, epochKey)
		if err != nil {
			return err
		}
		c.mu.Lock()
		present = vals[0] != nil && string(vals[0]) == c.epoch
		c.mu.Unlock()
		return nil
	})
	return present, err
}

// Epoch is the epoch this host registered under ("" before it did).
func (c *Client) Epoch() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}
