package firewall

import (
	"maps"
	"slices"
)

// State is one network with its endpoints, as the firewall should have it.
type State struct {
	Network   Network
	Endpoints []Endpoint
}

// Report says what a Reconcile repaired.
type Report struct {
	BaseFixed    bool     `json:"base_fixed"`              // chains or jumps had to be (re)installed
	Reapplied    []string `json:"reapplied,omitempty"`     // tags whose rules were missing or different
	OrphansFound []string `json:"orphans_found,omitempty"` // tags of networks or endpoints that no longer exist
}

// Changed reports whether anything was repaired.
func (r Report) Changed() bool {
	return r.BaseFixed || len(r.Reapplied) > 0 || len(r.OrphansFound) > 0
}

// Reconcile makes the rulesets exactly what the given states want, in one
// iptables-save and at most one iptables-restore per family: the base
// layout is repaired, every network's and endpoint's rules are rewritten
// where they are missing or differ (after `iptables -F`, say), and rules
// tagged for networks or endpoints that no longer exist are removed.
func (f *Firewall) Reconcile(states []State) (Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rep Report
	for _, b := range f.backends() {
		err := b.edit("reconcile rules", true, func(rs ruleset, bt *batch) error {
			if baseFixes(rs, bt, f.group) {
				rep.BaseFixed = true
			}
			want := wanted(states, b.family)
			want[BaseTag] = sharedRules(f.group, f.dockerBridges(rs))
			if g := f.guardRules(b.family); g != nil {
				want[VXLANTag] = g
			}
			reconcileTags(rs, bt, want, &rep)
			return nil
		})
		if err != nil {
			return rep, err
		}
	}
	// A tag repaired in both families is reported once.
	slices.Sort(rep.Reapplied)
	rep.Reapplied = slices.Compact(rep.Reapplied)
	slices.Sort(rep.OrphansFound)
	rep.OrphansFound = slices.Compact(rep.OrphansFound)
	return rep, nil
}

// sameRules compares the lines present for a tag with the rules wanted,
// ignoring order across chains but not within one.
func sameRules(have []string, want []Rule) bool {
	if len(have) != len(want) {
		return false
	}
	w := make([]string, len(want))
	for i, r := range want {
		w[i] = r.String()
	}
	h := slices.Clone(have)
	slices.Sort(h)
	slices.Sort(w)
	return slices.Equal(h, w)
}

// wanted is every network's and endpoint's rules in one family, as the
// states say.
func wanted(states []State, f Family) map[string][]Rule {
	want := map[string][]Rule{}
	for _, st := range states {
		want[Tag(st.Network.ID)] = st.Network.Rules(f)
		for _, e := range st.Endpoints {
			want[EndpointTag(e.NetworkID, e.EndpointID)] = e.Rules(st.Network, f)
		}
	}
	return want
}

// reconcileTags adds to bt what makes every tag's rules in rs those of
// want: orphan tags go, missing or different ones are rewritten.
func reconcileTags(rs ruleset, bt *batch, want map[string][]Rule, rep *Report) {
	// What is there, per tag, in save order, and per table.
	have := map[string][]string{}
	haveTable := map[string]map[string][]string{}
	for tname, t := range rs {
		for _, chain := range slices.Sorted(maps.Keys(t.rules)) {
			for _, l := range t.rules[chain] {
				if tag, ok := commentTag(l); ok {
					have[tag] = append(have[tag], l)
					if haveTable[tag] == nil {
						haveTable[tag] = map[string][]string{}
					}
					haveTable[tag][tname] = append(haveTable[tag][tname], l)
				}
			}
		}
	}
	drop := func(tag string) {
		for tname, lines := range haveTable[tag] {
			for _, l := range lines {
				bt.delete(tname, l)
			}
		}
	}
	for _, tag := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[tag]; !ok {
			rep.OrphansFound = append(rep.OrphansFound, tag)
			drop(tag)
		}
	}
	// The shared rules go first, where a fresh base puts them.
	tags := slices.Sorted(maps.Keys(want))
	if i := slices.Index(tags, BaseTag); i > 0 {
		tags = append([]string{BaseTag}, slices.Delete(tags, i, i+1)...)
	}
	for _, tag := range tags {
		if sameRules(have[tag], want[tag]) {
			continue
		}
		rep.Reapplied = append(rep.Reapplied, tag)
		drop(tag)
		bt.add(want[tag])
	}
}
