package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Key layout, all under Prefix (docs/multihost.md):
//
//	nodes/<node>                          {"name","addr"}           under the node's lease
//	networks/<net>/config                 {"subnet","gateway","vni"} created once, checked by every host
//	vnis/<vni>                            <net>                      the VNI claim
//	networks/<net>/addrs/<ip>             {"node","owner"}          an address claim; stays until released or forgotten
//	networks/<net>/hosts/<node>           <node>                     this host has the network (no lease)
//	networks/<net>/endpoints/<node>/<ip>  {"ip","mac","node","vtep"} under no lease
//	subnets/<a.b.c.d_len>                 <net>                      a default subnet's claim
//	routes/<node>                         [prefix...]                the host's routes, under its lease
//	docker-networks/<net>                 {"name","options",...}     the network as Docker has it (dockernets.go)
//	tunnels/pool                          "a.b.c.d/len"              the hosts' tunnel addresses' pool (tunnels.go)
//	tunnels/addrs/<ip>                    <node>                     a host's tunnel address (no lease)
const Prefix = "/mynet/v1/"

// VNI range mynet picks from: above what switches commonly reserve, below
// the 24-bit limit.
const (
	minVNI = 4096
	maxVNI = 1<<24 - 1
)

// Config is what a Client needs.
type Config struct {
	// Endpoints are etcd's client URLs.
	Endpoints []string
	TLS       TLS
	// Node is this host's name in the cluster; Advertise its underlay
	// address, the VXLAN tunnel endpoint peers send to.
	Node      string
	Advertise netip.Addr
	// TTL is the node lease's: a host silent longer is gone for its peers.
	TTL time.Duration
	// SubnetPool and SubnetSize are the default pool of cluster networks
	// created without a subnet (subnets.go); an invalid pool means none.
	SubnetPool netip.Prefix
	SubnetSize int
	// SubnetPool6 and SubnetSize6 are the default IPv6 pool this host
	// proposes for the cluster (ipv6.go): the first host's proposal is
	// the cluster's. An invalid pool proposes a random ULA /48 (RFC 4193);
	// size 0 is 64.
	SubnetPool6 netip.Prefix
	SubnetSize6 int
	// TunnelPool is the pool of hosts' tunnel addresses this host would
	// choose for the cluster (tunnels.go); invalid: a /22 of SubnetPool.
	TunnelPool netip.Prefix
	// CallTimeout bounds every call that needs etcd (default 5 s), so a
	// Docker call fails with a clear error well inside Docker's 30 s.
	CallTimeout time.Duration
	Log         *logrus.Entry
}

// Client is one host's view of the cluster.
type Client struct {
	kv  kv
	cfg Config
	log *logrus.Entry

	mu    sync.Mutex // guards lease, ready, drop, epoch and maxRev
	lease int64
	ready chan struct{} // closed once this host is registered (lease set)
	drop  func()        // ends the current registration: closes what Register returned
	// epoch is the epoch record's value this host registered under, and
	// maxRev the highest revision it saw of etcd (epoch.go).
	epoch  string
	maxRev int64
	// wg is this host's WireGuard record (tunnels.go), nil without one;
	// guarded by mu.
	wg     *WireGuardInfo
	writes writeCount // this host's writes that committed, as its witness counts them (epoch.go)
}

// ErrUnavailable wraps failures to reach etcd.
var ErrUnavailable = errors.New("the cluster store (etcd) is unreachable")

// New connects to etcd. It does not wait for etcd: calls fail within
// CallTimeout while it is down.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints")
	}
	e, err := dialEtcd(cfg.Endpoints, cfg.TLS, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return newClient(e, cfg), nil
}

// NewWithStore returns a Client on an in-memory store (unit tests).
func NewWithStore(m *Memory, cfg Config) *Client { return newClient(m.kv, cfg) }

func newClient(k kv, cfg Config) *Client {
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	if cfg.TTL == 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	c := &Client{kv: k, cfg: cfg, log: cfg.Log, ready: make(chan struct{}), drop: func() {}}
	if cfg.Node != "" {
		c.kv = k.witnessed(c.markKey(), &c.writes)
	}
	return c
}

