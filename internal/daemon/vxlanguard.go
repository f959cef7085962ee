package daemon

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/mynet/mynet/internal/firewall"
)

// vteps is the ipset of the hosts that may send this host VXLAN; vteps6
// an IPv6 underlay's (a set has one family).
const (
	vteps  = "mynet-vteps"
	vteps6 = "mynet-vteps6"
)

// vtepGuard is what guardVXLAN last did. Only clusterUpkeep's goroutine
// touches it.
type vtepGuard struct {
	on      bool
	members map[netip.Addr]bool // the live members last read from etcd
}

// guardVXLAN keeps VXLAN to this host's underlay address (on the VXLAN
// ports of its cluster networks: mynet's own, 4799, or IANA's 4789 for a
// network made before) for the cluster's members while it has cluster
// networks: the ipset holds the
// hosts registered now (as last read; etcd being down keeps the last
// list) and every VTEP of a peer the driver accepted (so a host
// cut off from etcd keeps its traffic), and one rule drops the rest. With
// no cluster network left, rule and set go.
func (d *Daemon) guardVXLAN() {
	set, other, syncSet := vteps, vteps6, d.links.SyncIPSet
	if d.underlay.Is6() {
		set, other, syncSet = vteps6, vteps, d.links.SyncIPSet6
	}
	log := d.log.WithField("ipset", set)
	ports, sealed := vxlanPorts(d.drv.Networks())
	if len(ports) == 0 && len(sealed) == 0 {
		if d.vteps.on {
			if err := d.fw.SetVXLANGuard(nil); err != nil {
				log.WithError(err).Warn("could not remove the VXLAN guard")
				return
			}
			if err := d.links.DestroyIPSet(set); err != nil {
				log.WithError(err).Warn("could not remove the VXLAN members' set")
			}
			d.vteps.on = false
		}
		return
	}
	nodes, err := d.clusterClient.Nodes()
	if err == nil {
		d.drv.SetLiveNodes(nodeNames(nodes))
	}
	var allowed map[netip.Addr]bool
	d.vteps.members, allowed = vxlanMembers(d.clusterClient.Node(), nodes, err == nil, d.vteps.members, d.drv.RemotePeers())
	if err := syncSet(set, slices.Collect(maps.Keys(allowed))); err != nil {
		log.WithError(err).Warn("could not update the VXLAN members' set; VXLAN is not guarded")
		return
	}
	g := &firewall.VXLANGuard{Local: d.underlay, Ports: ports, Set: set, Sealed: sealed}
	if len(sealed) > 0 {
		g.Tunnel = d.cfg.Cluster.Tunnel.Device
	}
	if err := d.fw.SetVXLANGuard(g); err != nil {
		log.WithError(err).Warn("could not install the VXLAN guard")
		return
	}
	if !d.vteps.on {
		// The other family's set, from before the underlay changed
		// family, matched by no rule now.
		_ = d.links.DestroyIPSet(other)
		log.WithField("members", len(allowed)).Info("VXLAN from hosts outside the cluster is dropped")
	}
	d.vteps.on = true
}

// destroyVTEPSets removes both families' sets of members (at shutdown,
// with no network left).
func (d *Daemon) destroyVTEPSets() {
	for _, set := range []string{vteps, vteps6} {
		if err := d.links.DestroyIPSet(set); err != nil {
			d.log.WithError(err).Warn("could not remove the VXLAN members' set")
		}
	}
}
