package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// keepAliveTime is how often the client pings an idle connection: not
// below etcd's default minimum of 5 s.
const keepAliveTime = 10 * time.Second

// etcdKV is kv on a real etcd.
type etcdKV struct {
	c    *clientv3.Client
	page int64 // keys a list reads at a time (listPage)
	// witness is put in every write's transaction, and wrote counts the
	// writes that committed (witnessed; "": none).
	witness string
	wrote   *writeCount
}

func (e *etcdKV) witnessed(key string, n *writeCount) kv {
	cp := *e
	cp.witness, cp.wrote = key, n
	return &cp
}

// then is a write's operations with the witness's put; the write is on its
// way from then until committed is called with its answer, which every
// path after then must do.
func (e *etcdKV) then(ops ...clientv3.Op) []clientv3.Op {
	if e.witness != "" {
		ops = append(ops, clientv3.OpPut(e.witness, ""))
		e.wrote.begin()
	}
	return ops
}

// committed ends a write begun by then: ok when its transaction committed
// its operations.
func (e *etcdKV) committed(ok bool) {
	if e.wrote != nil {
		e.wrote.end(ok)
	}
}

func (e *etcdKV) version(ctx context.Context, key string) (int64, error) {
	res, err := e.c.Get(ctx, key)
	if err != nil || len(res.Kvs) == 0 {
		return 0, err
	}
	return res.Kvs[0].Version, nil
}

var _ kv = (*etcdKV)(nil)

// TLS names the client certificate files for etcd; all empty: plain TCP.
type TLS struct {
	CA, Cert, Key string
}

func dialEtcd(endpoints []string, t TLS, dialTimeout time.Duration) (*etcdKV, error) {
	var tlsCfg *tls.Config
	if t.CA != "" || t.Cert != "" || t.Key != "" {
		info := transport.TLSInfo{TrustedCAFile: t.CA, CertFile: t.Cert, KeyFile: t.Key}
		var err error
		if tlsCfg, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: dialTimeout,
		// etcd's server closes a connection that pings it more often than
		// --grpc-keepalive-min-time (5 s by default): too_many_pings.
		DialKeepAliveTime: keepAliveTime,
		// Also gRPC's TCP_USER_TIMEOUT: a request sent to a member that
		// is cut off fails after this long, and the member is left out
		// until it answers again (Client.call then tries another).
		DialKeepAliveTimeout: 2 * time.Second,
		TLS:                  tlsCfg,
		Logger:               zap.NewNop(),
		AutoSyncInterval:     0,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return &etcdKV{c: c, page: listPage}, nil
}

func leaseOpts(lease int64) []clientv3.OpOption {
	if lease == 0 {
		return nil
	}
	return []clientv3.OpOption{clientv3.WithLease(clientv3.LeaseID(lease))}
}

func (e *etcdKV) create(ctx context.Context, key string, value []byte, lease int64) (bool, []byte, error) {
	res, err := e.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(e.then(clientv3.OpPut(key, string(value), leaseOpts(lease)...))...).
		Else(clientv3.OpGet(key)).
		Commit()
	e.committed(err == nil && res.Succeeded)
	if err != nil {
		return false, nil, err
	}
	if res.Succeeded {
		return true, nil, nil
	}
	if kvs := res.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		return false, kvs[0].Value, nil
	}
	return false, nil, nil
}

func (e *etcdKV) createGuarded(ctx context.Context, key string, value []byte, guard string, guardLease int64) (bool, []byte, bool, error) {
	res, err := e.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
			clientv3.Compare(clientv3.LeaseValue(guard), "=", clientv3.LeaseID(guardLease))).
		Then(e.then(clientv3.OpPut(key, string(value)))...).
		Else(clientv3.OpGet(key), clientv3.OpGet(guard)).
		Commit()
	e.committed(err == nil && res.Succeeded)
	if err != nil {
		return false, nil, false, err
	}
	if res.Succeeded {
		return true, nil, true, nil
	}
	g := res.Responses[1].GetResponseRange().Kvs
	if len(g) == 0 || g[0].Lease != guardLease {
		return false, nil, false, nil
	}
	var existing []byte
	if kvs := res.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		existing = kvs[0].Value
	}
	return false, existing, true, nil
}

