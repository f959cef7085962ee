package firewall

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/sirupsen/logrus"
)

// batcher reads the whole ruleset of one family and writes a batch of
// changes atomically per table: iptables-save and iptables-restore --noflush.
type batcher interface {
	Save() (string, error)
	Restore(input string) error
}

// backend is one family's iptables.
type backend struct {
	family Family
	batch  batcher
	// ipt runs single iptables commands: the health check's look at the
	// chains. Batches of changes go through iptables-restore instead (see
	// doc.go). Nil in tests that fake the batcher.
	ipt *iptables.IPTables
	// cached is the ruleset as the last edit left it (see edit); nil: read
	// it again.
	cached ruleset
}

// Firewall programs mynet's rules for IPv4 and, where the host has
// ip6tables, IPv6.
type Firewall struct {
	v4, v6 *backend // v6 is nil when the host has no ip6tables
	kind   string   // the backend in use: nft, legacy or system
	log    *logrus.Entry
	// nftBridges names the bridges of a dockerd on nftables (nil: none).
	nftBridges func() []string
	// group is the device group of mynet's bridges (Config.BridgeGroup).
	group uint32
	// guard is the VXLAN guard in place (vxlan.go), nil without one.
	guard *VXLANGuard

	mu sync.Mutex // serializes our read-modify-write cycles on the rulesets
}

// Config is what a Firewall is built from.
type Config struct {
	// Backend is auto (the default), nft, legacy or system.
	Backend string
	// Observe, when set, is told the duration of every iptables-save
	// ("save") and iptables-restore ("restore") run, per family.
	Observe func(family, op string, took time.Duration)
	Log     *logrus.Entry
	// DockerNFTBridges, when set, names the bridges a dockerd with its
	// nftables backend has rules for (netutil.DockerNFTBridges); those in
	// iptables are read from the rulesets.
	DockerNFTBridges func() []string
	// BridgeGroup is the device group mynet's bridges are in (the links
	// side sets it); 0 means DefaultBridgeGroup.
	BridgeGroup uint32
}

// New returns a Firewall that drives iptables with the configured backend.
// Mixing backends breaks rules on both sides, so mynet must use the one
// dockerd uses; "auto" finds it.
func New(cfg Config) (*Firewall, error) {
	log := cfg.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	kind := cfg.Backend
	if kind == "" || kind == BackendAuto {
		kind = ChooseBackend(log)
	}
	v4, err := newExecBackend(IPv4, kind, cfg.Observe, log)
	if err != nil {
		return nil, err
	}
	v6, err := newExecBackend(IPv6, kind, cfg.Observe, log)
	if err != nil {
		log.WithError(err).Warn("no usable ip6tables; IPv6 networks cannot be created")
		v6 = nil
	}
	f := newFirewall(v4, v6, log, cfg.BridgeGroup)
	f.kind = kind
	f.nftBridges = cfg.DockerNFTBridges
	return f, nil
}

func newFirewall(v4, v6 *backend, log *logrus.Entry, group uint32) *Firewall {
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	if group == 0 {
		group = DefaultBridgeGroup
	}
	return &Firewall{v4: v4, v6: v6, log: log, group: group}
}

// BridgeGroup is the device group the rules expect mynet's bridges in.
func (f *Firewall) BridgeGroup() uint32 { return f.group }

// HasIPv6 reports whether IPv6 rules can be programmed.
func (f *Firewall) HasIPv6() bool { return f.v6 != nil }

func (f *Firewall) backends() []*backend {
	if f.v6 == nil {
		return []*backend{f.v4}
	}
	return []*backend{f.v4, f.v6}
}

// AddNetwork installs the network's rules in every family it has a subnet
// in, replacing rules that carry its tag (not its endpoints').
func (f *Firewall) AddNetwork(n Network) error {
	if err := n.Validate(); err != nil {
		return err
	}
	if n.Subnet6.IsValid() && f.v6 == nil {
		return errors.New("this host has no usable ip6tables for an IPv6 network")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.families(n) {
		rules := func(ruleset) []Rule { return n.Rules(b.family) }
		if err := f.apply(b, exactTag(Tag(n.ID)), rules); err != nil {
			return err
		}
	}
	return nil
}

// families are the backends of the families a network has a subnet in:
// an IPv4-only network never touches ip6tables.
func (f *Firewall) families(n Network) []*backend {
	var out []*backend
	for _, b := range f.backends() {
		if n.subnet(b.family).IsValid() {
			out = append(out, b)
		}
	}
	return out
}

// RemoveNetwork deletes every rule of the network and of its endpoints, in
// the families it has. A network without rules is not an error; rules left
// anywhere else are Reconcile's to find.
func (f *Firewall) RemoveNetwork(n Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	net := Tag(n.ID)
	match := func(tag string) bool { return tag == net || strings.HasPrefix(tag, net+":") }
	var errs []error
	for _, b := range f.families(n) {
		errs = append(errs, f.apply(b, match, nil))
	}
	return errors.Join(errs...)
}

// SetEndpoint replaces the endpoint's rules (its published ports) with those
// for e; with no ports it removes them.
func (f *Firewall) SetEndpoint(n Network, e Endpoint) error {
	if err := e.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.families(n) {
		rules := func(ruleset) []Rule { return e.Rules(n, b.family) }
		if err := f.apply(b, exactTag(EndpointTag(e.NetworkID, e.EndpointID)), rules); err != nil {
			return err
		}
	}
	return nil
}

func exactTag(tag string) func(string) bool { return func(t string) bool { return t == tag } }

// apply deletes the rules whose tag matches and adds the given ones, in one
// restore, which also repairs the base layout if it needs it (the shared
// rules only when they are missing: Reconcile keeps them current): one
// iptables-save and one iptables-restore in all. Caller holds f.mu.
func (f *Firewall) apply(b *backend, match func(tag string) bool, rules func(ruleset) []Rule) error {
	return b.edit("apply rules", false, func(rs ruleset, bt *batch) error {
		var add []Rule
		if rules != nil {
			add = rules(rs)
		}
		if len(add) > 0 {
			base := baseFixes(rs, bt, f.group)
			shared := sharedMissing(rs, bt, func() []Rule { return sharedRules(f.group, f.dockerBridges(rs)) })
			if base || shared {
				f.log.WithField("family", b.family.String()).Info("mynet chains and jumps (re)installed")
			}
		}
		for tname, t := range rs {
			for _, lines := range t.rules {
				for _, l := range lines {
					if tag, ok := commentTag(l); ok && match(tag) {
						bt.delete(tname, l)
					}
				}
			}
		}
		bt.add(add)
		return nil
	})
}
