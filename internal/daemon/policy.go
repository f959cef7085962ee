package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/status"
)

// The daemon's decisions, as pure functions of what it read: the rest of
// the package reads (the driver, etcd, the kernel's events) and acts.

// vxlanPorts are the VXLAN ports of the cluster networks among nets (a
// network's own, or IANA's for one made before mynet had a port of its
// own), sorted, each once: what the VXLAN guard covers; sealed those of
// encrypted networks, which only the WireGuard tunnel may carry. None of
// either: no cluster network, no guard.
func vxlanPorts(nets []driver.NetworkConfig) (ports, sealed []int) {
	for _, n := range nets {
		switch {
		case n.Cluster == "":
		case n.Encrypted:
			sealed = append(sealed, n.UDPPort())
		default:
			ports = append(ports, n.UDPPort())
		}
	}
	slices.Sort(ports)
	slices.Sort(sealed)
	return slices.Compact(ports), slices.Compact(sealed)
}

// vxlanMembers are the underlay addresses whose VXLAN this host accepts:
// the other hosts registered now (nodes, when they could be read; else
// the last members known, so etcd being down changes nothing) and every
// VTEP of a peer the driver accepted (a host cut off from etcd keeps its
// traffic). It returns the members to remember and the set to program.
func vxlanMembers(self string, nodes []cluster.NodeInfo, nodesRead bool, last map[netip.Addr]bool, peers map[string][]driver.Peer) (members, allowed map[netip.Addr]bool) {
	members = last
	if nodesRead {
		members = map[netip.Addr]bool{}
		for _, n := range nodes {
			if n.Name != self {
				members[n.Addr] = true
			}
		}
	}
	allowed = map[netip.Addr]bool{}
	for a := range members {
		allowed[a] = true
	}
	for _, ps := range peers {
		for _, p := range ps {
			allowed[p.VTEP] = true
		}
	}
	return members, allowed
}

// linkAction is what a link event calls for.
type linkAction int

const (
	linkIgnore       linkAction = iota
	linkReconcileNow            // a link of ours is gone: repair it at once
	// linkReconcileSoon: someone else's new bridge, perhaps a Docker
	// network's under a name of its user's; its rules, which say it is
	// Docker's, follow the bridge by a moment: reconcile then, to isolate
	// it.
	linkReconcileSoon
)

// linkEventAction decides on one link event: ours says whether the link is
// mynet's, group is the device group of mynet's bridges (a bridge in it is
// one of ours, going down as its network is deleted, say), and firstSeen,
// asked last and only of a bridge that may call for a reconcile, records
// it and says whether its events were not seen before (a bridge's many
// events, ports and state, ask for one reconcile).
func linkEventAction(ev netutil.LinkEvent, ours bool, group uint32, firstSeen func() bool) linkAction {
	switch {
	case ev.Deleted && ours:
		return linkReconcileNow
	case ev.Bridge && !ev.Deleted && ev.Master == 0 && ev.Group != group && !ours && firstSeen():
		return linkReconcileSoon
	}
	return linkIgnore
}

// clusterHosts is the hosts mynet status lists: those registered now
// (alive), and those that have peers here but no registration (not
// alive: their lease lapsed, their containers may run), by name.
func clusterHosts(nodes []cluster.NodeInfo, peers map[string][]status.Peer) []status.Host {
	var out []status.Host
	seen := map[string]bool{}
	for _, n := range nodes {
		if !seen[n.Name] {
			seen[n.Name] = true
			out = append(out, status.Host{Name: n.Name, Addr: n.Addr.String(), Alive: true})
		}
	}
	for _, ps := range peers {
		for _, p := range ps {
			if !seen[p.Node] {
				seen[p.Node] = true
				out = append(out, status.Host{Name: p.Node, Addr: p.VTEP.String(), Alive: false})
			}
		}
	}
	slices.SortFunc(out, func(a, b status.Host) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// namesOff says why names across hosts cannot work on this host ("" when
// they can): with a sandbox root (the managed plugin's view of the host's
// sandboxes) whose mount receives nothing from the host, the containers
// started after mynet would have no names of other hosts.
func namesOff(root string, receives func(string) (bool, string, error)) string {
	if root == "" {
		return ""
	}
	ok, why, err := receives(root)
	switch {
	case err != nil:
		return fmt.Sprintf("cannot tell whether --sandbox-root %s sees the host's sandboxes: %v", root, err)
	case !ok:
		return "--sandbox-root " + root + ": " + why
	}
	return ""
}
