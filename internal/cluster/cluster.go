package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Key layout, all under Prefix (docs/multihost.md):
//
//	nodes/<node>                          {"name","addr"}           under the node's lease
//	networks/<net>/config                 {"subnet","gateway","vni"} created once, checked by every host
//	vnis/<vni>                            <net>                      the VNI claim
//	networks/<net>/addrs/<ip>             {"node","owner"}          an address claim; stays until released or forgotten
//	networks/<net>/hosts/<node>           <node>                     this host has the network (no lease)
//	networks/<net>/endpoints/<node>/<ip>  {"ip","mac","node","vtep"} under the node's lease
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

	mu    sync.Mutex // guards lease, ready and drop
	lease int64
	ready chan struct{} // closed once this host is registered (lease set)
	drop  func()        // ends the current registration: closes what Register returned
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
	return &Client{kv: k, cfg: cfg, log: cfg.Log, ready: make(chan struct{}), drop: func() {}}
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
func (c *Client) call(what string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CallTimeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		var typed *clusterError
		if errors.As(err, &typed) {
			return err
		}
		return fmt.Errorf("%s: %w (%w)", what, ErrUnavailable, err)
	}
	return nil
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

// NetworkSpec is a cluster network's shared configuration.
type NetworkSpec struct {
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	VNI     uint32       `json:"vni"`
}

func networkKey(net string) string { return Prefix + "networks/" + net + "/" }