// waitLease returns this host's lease, waiting for a registration under way
// until ctx ends.
func (c *Client) waitLease(ctx context.Context) (int64, error) {
	for {
		c.mu.Lock()
		lease, ready := c.lease, c.ready
		c.mu.Unlock()
		if lease != 0 {
			return lease, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return 0, fmt.Errorf("%w yet (it registers as soon as etcd answers)", ErrNotRegistered)
		}
	}
}

// lostRegistration is for a call that found this host's record gone from
// the cluster: the registration ends (Register's channel closes), so the
// host registers again and reclaims its addresses at once.
func (c *Client) lostRegistration() {
	c.mu.Lock()
	drop := c.drop
	if c.lease != 0 {
		c.lease, c.ready = 0, make(chan struct{})
	}
	c.mu.Unlock()
	c.log.Warn("this host's registration is gone from the cluster; registering again")
	drop()
}

// Close releases the connection; the lease is left to expire (a restart
// within the TTL reuses it).
func (c *Client) Close() error { return c.kv.close() }

// Node is this host's name.
func (c *Client) Node() string { return c.cfg.Node }

// call runs fn with the call timeout and marks a failure to reach etcd.
// An attempt that etcd did not answer in half the timeout, or whose
// connection failed, is made again while the timeout lasts: of an etcd of
// several members, one that is down or cut off holds the requests sent on
// its connection until gRPC's keepalive gives up on it, while the balancer
// sends the next request to another member. Every fn given to call is safe to run again
// after an attempt whose answer was lost: reads, puts, compare-and-swaps
// that accept this host's own earlier write (claims, blocks, the network
// configuration), deletes. Register is not (callOnce).
func (c *Client) call(what string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CallTimeout)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, c.cfg.CallTimeout/2)
		err := fn(attempt)
		again := err != nil && unanswered(attempt, err)
		cancelAttempt()
		if !again {
			return c.unavailable(what, err)
		}
		c.log.WithError(err).WithField("call", what).Debug("etcd did not answer; trying again")
		select {
		case <-ctx.Done():
			return c.unavailable(what, err)
		case <-time.After(retryPause):
		}
	}
}

// retryPause spaces call's attempts: a member that refuses connections
// fails an attempt at once.
const retryPause = 100 * time.Millisecond

// callOnce is call with one attempt.
func (c *Client) callOnce(what string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CallTimeout)
	defer cancel()
	return c.unavailable(what, fn(ctx))
}

// unanswered tells whether an attempt's error is etcd not answering (the
// attempt's time ran out, or its connection failed), as opposed to an
// answer.
func unanswered(attempt context.Context, err error) bool {
	if attempt.Err() != nil {
		return true
	}
	var typed *clusterError
	if errors.As(err, &typed) {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	// A member that lost its leader, or whose proposal timed out with it.
	for _, e := range []error{rpctypes.ErrNoLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrTimeout,
		rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// unavailable marks a failure to reach etcd (any error but the cluster's
// own answers).
func (c *Client) unavailable(what string, err error) error {
	if err == nil {
		return nil
	}
	var typed *clusterError
	if errors.As(err, &typed) {
		return err
	}
	return fmt.Errorf("%s: %w (%w)", what, ErrUnavailable, err)
}

// clusterError is an answer from the cluster (a conflict, a mismatch), as
// opposed to a failure to reach it; kind, when set, is the sentinel it
// matches with errors.Is.
type clusterError struct {
	msg  string
	kind error
}

func (e *clusterError) Error() string { return e.msg }
func (e *clusterError) Unwrap() error { return e.kind }

func conflict(format string, args ...any) error {
	return &clusterError{msg: fmt.Sprintf(format, args...)}
}

// ErrNodeNameInUse is Register's answer when another live host holds this
// host's node name; ErrNodeAlive is Forget's when the host to forget is
// still registered.
var (
	ErrNodeNameInUse = errors.New("node name in use by a live host")
	ErrNodeAlive     = errors.New("node is alive")
)

// IsConflict reports whether err is the cluster's refusal rather than a
// failure to reach it.
func IsConflict(err error) bool {
	var ce *clusterError
	return errors.As(err, &ce)
}