func (e *etcdKV) deleteIfEmpty(ctx context.Context, del []string, guards map[string][]byte, empty []string) (bool, error) {
	var cmps []clientv3.Cmp
	for k, v := range guards {
		cmps = append(cmps, clientv3.Compare(clientv3.Value(k), "=", string(v)))
	}
	for _, p := range empty {
		// A range compare holds for every key in the range, and for the
		// zero value when there is none: no key with a create revision.
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(p), "=", 0).WithPrefix())
	}
	ops := make([]clientv3.Op, 0, len(del))
	for _, k := range del {
		ops = append(ops, clientv3.OpDelete(k))
	}
	res, err := e.c.Txn(ctx).If(cmps...).Then(e.then(ops...)...).Commit()
	e.committed(err == nil && res.Succeeded)
	if err != nil {
		return false, err
	}
	return res.Succeeded, nil
}

func (e *etcdKV) put(ctx context.Context, key string, value []byte, lease int64) error {
	_, err := e.c.Txn(ctx).Then(e.then(clientv3.OpPut(key, string(value), leaseOpts(lease)...))...).Commit()
	e.committed(err == nil)
	return err
}

func (e *etcdKV) replaceIf(ctx context.Context, key string, old, value []byte) (bool, error) {
	res, err := e.c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", string(old))).
		Then(e.then(clientv3.OpPut(key, string(value)))...).
		Commit()
	e.committed(err == nil && res.Succeeded)
	if err != nil {
		return false, err
	}
	return res.Succeeded, nil
}

func (e *etcdKV) replaceIfLease(ctx context.Context, key string, old, value []byte, lease int64) (bool, error) {
	res, err := e.c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", string(old))).
		Then(e.then(clientv3.OpPut(key, string(value), leaseOpts(lease)...))...).
		Commit()
	e.committed(err == nil && res.Succeeded)
	if err != nil {
		return false, err
	}
	return res.Succeeded, nil
}

func (e *etcdKV) deleteIf(ctx context.Context, key string, value []byte) (bool, error) {
	res, err := e.c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", string(value))).
		Then(e.then(clientv3.OpDelete(key))...).
		Commit()
	e.committed(err == nil && res.Succeeded)
	if err != nil {
		return false, err
	}
	return res.Succeeded, nil
}

func (e *etcdKV) deleteKeys(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), maxOps-1) // and the witness
		ops := make([]clientv3.Op, n)
		for i, k := range keys[:n] {
			ops[i] = clientv3.OpDelete(k)
		}
		_, err := e.c.Txn(ctx).Then(e.then(ops...)...).Commit()
		e.committed(err == nil)
		if err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func (e *etcdKV) get(ctx context.Context, key string) ([]byte, bool, error) {
	res, err := e.c.Get(ctx, key)
	if err != nil || len(res.Kvs) == 0 {
		return nil, false, err
	}
	return res.Kvs[0].Value, true, nil
}

func (e *etcdKV) getMany(ctx context.Context, rev int64, keys ...string) ([][]byte, error) {
	var opts []clientv3.OpOption
	if rev > 0 {
		opts = []clientv3.OpOption{clientv3.WithRev(rev), clientv3.WithSerializable()}
	}
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k, opts...)
	}
	res, err := e.c.Txn(ctx).Then(ops...).Commit()
	if rev > 0 && (errors.Is(err, rpctypes.ErrFutureRev) || errors.Is(err, rpctypes.ErrCompacted)) {
		return e.getMany(ctx, 0, keys...)
	}
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, r := range res.Responses {
		if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 {
			out[i] = kvs[0].Value
		}
	}
	return out, nil
}

// listPage bounds a range's answer: a list of a big network (100k
// endpoints) comes in pages at one revision, so neither etcd's answer nor
// the client's copy of it is whole in memory at once.
const listPage = 5000

