package driver

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/ids"
)

// Report says what a Reconcile found and repaired.
type Report struct {
	Networks          int             `json:"networks"`
	Endpoints         int             `json:"endpoints"`
	InterruptedCalls  []string        `json:"interrupted_calls,omitempty"` // creates and deletes a crash cut short, now finished
	BridgesRestored   []string        `json:"bridges_restored,omitempty"`  // bridges that were missing
	VethsReattached   []string        `json:"veths_reattached,omitempty"`  // surviving veths put back on their bridge
	StaleEndpoints    []string        `json:"stale_endpoints,omitempty"`   // endpoints whose veth is gone; kept until Docker deletes them
	OrphanLinksRemove []string        `json:"orphan_links_removed,omitempty"`
	PeersReprogrammed []string        `json:"peers_reprogrammed,omitempty"` // cluster networks: VXLAN entries rewritten
	Firewall          firewall.Report `json:"firewall"`
}

// reportKinds is every kind of finding a Report holds, listed once: the
// metric's kind label ("" for what is reported but not a repair), the
// log's words, and the items. Changed, Repairs and summary all read it.
var reportKinds = []struct {
	metric, words string
	items         func(r *Report) []string
}{
	{"interrupted_call", "interrupted calls finished", func(r *Report) []string { return r.InterruptedCalls }},
	{"bridge_restored", "bridges restored", func(r *Report) []string { return r.BridgesRestored }},
	{"veth_reattached", "veths reattached", func(r *Report) []string { return r.VethsReattached }},
	{"orphan_link", "orphan links removed", func(r *Report) []string { return r.OrphanLinksRemove }},
	{"peer_reprogrammed", "peers reprogrammed", func(r *Report) []string { return r.PeersReprogrammed }},
	{"", "stale endpoints", func(r *Report) []string { return r.StaleEndpoints }},
	{"iptables_base", "iptables chains and jumps reinstalled", func(r *Report) []string {
		if r.Firewall.BaseFixed {
			return []string{"(all)"}
		}
		return nil
	}},
	{"iptables_rules", "rules rewritten", func(r *Report) []string { return r.Firewall.Reapplied }},
	{"iptables_orphan", "orphan rules removed", func(r *Report) []string { return r.Firewall.OrphansFound }},
}

// Changed reports whether anything was repaired.
func (r Report) Changed() bool {
	for _, n := range r.Repairs() {
		if n > 0 {
			return true
		}
	}
	return false
}

// Names of the links mynet makes: bridges it names itself and both veth ends.
var ownLink = regexp.MustCompile(`^(mn-|` + HostVethPrefix + `|` + PeerVethPrefix + `|` + VXLANPrefix + `)[0-9A-Za-z]{12}$`)

// Restore brings the kernel back to what the store says before the daemon
// answers its first call: calls a crash cut short are finished, then
// Reconcile rebuilds bridges, rules and veth attachments and removes
// leftovers, and the published ports get their host port reservations back.
// It is what makes a host reboot, a kill -9 or an `iptables -F` harmless.
func (d *Driver) Restore() (Report, error) {
	d.opsMu.Lock()
	var interrupted []string
	var errs []error
	d.mu.Lock()
	for id, n := range d.networks {
		if n.Phase == "" {
			continue
		}
		// A create or delete that crashed: either way the network goes;
		// dockerd retries a create it saw fail, and forgot a failed delete.
		eps := d.networkEndpoints(id)
		if err := d.teardownNetwork(n, eps); err != nil {
			errs = append(errs, err)
		}
		if err := d.deleteNetworkRecords(id, eps); err != nil {
			errs = append(errs, err)
			continue
		}
		d.dropNetwork(id, eps)
		interrupted = append(interrupted, n.Phase+" "+ids.Short(id))
	}
	d.mu.Unlock()
	d.opsMu.Unlock()

	rep, err := d.Reconcile()
	rep.InterruptedCalls = interrupted
	errs = append(errs, err)

	d.mu.Lock()
	for _, ep := range d.endpoints {
		n := d.networks[ep.NetworkID]
		if n == nil || len(ep.Ports) == 0 {
			continue
		}
		if err := d.reservePorts(&n.Config, ep); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", ids.Short(ep.ID), err))
		}
	}
	d.mu.Unlock()
	d.log.WithField("networks", rep.Networks).WithField("endpoints", rep.Endpoints).
		WithField("interrupted", len(interrupted)).Info("restored state")
	return rep, errors.Join(errs...)
}

