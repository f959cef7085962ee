package firewall

import (
	"slices"
	"strings"
)

// Docker's bridges with names of the user's choosing
// (com.docker.network.bridge.name) are learned from the rules dockerd keeps
// for each of its bridges, never from the Docker API:
//
//   - 20.10: "-A FORWARD -o BR -j DOCKER" and
//     "-A DOCKER-ISOLATION-STAGE-2 -o BR -j DROP" in the filter table;
//   - Engine 28 and later, iptables: "-A DOCKER-BRIDGE -o BR -j DOCKER";
//   - Engine 28 and later, nftables: the chains filter-forward-in__BR of
//     table docker-bridges, which Config.DockerNFTBridges reads.
//
// Every reconcile reads them again (it has the ruleset anyway), so a Docker
// network created later is isolated from the next reconcile on.

// dockerBridges are the Docker bridges to isolate mynet's networks from in
// the family rs was saved from. Caller holds f.mu.
func (f *Firewall) dockerBridges(rs ruleset) []string {
	names := learnDockerBridges(rs)
	if f.nftBridges != nil {
		names = append(names, f.nftBridges()...)
	}
	return mergeDockerBridges(names)
}

// learnDockerBridges reads bridge names from dockerd's per-bridge rules.
func learnDockerBridges(rs ruleset) []string {
	t := rs["filter"]
	if t == nil {
		return nil
	}
	var out []string
	for chain, target := range map[string]string{"FORWARD": "DOCKER", "DOCKER-BRIDGE": "DOCKER", "DOCKER-ISOLATION-STAGE-2": "DROP"} {
		for _, l := range t.rules[chain] {
			if name, ok := outTo(l, target); ok {
				out = append(out, name)
			}
		}
	}
	return out
}

// outTo returns BR of a rule that is exactly "-A CHAIN -o BR -j TARGET".
func outTo(line, target string) (string, bool) {
	f := strings.Fields(line)
	if len(f) != 6 || f[2] != "-o" || f[4] != "-j" || f[5] != target {
		return "", false
	}
	return f[3], true
}

// mergeDockerBridges adds names to the defaults, sorted, without the ones
// the defaults cover and without any that is not a plain interface name.
func mergeDockerBridges(names []string) []string {
	out := slices.Clone(DefaultDockerBridges)
	var extra []string
	for _, n := range names {
		if n == "docker0" || strings.HasPrefix(n, "br-") || !safeToken(n) || len(n) > 15 || strings.ContainsAny(n, "+*") {
			continue
		}
		extra = append(extra, n)
	}
	slices.Sort(extra)
	return append(out, slices.Compact(extra)...)
}
