package daemon

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/status"
)

func addrs(ss ...string) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, s := range ss {
		out[netip.MustParseAddr(s)] = true
	}
	return out
}

func TestVXLANMembers(t *testing.T) {
	t.Parallel()
	nodes := []cluster.NodeInfo{{Name: "self", Addr: netip.MustParseAddr("198.18.0.1")}, {Name: "b", Addr: netip.MustParseAddr("198.18.0.2")}}
	peers := map[string][]driver.Peer{"net1": {{Node: "c", VTEP: netip.MustParseAddr("198.18.0.3")}}}
	for _, c := range []struct {
		name             string
		nodes            []cluster.NodeInfo
		read             bool
		last             map[netip.Addr]bool
		peers            map[string][]driver.Peer
		members, allowed map[netip.Addr]bool
	}{
		// The registered hosts but this one, and the VTEPs of its peers
		// (host c's lease lapsed; its containers still send).
		{"nodes read", nodes, true, addrs("198.18.0.9"), peers, addrs("198.18.0.2"), addrs("198.18.0.2", "198.18.0.3")},
		// etcd down: the last members stay.
		{"nodes not read", nil, false, addrs("198.18.0.9"), peers, addrs("198.18.0.9"), addrs("198.18.0.9", "198.18.0.3")},
		// Alone in the cluster: nothing is accepted.
		{"alone", nodes[:1], true, nil, nil, addrs(), addrs()},
	} {
		members, allowed := vxlanMembers("self", c.nodes, c.read, c.last, c.peers)
		if !maps.Equal(members, c.members) || !maps.Equal(allowed, c.allowed) {
			t.Errorf("%s: members %v allowed %v, want %v %v", c.name, members, allowed, c.members, c.allowed)
		}
	}
}

func TestLinkEventAction(t *testing.T) {
	t.Parallel()
	const group = 7
	seen := map[string]bool{}
	first := func(name string) func() bool {
		return func() bool {
			was := seen[name]
			seen[name] = true
			return !was
		}
	}
	for _, c := range []struct {
		name string
		ev   netutil.LinkEvent
		ours bool
		want linkAction
	}{
		{"our veth deleted", netutil.LinkEvent{Name: "mnh1", Deleted: true}, true, linkReconcileNow},
		{"our bridge deleted", netutil.LinkEvent{Name: "mn-1", Deleted: true, Bridge: true}, true, linkReconcileNow},
		{"someone's link deleted", netutil.LinkEvent{Name: "eth9", Deleted: true}, false, linkIgnore},
		{"a new bridge of someone's", netutil.LinkEvent{Name: "br-x", Bridge: true}, false, linkReconcileSoon},
		{"the same bridge again (a port, a state)", netutil.LinkEvent{Name: "br-x", Bridge: true}, false, linkIgnore},
		{"a bridge in mynet's group", netutil.LinkEvent{Name: "mn-2", Bridge: true, Group: group}, false, linkIgnore},
		{"a bridge that is a port", netutil.LinkEvent{Name: "br-y", Bridge: true, Master: 3}, false, linkIgnore},
		{"our own bridge changing", netutil.LinkEvent{Name: "mn-3", Bridge: true}, true, linkIgnore},
		{"a veth appearing", netutil.LinkEvent{Name: "veth1"}, false, linkIgnore},
	} {
		if got := linkEventAction(c.ev, c.ours, group, first(c.ev.Name)); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if seen["mn-2"] || seen["br-y"] || seen["mn-3"] {
		t.Errorf("bridges that call for nothing were recorded as seen: %v", seen)
	}
}

func TestClusterHosts(t *testing.T) {
	t.Parallel()
	nodes := []cluster.NodeInfo{{Name: "b", Addr: netip.MustParseAddr("198.18.0.2")}, {Name: "a", Addr: netip.MustParseAddr("198.18.0.1")}}
	peers := map[string][]status.Peer{
		"n1": {{Node: "b", VTEP: netip.MustParseAddr("198.18.0.2")}, {Node: "c", VTEP: netip.MustParseAddr("198.18.0.3")}},
		"n2": {{Node: "c", VTEP: netip.MustParseAddr("198.18.0.3")}},
	}
	want := []status.Host{{Name: "a", Addr: "198.18.0.1", Alive: true}, {Name: "b", Addr: "198.18.0.2", Alive: true}, {Name: "c", Addr: "198.18.0.3"}}
	if got := clusterHosts(nodes, peers); !slices.Equal(got, want) {
		t.Errorf("hosts %v, want %v", got, want)
	}
	if got := clusterHosts(nil, nil); len(got) != 0 {
		t.Errorf("no hosts: %v", got)
	}
}

func TestNamesOff(t *testing.T) {
	t.Parallel()
	receives := func(ok bool, why string, err error) func(string) (bool, string, error) {
		return func(string) (bool, string, error) { return ok, why, err }
	}
	if got := namesOff("", receives(false, "never asked", nil)); got != "" {
		t.Errorf("a plain daemon (no sandbox root): %q, want on", got)
	}
	if got := namesOff("/host/docker/netns", receives(true, "", nil)); got != "" {
		t.Errorf("a mount that receives: %q, want on", got)
	}
	if got := namesOff("/host/docker/netns", receives(false, "the mount at /host/docker is private", nil)); !strings.Contains(got, "/host/docker/netns") || !strings.Contains(got, "private") {
		t.Errorf("a private mount: %q, want it named, and why", got)
	}
	if got := namesOff("/host/docker/netns", receives(false, "", errors.New("no mountinfo"))); !strings.Contains(got, "no mountinfo") {
		t.Errorf("mountinfo unreadable: %q", got)
	}
}

func TestVXLANPorts(t *testing.T) {
	t.Parallel()
	nets := []driver.NetworkConfig{
		{ID: "local"}, // no cluster: not guarded
		{ID: "a", Cluster: "blue", VXLANPort: cluster.DefaultVXLANPort},
		{ID: "b", Cluster: "green", VXLANPort: cluster.DefaultVXLANPort},
		{ID: "old", Cluster: "red"}, // made before mynet had a port: IANA's
		{ID: "sealed", Cluster: "black", VXLANPort: cluster.DefaultVXLANPort, Encrypted: true},
	}
	ports, sealed := vxlanPorts(nets)
	if want := []int{netutil.VXLANPort, cluster.DefaultVXLANPort}; !slices.Equal(ports, want) {
		t.Errorf("vxlanPorts = %v, want %v", ports, want)
	}
	if want := []int{netutil.SealedVXLANPort}; !slices.Equal(sealed, want) {
		t.Errorf("sealed ports = %v, want %v: an encrypted network's VXLAN is only the tunnel's", sealed, want)
	}
	if ports, sealed := vxlanPorts(nets[:1]); len(ports)+len(sealed) != 0 {
		t.Errorf("no cluster network, ports %v %v: a guard with nothing to guard", ports, sealed)
	}
}