// Reconcile compares the store with the kernel and repairs the difference:
// missing bridges and their addresses come back, surviving veths of stored
// endpoints are put back on their bridge, links named like mynet's that
// belong to no stored network or endpoint are deleted, and the firewall is
// reconciled (chains, jumps, every network's and endpoint's rules, orphan
// rules). It waits for calls in progress and holds new ones off while it
// runs. It never touches IPAM: addresses are Docker's to release.
func (d *Driver) Reconcile() (Report, error) {
	d.opsMu.Lock()
	defer d.opsMu.Unlock()
	d.mu.Lock()
	nets := make([]*netState, 0, len(d.networks))
	for _, n := range d.networks {
		cp := *n
		nets = append(nets, &cp)
	}
	eps := make([]Endpoint, 0, len(d.endpoints))
	for _, ep := range d.endpoints {
		eps = append(eps, *ep)
	}
	d.mu.Unlock()

	rep := Report{Networks: len(nets), Endpoints: len(eps)}
	var errs []error
	present, err := d.links.ListLinkNames("mn")
	if err != nil {
		return rep, err
	}
	byNet := map[string]*netState{}
	broken := map[string]bool{} // networks whose bridge could not be set up
	for _, n := range nets {
		byNet[n.Config.ID] = n
		if !slices.Contains(present, n.Config.BridgeName) {
			rep.BridgesRestored = append(rep.BridgesRestored, n.Config.BridgeName)
		}
		if err := d.setupBridge(&n.Config); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", ids.Short(n.Config.ID), err))
			broken[n.Config.ID] = true
			continue
		}
	}
	mine := map[string]bool{}
	for _, n := range nets {
		mine[n.Config.BridgeName] = true
		if n.Config.VXLAN != "" {
			mine[n.Config.VXLAN] = true
		}
	}
	states := map[string]*firewall.State{}
	for _, n := range nets {
		states[n.Config.ID] = &firewall.State{Network: firewallNetwork(&n.Config)}
	}
	for _, ep := range eps {
		mine[ep.HostVeth], mine[ep.PeerVeth] = true, true
		n := byNet[ep.NetworkID]
		if n == nil {
			continue
		}
		states[ep.NetworkID].Endpoints = append(states[ep.NetworkID].Endpoints, firewallEndpoint(&ep, ep.Ports))
		if !slices.Contains(present, ep.HostVeth) {
			rep.StaleEndpoints = append(rep.StaleEndpoints, ids.Short(ep.ID))
			continue
		}
		if !slices.Contains(rep.BridgesRestored, n.Config.BridgeName) {
			continue
		}
		if err := d.links.EnsurePort(ep.HostVeth, n.Config.BridgeName); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", ids.Short(ep.ID), err))
			continue
		}
		rep.VethsReattached = append(rep.VethsReattached, ep.HostVeth)
	}
	// A rebuilt bridge has a new MAC: its containers hear the gateway is
	// there now, instead of finding out when their entry goes stale.
	for _, n := range nets {
		gw := n.Config.Gateway.Addr()
		if !slices.Contains(rep.BridgesRestored, n.Config.BridgeName) || broken[n.Config.ID] || !gw.Is4() || n.Config.InhibitIPv4 {
			continue
		}
		if err := d.links.AnnounceOwn(n.Config.BridgeName, gw); err != nil {
			d.log.WithError(err).WithField("bridge", n.Config.BridgeName).Debug("could not announce the rebuilt bridge's gateway")
		}
	}
	for _, name := range present {
		if ownLink.MatchString(name) && !mine[name] {
			if err := d.links.DeleteLink(name); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.OrphanLinksRemove = append(rep.OrphanLinksRemove, name)
		}
	}
	for _, n := range nets {
		if n.Config.VXLAN == "" || broken[n.Config.ID] {
			continue
		}
		cn := d.clusterNet(n.Config.ID)
		if cn == nil {
			continue
		}
		fixed, err := cn.Reprogram()
		if err != nil {
			errs = append(errs, fmt.Errorf("network %s: peers: %w", ids.Short(n.Config.ID), err))
		}
		if fixed > 0 {
			rep.PeersReprogrammed = append(rep.PeersReprogrammed, fmt.Sprintf("%s:%d", n.Config.VXLAN, fixed))
		}
	}
	var fwStates []firewall.State
	for _, n := range nets {
		fwStates = append(fwStates, *states[n.Config.ID])
	}
	rep.Firewall, err = d.fw.Reconcile(fwStates)
	errs = append(errs, err)

	if rep.Changed() {
		d.log.WithField("report", rep.summary()).Warn("reconcile repaired the kernel state")
	}
	return rep, errors.Join(errs...)
}

// Repairs counts what was repaired, by kind, for metrics.
func (r Report) Repairs() map[string]int {
	out := map[string]int{}
	for _, k := range reportKinds {
		if k.metric != "" {
			out[k.metric] = len(k.items(&r))
		}
	}
	return out
}

func (r Report) summary() string {
	var parts []string
	for _, k := range reportKinds {
		switch items := k.items(&r); {
		case len(items) == 0:
		case k.metric == "iptables_base":
			parts = append(parts, k.words)
		default:
			parts = append(parts, fmt.Sprintf("%s: %s", k.words, strings.Join(items, " ")))
		}
	}
	return strings.Join(parts, "; ")
}