// ValidName checks a cluster network's name: it becomes part of etcd keys.
func ValidName(name string) error {
	if name == "" || len(name) > 64 {
		return conflict("cluster network name %q must have 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return conflict("cluster network name %q may hold only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// EnsureNetwork creates the cluster network's configuration if it is absent
// and returns what the cluster has. A subnet or gateway that differs from
// the cluster's is refused with what to change; a zero gateway takes the
// cluster's (or the subnet's first address for a new network).
func (c *Client) EnsureNetwork(name string, subnet netip.Prefix, gateway netip.Addr) (NetworkSpec, error) {
	if err := ValidName(name); err != nil {
		return NetworkSpec{}, err
	}
	var spec NetworkSpec
	err := c.call("cluster network "+name, func(ctx context.Context) error {
		var err error
		spec, err = c.ensureNetwork(ctx, name, subnet, gateway)
		return err
	})
	return spec, err
}

// LookupNetwork returns the cluster network's configuration, if the
// cluster has one.
func (c *Client) LookupNetwork(name string) (spec NetworkSpec, found bool, err error) {
	if err := ValidName(name); err != nil {
		return NetworkSpec{}, false, err
	}
	cfgKey := networkKey(name) + "config"
	err = c.call("cluster network "+name, func(ctx context.Context) error {
		b, ok, err := c.kv.get(ctx, cfgKey)
		if err != nil || !ok {
			return err
		}
		found = true
		if err := json.Unmarshal(b, &spec); err != nil {
			return fmt.Errorf("decode %s: %w", cfgKey, err)
		}
		return nil
	})
	return spec, found, err
}

func (c *Client) ensureNetwork(ctx context.Context, name string, subnet netip.Prefix, gateway netip.Addr) (NetworkSpec, error) {
	check := func(have NetworkSpec) (NetworkSpec, error) {
		if subnet.IsValid() && have.Subnet != subnet.Masked() {
			return have, conflict("cluster network %s has subnet %s; this host asked for %s: create it with --subnet %s", name, have.Subnet, subnet, have.Subnet)
		}
		if gateway.IsValid() && have.Gateway != gateway {
			return have, conflict("cluster network %s has gateway %s; this host asked for %s: create it with --gateway %s (or none)", name, have.Gateway, gateway, have.Gateway)
		}
		return have, nil
	}
	cfgKey := networkKey(name) + "config"
	if b, ok, err := c.kv.get(ctx, cfgKey); err != nil {
		return NetworkSpec{}, err
	} else if ok {
		var have NetworkSpec
		if err := json.Unmarshal(b, &have); err != nil {
			return NetworkSpec{}, fmt.Errorf("decode %s: %w", cfgKey, err)
		}
		return check(have)
	}
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return NetworkSpec{}, conflict("cluster network %s does not exist yet: the first host must give its IPv4 --subnet", name)
	}
	subnet = subnet.Masked()
	if !gateway.IsValid() {
		gateway = subnet.Addr().Next()
	}
	if !subnet.Contains(gateway) {
		return NetworkSpec{}, conflict("gateway %s is not in subnet %s", gateway, subnet)
	}
	vni, err := c.claimVNI(ctx, name)
	if err != nil {
		return NetworkSpec{}, err
	}
	want := NetworkSpec{Subnet: subnet, Gateway: gateway, VNI: vni}
	b, _ := json.Marshal(want)
	created, existing, err := c.kv.create(ctx, cfgKey, b, 0)
	if err != nil {
		return NetworkSpec{}, err
	}
	if created {
		c.log.WithFields(logrus.Fields{"network": name, "subnet": subnet, "vni": vni}).Info("cluster network created")
		return want, nil
	}
	// Another host created it first: take its VNI, and give ours back
	// unless it is the same one (hosts racing for one network mostly pick
	// the same VNI, and then the claim is the winner's too).
	var have NetworkSpec
	if err := json.Unmarshal(existing, &have); err != nil {
		return NetworkSpec{}, fmt.Errorf("decode %s: %w", cfgKey, err)
	}
	if have.VNI != vni {
		_, _ = c.kv.deleteIf(ctx, vniKey(vni), []byte(name))
	}
	return check(have)
}

func vniKey(vni uint32) string { return fmt.Sprintf("%svnis/%d", Prefix, vni) }

// claimVNI claims a VNI for the network cluster-wide, starting from a hash
// of its name so that hosts racing for one network mostly agree.
func (c *Client) claimVNI(ctx context.Context, name string) (uint32, error) {
	h := fnv.New32a()
	h.Write([]byte(name))
	span := uint32(maxVNI - minVNI + 1)
	start := h.Sum32() % span
	for i := range uint32(64) {
		vni := minVNI + (start+i)%span
		ok, holder, err := c.kv.create(ctx, vniKey(vni), []byte(name), 0)
		if err != nil {
			return 0, err
		}
		if ok || string(holder) == name {
			return vni, nil
		}
	}
	return 0, conflict("no free VNI found for cluster network %s", name)
}

func hostKey(net, node string) string { return networkKey(net) + "hosts/" + node }

// JoinNetwork records that this host has the cluster network (a key of its
// own, under no lease: a host cut off from etcd still has it), so that its
// configuration stays while any host has it.
func (c *Client) JoinNetwork(name string) error {
	return c.call("record cluster network "+name+" on this host", func(ctx context.Context) error {
		return c.kv.put(ctx, hostKey(name, c.cfg.Node), []byte(c.cfg.Node), 0)
	})
}

// LeaveNetwork withdraws this host's record of the network and then
// removes the network's configuration and VNI claim if no host has the
// network any more and no address in it is claimed, in one transaction
// that checks both. It reports whether the configuration went.
func (c *Client) LeaveNetwork(name string) (deleted bool, err error) {
	err = c.call("delete cluster network "+name, func(ctx context.Context) error {
		if err := c.kv.deleteKeys(ctx, []string{hostKey(name, c.cfg.Node)}); err != nil {
			return err
		}
		cfgKey := networkKey(name) + "config"
		b, ok, err := c.kv.get(ctx, cfgKey)
		if err != nil || !ok {
			return err
		}
		var spec NetworkSpec
		if err := json.Unmarshal(b, &spec); err != nil {
			return err
		}
		deleted, err = c.kv.deleteIfEmpty(ctx, []string{cfgKey, vniKey(spec.VNI)},
			map[string][]byte{cfgKey: b, vniKey(spec.VNI): []byte(name)},
			[]string{networkKey(name) + "hosts/", networkKey(name) + "addrs/"})
		return err
	})
	return deleted, err
}

// addrClaim is the value of an address key.
type addrClaim struct {
	Node  string `json:"node"`
	Owner string `json:"owner"` // what this host claimed it for (an endpoint's MAC, "gateway")
}

func addrKey(net string, ip netip.Addr) string { return networkKey(net) + "addrs/" + ip.String() }

// ErrNotRegistered says this host's registration is not in the cluster:
// not made yet, or gone with etcd's data (or a forget). No address is
// claimed then: an etcd that lost its data would grant every claim,
// another host's live addresses included, until the hosts have claimed
// their addresses again after registering anew.
var ErrNotRegistered = errors.New("this host is not registered in the cluster")

// ClaimAddress claims ip in the network for this host, with one
// create-if-absent transaction that also requires this host's registration
// to be there under its lease: of hosts racing for one address exactly one
// wins, and a cluster that lost its data grants nothing until this host
// registered again (a claim waits for a registration under way, up to the
// call timeout). A claim this host already holds for the same owner is a
// success (a retried call); holder names who has it otherwise.
func (c *Client) ClaimAddress(net string, ip netip.Addr, owner string) (ok bool, holder string, err error) {
	mine, _ := json.Marshal(addrClaim{Node: c.cfg.Node, Owner: owner})
	err = c.call("claim "+ip.String()+" in cluster network "+net, func(ctx context.Context) error {
		lease, err := c.waitLease(ctx)
		if err != nil {
			return err
		}
		created, existing, registered, err := c.kv.createGuarded(ctx, addrKey(net, ip), mine, nodeKey(c.cfg.Node), lease)
		if err != nil {
			return err
		}
		if !registered {
			c.lostRegistration()
			return fmt.Errorf("%w: its record is gone from etcd (etcd lost its data, or the host was forgotten); it registers again and reclaims its addresses: retry in a few seconds", ErrNotRegistered)
		}
		if created || string(existing) == string(mine) {
			ok = true
			return nil
		}
		var have addrClaim
		_ = json.Unmarshal(existing, &have)
		holder = have.Node
		return nil
	})
	return ok, holder, err
}

// ReleaseAddress gives a claim of this host's back (compare-and-delete: a
// claim another host holds is left alone).
func (c *Client) ReleaseAddress(net string, ip netip.Addr, owner string) error {
	mine, _ := json.Marshal(addrClaim{Node: c.cfg.Node, Owner: owner})
	return c.call("release "+ip.String()+" in cluster network "+net, func(ctx context.Context) error {
		_, err := c.kv.deleteIf(ctx, addrKey(net, ip), mine)
		return err
	})
}

// Claimed lists the addresses claimed in the network, by any host, with
// the host that holds each.
func (c *Client) Claimed(net string) (map[netip.Addr]string, error) {
	claims, err := c.Claims(net)
	out := make(map[netip.Addr]string, len(claims))
	for ip, cl := range claims {
		out[ip] = cl.Node
	}
	return out, err
}

// Claim is an address claim: the host that holds it and what for (the
// endpoint's MAC, or the address itself when Docker gave none).
type Claim struct {
	Node, Owner string
}

// ClaimOf returns the claim of one address, if there is one.
func (c *Client) ClaimOf(net string, ip netip.Addr) (cl Claim, found bool, err error) {
	err = c.call("read the claim of "+ip.String()+" in cluster network "+net, func(ctx context.Context) error {
		b, ok, err := c.kv.get(ctx, addrKey(net, ip))
		if err != nil || !ok {
			return err
		}
		var a addrClaim
		_ = json.Unmarshal(b, &a)
		cl, found = Claim{Node: a.Node, Owner: a.Owner}, true
		return nil
	})
	return cl, found, err
}

// Claims lists the network's address claims, by any host, in one read.
func (c *Client) Claims(net string) (map[netip.Addr]Claim, error) {
	out := map[netip.Addr]Claim{}
	err := c.call("list addresses of cluster network "+net, func(ctx context.Context) error {
		pairs, _, err := c.kv.list(ctx, networkKey(net)+"addrs/")
		if err != nil {
			return err
		}
		for _, p := range pairs {
			ip, err := netip.ParseAddr(p.Key[strings.LastIndexByte(p.Key, '/')+1:])
			if err != nil {
				continue
			}
			var a addrClaim
			_ = json.Unmarshal(p.Value, &a)
			out[ip] = Claim{Node: a.Node, Owner: a.Owner}
		}
		return nil
	})
	return out, err
}