func (e *etcdKV) list(ctx context.Context, prefix string) ([]pair, int64, error) {
	lists, rev, err := e.listMany(ctx, prefix)
	if err != nil {
		return nil, 0, err
	}
	return lists[0], rev, nil
}

// listMany reads the first page of every prefix in one transaction, and
// the rest of a longer one page by page at that transaction's revision.
func (e *etcdKV) listMany(ctx context.Context, prefixes ...string) ([][]pair, int64, error) {
	ops := make([]clientv3.Op, len(prefixes))
	for i, p := range prefixes {
		ops[i] = clientv3.OpGet(p, clientv3.WithRange(clientv3.GetPrefixRangeEnd(p)), clientv3.WithLimit(e.page))
	}
	res, err := e.c.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, 0, err
	}
	rev := res.Header.Revision
	out := make([][]pair, len(prefixes))
	for i, r := range res.Responses {
		page := r.GetResponseRange()
		out[i] = appendPairs(nil, page.Kvs)
		if page.More {
			if out[i], err = e.rest(ctx, prefixes[i], rev, out[i]); err != nil {
				return nil, 0, err
			}
		}
	}
	return out, rev, nil
}

// rest reads the pages of prefix after the keys in out, as of rev.
func (e *etcdKV) rest(ctx context.Context, prefix string, rev int64, out []pair) ([]pair, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	for {
		from := out[len(out)-1].Key + "\x00"
		res, err := e.c.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(e.page), clientv3.WithRev(rev))
		if err != nil {
			return nil, err
		}
		out = appendPairs(out, res.Kvs)
		if !res.More || len(res.Kvs) == 0 {
			return out, nil
		}
	}
}

func appendPairs(out []pair, kvs []*mvccpb.KeyValue) []pair {
	for _, k := range kvs {
		out = append(out, pair{Key: string(k.Key), Value: k.Value})
	}
	return out
}

func (e *etcdKV) watch(ctx context.Context, prefix string, rev int64) <-chan watchBatch {
	out := make(chan watchBatch, 16)
	go func() {
		defer close(out)
		// RequireLeader: a member cut off from its cluster ends the watch
		// instead of going silent.
		wc := e.c.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for res := range wc {
			if res.CompactRevision != 0 || errors.Is(res.Err(), rpctypes.ErrCompacted) {
				out <- watchBatch{Err: ErrCompacted}
				return
			}
			if err := res.Err(); err != nil {
				out <- watchBatch{Err: err}
				return
			}
			b := watchBatch{Rev: res.Header.Revision}
			for _, ev := range res.Events {
				b.Events = append(b.Events, event{Key: string(ev.Kv.Key), Value: ev.Kv.Value, Delete: ev.Type == clientv3.EventTypeDelete, Rev: ev.Kv.ModRevision})
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() == nil {
			out <- watchBatch{Err: errors.New("watch ended")}
		}
	}()
	return out
}

func (e *etcdKV) grant(ctx context.Context, ttl time.Duration) (int64, error) {
	res, err := e.c.Grant(ctx, int64(max(ttl/time.Second, 1)))
	if err != nil {
		return 0, err
	}
	return int64(res.ID), nil
}

func (e *etcdKV) keepAlive(ctx context.Context, lease int64) (<-chan struct{}, error) {
	ka, err := e.c.KeepAlive(ctx, clientv3.LeaseID(lease))
	if err != nil {
		return nil, err
	}
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		for range ka {
		}
	}()
	return lost, nil
}

func (e *etcdKV) leaseTTL(ctx context.Context, lease int64) (time.Duration, time.Duration, error) {
	res, err := e.c.TimeToLive(ctx, clientv3.LeaseID(lease))
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return 0, 0, nil
		}
		return 0, 0, err
	}
	return time.Duration(res.TTL) * time.Second, time.Duration(res.GrantedTTL) * time.Second, nil
}

func (e *etcdKV) revoke(ctx context.Context, lease int64) error {
	_, err := e.c.Revoke(ctx, clientv3.LeaseID(lease))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}

func (e *etcdKV) close() error { return e.c.Close() }
