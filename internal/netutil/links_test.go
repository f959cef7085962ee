package netutil

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mynet/mynet/internal/nstest"
	"github.com/mynet/mynet/internal/poll"
)

func TestMain(m *testing.M) { nstest.Main(m) }

func newLinks(t *testing.T) *Links {
	t.Helper()
	nstest.Require(t)
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func addrsOf(t *testing.T, name string) []string {
	t.Helper()
	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.IPNet.String())
	}
	slices.Sort(out)
	return out
}

func TestKernelEnsureBridgeCreatesAndAdopts(t *testing.T) {
	l := newLinks(t)
	t.Cleanup(func() { _ = l.DeleteLink("tbr0") })
	cfg := BridgeConfig{Name: "tbr0", MTU: 1400, Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.1/24")}, Group: 0x6d6e}
	created, err := l.EnsureBridge(cfg)
	if err != nil || !created {
		t.Fatalf("EnsureBridge = %v, %v; want created", created, err)
	}
	link, err := netlink.LinkByName("tbr0")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		t.Errorf("tbr0 is a %s", link.Type())
	}
	if link.Attrs().MTU != 1400 || link.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("mtu=%d flags=%v, want 1400 and up", link.Attrs().MTU, link.Attrs().Flags)
	}
	if got := addrsOf(t, "tbr0"); !slices.Equal(got, []string{"10.77.0.1/24"}) {
		t.Errorf("addresses = %v", got)
	}
	if link.Attrs().Group != 0x6d6e {
		t.Errorf("device group = %#x, want 0x6d6e", link.Attrs().Group)
	}
	// Again, after someone moved it to another group: accepted as it is,
	// nothing duplicated, the group set back.
	if err := netlink.LinkSetGroup(link, 7); err != nil {
		t.Fatal(err)
	}
	created, err = l.EnsureBridge(cfg)
	if err != nil || created {
		t.Fatalf("second EnsureBridge = %v, %v; want adopted", created, err)
	}
	if got := addrsOf(t, "tbr0"); len(got) != 1 {
		t.Errorf("addresses after second ensure = %v", got)
	}
	if g := groupOf(t, "tbr0"); g != 0x6d6e {
		t.Errorf("device group after second ensure = %#x, want 0x6d6e", g)
	}
	// Handed back: no address of ours, the default group.
	if err := l.ReleaseBridge("tbr0", cfg.Addrs, cfg.Group); err != nil {
		t.Fatal(err)
	}
	if got := addrsOf(t, "tbr0"); len(got) != 0 {
		t.Errorf("addresses after ReleaseBridge = %v", got)
	}
	if g := groupOf(t, "tbr0"); g != 0 {
		t.Errorf("device group after ReleaseBridge = %#x, want 0", g)
	}
}

func groupOf(t *testing.T, name string) uint32 {
	t.Helper()
	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return link.Attrs().Group
}

func TestKernelEnsureBridgeRefusesOtherLinkType(t *testing.T) {
	l := newLinks(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "tdum0"}, PeerName: "tdum1"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.DeleteLink("tdum0") })
	if _, err := l.EnsureBridge(BridgeConfig{Name: "tdum0"}); err == nil {
		t.Error("EnsureBridge adopted a veth")
	}
	if exists, bridge, err := l.IsBridge("tdum0"); err != nil || !exists || bridge {
		t.Errorf("IsBridge(veth) = %v %v %v", exists, bridge, err)
	}
}

func TestKernelVethLifecycle(t *testing.T) {
	l := newLinks(t)
	t.Cleanup(func() { _ = l.DeleteLink("tbr1") })
	if _, err := l.EnsureBridge(BridgeConfig{Name: "tbr1", MTU: 1450}); err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{0x02, 0x42, 10, 1, 2, 3}
	if err := l.AddVeth(VethConfig{HostName: "tvh0", PeerName: "tvc0", PeerMAC: mac, Bridge: "tbr1", Hairpin: true}); err != nil {
		t.Fatal(err)
	}
	host, err := netlink.LinkByName("tvh0")
	if err != nil {
		t.Fatal(err)
	}
	br, _ := netlink.LinkByName("tbr1")
	if host.Attrs().MasterIndex != br.Attrs().Index || host.Attrs().Flags&net.FlagUp == 0 || host.Attrs().MTU != 1450 {
		t.Errorf("host end: master=%d (bridge %d) flags=%v mtu=%d", host.Attrs().MasterIndex, br.Attrs().Index, host.Attrs().Flags, host.Attrs().MTU)
	}
	if pi, err := netlink.LinkGetProtinfo(host); err != nil || !pi.Hairpin {
		t.Errorf("hairpin mode: %+v, %v", pi, err)
	}
	// The bridge keeps its MTU when its last port goes.
	if err := l.DeleteLink("tvh0"); err != nil {
		t.Fatal(err)
	}
	if br, _ := netlink.LinkByName("tbr1"); br.Attrs().MTU != 1450 {
		t.Errorf("bridge MTU after its last port left = %d, want 1450", br.Attrs().MTU)
	}
	if err := l.AddVeth(VethConfig{HostName: "tvh0", PeerName: "tvc0", PeerMAC: mac, Bridge: "tbr1", Hairpin: true}); err != nil {
		t.Fatal(err)
	}
	peer, err := netlink.LinkByName("tvc0")
	if err != nil {
		t.Fatal(err)
	}
	if peer.Attrs().HardwareAddr.String() != mac.String() || peer.Attrs().MTU != 1450 {
		t.Errorf("peer: mac=%s mtu=%d", peer.Attrs().HardwareAddr, peer.Attrs().MTU)
	}
	// Re-created bridge: the surviving veth is re-attached.
	if err := l.DeleteLink("tbr1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.EnsureBridge(BridgeConfig{Name: "tbr1", MTU: 1450}); err != nil {
		t.Fatal(err)
	}
	if err := l.EnsurePort("tvh0", "tbr1"); err != nil {
		t.Fatal(err)
	}
	host, _ = netlink.LinkByName("tvh0")
	br, _ = netlink.LinkByName("tbr1")
	if host.Attrs().MasterIndex != br.Attrs().Index {
		t.Error("EnsurePort did not re-attach the veth")
	}
	if pi, err := netlink.LinkGetProtinfo(host); err != nil || !pi.Hairpin {
		t.Errorf("hairpin after EnsurePort: %+v, %v", pi, err)
	}
	if ports, err := l.BridgePorts("tbr1"); err != nil || !slices.Equal(ports, []string{"tvh0"}) {
		t.Errorf("BridgePorts(tbr1) = %v, %v", ports, err)
	}
	names, err := l.ListLinkNames("tv")
	if err != nil || !slices.Equal(names, []string{"tvc0", "tvh0"}) && !slices.Equal(names, []string{"tvh0", "tvc0"}) {
		t.Errorf("ListLinkNames = %v, %v", names, err)
	}
	// A second pair with a taken name fails and leaves nothing.
	if err := l.AddVeth(VethConfig{HostName: "tvh0", PeerName: "tvc1", Bridge: "tbr1"}); err == nil {
		t.Error("AddVeth with a taken name succeeded")
	}
	if ok, _ := l.LinkExists("tvc1"); ok {
		t.Error("failed AddVeth left its peer behind")
	}
	if err := l.DeleteLink("tvh0"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"tvh0", "tvc0"} {
		if ok, err := l.LinkExists(n); ok || err != nil {
			t.Errorf("%s still exists (%v)", n, err)
		}
	}
	if err := l.DeleteLink("tvh0"); err != nil {
		t.Errorf("deleting a missing link: %v", err)
	}
}

func TestKernelRoutesSeeConnectedSubnets(t *testing.T) {
	l := newLinks(t)
	t.Cleanup(func() { _ = l.DeleteLink("tbr2") })
	if _, err := l.EnsureBridge(BridgeConfig{Name: "tbr2", Addrs: []netip.Prefix{netip.MustParsePrefix("10.88.4.1/22")}}); err != nil {
		t.Fatal(err)
	}
	routes, err := l.Routes()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(routes, netip.MustParsePrefix("10.88.4.0/22")) {
		t.Errorf("routes %v lack 10.88.4.0/22", routes)
	}
}

func TestValidateName(t *testing.T) {
	for _, bad := range []string{"", "sixteen-bytes-xx", "a b", "../x", "a/b", "..", "x:y"} {
		if ValidateName(bad) == nil {
			t.Errorf("ValidateName(%q) accepted", bad)
		}
	}
	for _, good := range []string{"br0", "fifteen-bytes-x", "my_br-1.2"} {
		if err := ValidateName(good); err != nil {
			t.Errorf("ValidateName(%q): %v", good, err)
		}
	}
}

func TestKernelEnsureSysctlInOwnNamespace(t *testing.T) {
	nstest.Require(t)
	// ip_forward is per namespace: this changes only the test's namespace.
	if err := EnsureSysctl("net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := Sysctl("net/ipv4/ip_forward"); err != nil || v != "1" {
		t.Errorf("ip_forward = %q, %v", v, err)
	}
}

func TestKernelEnsureSysctlErrorsAreClear(t *testing.T) {
	nstest.Require(t)
	err := EnsureSysctl("net/ipv4/no-such-knob", "1")
	if err == nil || !strings.Contains(err.Error(), "net.ipv4.no-such-knob") {
		t.Errorf("missing sysctl: %v, want an error naming it", err)
	}
}

func TestKernelBridgeSettingsThroughNetlink(t *testing.T) {
	l := newLinks(t)
	t.Cleanup(func() { _ = l.DeleteLink("tbr3") })
	if _, err := l.EnsureBridge(BridgeConfig{Name: "tbr3"}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetRouteLocalnet("tbr3"); err != nil {
		t.Fatal(err)
	}
	if v, err := Sysctl("net/ipv4/conf/tbr3/route_localnet"); err != nil || v != "1" {
		t.Errorf("route_localnet = %q, %v", v, err)
	}
	if err := l.SetBridgeNetfilter("tbr3"); err != nil {
		t.Fatal(err)
	}
	link, err := netlink.LinkByName("tbr3")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		t.Fatalf("tbr3 is a %s", link.Type())
	}
	out, err := exec.Command("ip", "-d", "link", "show", "tbr3").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nf_call_iptables 1", "nf_call_ip6tables 1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bridge lacks %q:\n%s", want, out)
		}
	}
}

// A cluster network's VXLAN device: made on its bridge, entries for remote
// containers programmed, listed and removed, and a stale device with
// another VNI replaced.
func TestKernelVXLANDeviceAndPeers(t *testing.T) {
	l := newLinks(t)
	t.Cleanup(func() { _ = l.DeleteLink("tvx0"); _ = l.DeleteLink("tbrvx") })
	if _, err := l.EnsureBridge(BridgeConfig{Name: "tbrvx", MTU: 1450}); err != nil {
		t.Fatal(err)
	}
	// The underlay: an address on a link of this namespace.
	if _, err := l.EnsureBridge(BridgeConfig{Name: "tbrul", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24")}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.DeleteLink("tbrul") })
	local, mtu, err := l.Underlay("198.18.0.11")
	if err != nil || local != netip.MustParseAddr("198.18.0.11") || mtu != 1500 {
		t.Fatalf("Underlay(address) = %v %d %v", local, mtu, err)
	}
	if byName, _, err := l.Underlay("tbrul"); err != nil || byName != local {
		t.Errorf("Underlay(link name) = %v %v", byName, err)
	}
	if _, _, err := l.Underlay("203.0.113.9"); err == nil {
		t.Error("an address of no link was accepted as the underlay")
	}
	// An IPv6 underlay: an IPv6 address of a link, or a link's name when
	// it has only IPv6; never a link-local address.
	if _, err := l.EnsureBridge(BridgeConfig{Name: "tbrul6", Addrs: []netip.Prefix{netip.MustParsePrefix("fd00:198:18::11/64")}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.DeleteLink("tbrul6") })
	if got, _, err := l.Underlay("fd00:198:18::11"); err != nil || got != netip.MustParseAddr("fd00:198:18::11") {
		t.Errorf("Underlay(IPv6 address) = %v %v", got, err)
	}
	if got, _, err := l.Underlay("tbrul6"); err != nil || got != netip.MustParseAddr("fd00:198:18::11") {
		t.Errorf("Underlay(IPv6-only link) = %v %v", got, err)
	}
	if _, _, err := l.Underlay("fe80::1"); err == nil {
		t.Error("a link-local address was accepted as the underlay")
	}
	cfg := VXLANConfig{Name: "tvx0", VNI: 4242, Local: local, Bridge: "tbrvx", MTU: 1450}
	for range 2 { // idempotent
		if err := l.EnsureVXLAN(cfg); err != nil {
			t.Fatal(err)
		}
	}
	r := Peer{IP: netip.MustParseAddr("10.40.0.5"), MAC: net.HardwareAddr{0x02, 0x42, 10, 40, 0, 5}, VTEP: netip.MustParseAddr("198.18.0.12")}
	if err := l.SetPeers("tvx0", []Peer{r}); err != nil {
		t.Fatal(err)
	}
	// The address moved to another host: the entry follows.
	r.VTEP = netip.MustParseAddr("198.18.0.13")
	if err := l.SetPeers("tvx0", []Peer{r}); err != nil {
		t.Fatal(err)
	}
	got, err := l.Peers("tvx0")
	if err != nil || len(got) != 1 || got[0].IP != r.IP || got[0].MAC.String() != r.MAC.String() || got[0].VTEP != r.VTEP {
		t.Fatalf("Remotes = %+v, %v; want %+v", got, err, r)
	}
	out, _ := exec.Command("ip", "-d", "link", "show", "tvx0").Output()
	for _, want := range []string{"vxlan id 4242", "local 198.18.0.11", "dstport 4789", "nolearning", "proxy", "master tbrvx", "mtu 1450"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ip -d link show tvx0 lacks %q:\n%s", want, out)
		}
	}
	// The same container's IPv6 address: a neighbour of its own, one fdb
	// entry for both; deleting one address keeps the other's fdb entry.
	r6 := Peer{IP: netip.MustParseAddr("fd00:40::5"), MAC: r.MAC, VTEP: r.VTEP}
	if err := l.SetPeers("tvx0", []Peer{r6}); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Peers("tvx0"); err != nil || len(got) != 2 {
		t.Fatalf("with the IPv6 address too: %+v, %v", got, err)
	}
	r6.SharedMAC = true
	if err := l.DelPeer("tvx0", r6); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("bridge", "fdb", "show", "dev", "tvx0").Output(); !strings.Contains(string(out), r.MAC.String()+" dst 198.18.0.13") {
		t.Errorf("the IPv4 address's fdb entry went with the IPv6 address:\n%s", out)
	}
	if err := l.DelPeer("tvx0", r); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Peers("tvx0"); len(got) != 0 {
		t.Errorf("after DelPeer: %+v", got)
	}
	if err := l.DelPeer("tvx0", r); err != nil {
		t.Errorf("DelPeer of what is gone: %v", err)
	}
	// A leftover device with another VNI (a crash, a collision) is replaced.
	cfg.VNI = 4343
	if err := l.EnsureVXLAN(cfg); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("ip", "-d", "link", "show", "tvx0").Output(); !strings.Contains(string(out), "vxlan id 4343") {
		t.Errorf("stale device not replaced:\n%s", out)
	}
	// And one on another port (mynet's own, for a network made since).
	cfg.Port = 4799
	if err := l.EnsureVXLAN(cfg); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("ip", "-d", "link", "show", "tvx0").Output(); !strings.Contains(string(out), "dstport 4799") {
		t.Errorf("device on the old port not replaced:\n%s", out)
	}
}

// NoIPv6 (gateway mode isolated): the bridge carries no IPv6 address, not
// even the kernel's link-local one, and it comes up with a port on it.
func TestKernelEnsureBridgeWithoutIPv6(t *testing.T) {
	l := newLinks(t)
	t.Cleanup(func() { _ = l.DeleteLink("tbr6"); _ = l.DeleteLink("tv6h") })
	if _, err := l.EnsureBridge(BridgeConfig{Name: "tbr6", NoIPv6: true}); err != nil {
		t.Fatal(err)
	}
	if err := l.AddVeth(VethConfig{HostName: "tv6h", PeerName: "tv6c", Bridge: "tbr6"}); err != nil {
		t.Fatal(err)
	}
	// Reconcile adopts it again: still none.
	if _, err := l.EnsureBridge(BridgeConfig{Name: "tbr6", NoIPv6: true}); err != nil {
		t.Fatal(err)
	}
	link, err := netlink.LinkByName("tbr6")
	if err != nil {
		t.Fatal(err)
	}
	if addrs, err := netlink.AddrList(link, netlink.FAMILY_V6); err != nil || len(addrs) != 0 {
		t.Errorf("IPv6 addresses on the bridge: %v, %v", addrs, err)
	}
}

// The bridges of a dockerd on nftables are read from its table's chains.
func TestKernelDockerNFTBridges(t *testing.T) {
	nstest.Require(t)
	if got, err := DockerNFTBridges(); err != nil || len(got) != 0 {
		t.Fatalf("with no docker table: %v, %v", got, err)
	}
	script := "add table ip docker-bridges\n" +
		"add chain ip docker-bridges filter-forward-in__dockcustom0\n" +
		"add chain ip docker-bridges filter-forward-out__dockcustom0\n" +
		"add chain ip docker-bridges filter-FORWARD\n" +
		"add table ip6 docker-bridges\n" +
		"add chain ip6 docker-bridges filter-forward-in__br-0123456789ab\n" +
		"add table ip other\n" +
		"add chain ip other filter-forward-in__notdocker\n"
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	t.Cleanup(func() {
		for _, tbl := range []string{"ip docker-bridges", "ip6 docker-bridges", "ip other"} {
			_ = exec.Command("nft", append([]string{"delete", "table"}, strings.Fields(tbl)...)...).Run()
		}
	})
	got, err := DockerNFTBridges()
	if err != nil || !slices.Equal(got, []string{"br-0123456789ab", "dockcustom0"}) {
		t.Errorf("DockerNFTBridges = %v, %v", got, err)
	}
}

// SyncIPSet creates the set and keeps it exactly the members given;
// DestroyIPSet removes it, and a missing one is no error.
func TestKernelSyncIPSet(t *testing.T) {
	l := newLinks(t)
	a, b, c := netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.13")
	members := func() []string {
		t.Helper()
		res, err := l.h.IpsetList("mnt-set")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range res.Entries {
			out = append(out, e.IP.String())
		}
		slices.Sort(out)
		return out
	}
	for _, tt := range []struct {
		set  []netip.Addr
		want []string
	}{
		{[]netip.Addr{a, b}, []string{"198.18.0.11", "198.18.0.12"}},
		{[]netip.Addr{b, c, netip.MustParseAddr("fd00::1")}, []string{"198.18.0.12", "198.18.0.13"}},
		{nil, nil},
	} {
		if err := l.SyncIPSet("mnt-set", tt.set); err != nil {
			t.Fatal(err)
		}
		if got := members(); !slices.Equal(got, tt.want) {
			t.Errorf("after SyncIPSet(%v): %v, want %v", tt.set, got, tt.want)
		}
	}
	if err := l.DestroyIPSet("mnt-set"); err != nil {
		t.Fatal(err)
	}
	if err := l.DestroyIPSet("mnt-set"); err != nil {
		t.Errorf("destroying a missing set: %v", err)
	}
	// An IPv6 set (an IPv6 underlay's): IPv6 members only.
	t.Cleanup(func() { _ = l.DestroyIPSet("mnt-set6") })
	if err := l.SyncIPSet6("mnt-set6", []netip.Addr{a, netip.MustParseAddr("fd00:198:18::12"), netip.MustParseAddr("fd00:198:18::13")}); err != nil {
		t.Fatal(err)
	}
	res, err := l.h.IpsetList("mnt-set6")
	if err != nil {
		t.Fatal(err)
	}
	var got6 []string
	for _, e := range res.Entries {
		got6 = append(got6, e.IP.String())
	}
	slices.Sort(got6)
	if res.Family != unix.AF_INET6 || !slices.Equal(got6, []string{"fd00:198:18::12", "fd00:198:18::13"}) {
		t.Errorf("IPv6 set: family %d, members %v", res.Family, got6)
	}
}

// A gratuitous ARP from the bridge moves a container's cached neighbour
// entry to the new MAC; many go out of one socket, kept open between calls.
func TestKernelAnnounceARPUpdatesNeighbours(t *testing.T) {
	l := newLinks(t)
	t.Cleanup(func() { _ = l.DeleteLink("tbra"); _ = l.DeleteLink("tva0") })
	for _, args := range [][]string{
		{"link", "add", "tbra", "type", "bridge"},
		{"link", "add", "tva0", "type", "veth", "peer", "name", "tva1"},
		{"link", "set", "tva0", "master", "tbra", "up"},
		{"link", "set", "tbra", "up"},
		{"addr", "add", "10.78.0.2/24", "dev", "tva1"},
		{"link", "set", "tva1", "up"},
		{"neigh", "add", "10.78.0.7", "lladdr", "02:00:00:00:00:01", "dev", "tva1", "nud", "stale"},
		{"neigh", "add", "10.78.0.8", "lladdr", "02:00:00:00:00:01", "dev", "tva1", "nud", "stale"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	// Announced before the port forwards, the frames are dropped (seen
	// under a loaded CI): wait for the bridge to forward on tva0 and for
	// tva1 to have its carrier.
	ready := false
	for range 250 {
		port, _ := exec.Command("bridge", "link", "show", "dev", "tva0").Output()
		peer, _ := exec.Command("ip", "-o", "link", "show", "tva1").Output()
		if ready = strings.Contains(string(port), "state forwarding") && strings.Contains(string(peer), "state UP"); ready {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !ready {
		out, _ := exec.Command("bridge", "link", "show").Output()
		t.Fatalf("tva0 never forwarding with tva1 up:\n%s", out)
	}
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	for range 2 { // the second call reuses the socket
		if err := l.AnnounceARP("tbra", []Peer{
			{IP: netip.MustParseAddr("10.78.0.7"), MAC: mac("02:00:00:00:00:07")},
			{IP: netip.MustParseAddr("10.78.0.8"), MAC: mac("02:00:00:00:00:08")},
		}); err != nil {
			t.Fatal(err)
		}
	}
	for ip, want := range map[string]string{"10.78.0.7": "02:00:00:00:00:07", "10.78.0.8": "02:00:00:00:00:08"} {
		ok := false
		for range 50 {
			out, _ := exec.Command("ip", "neigh", "show", ip, "dev", "tva1").Output()
			if ok = strings.Contains(string(out), want); ok {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !ok {
			out, _ := exec.Command("ip", "neigh", "show", "dev", "tva1").Output()
			t.Errorf("%s not moved to %s:\n%s", ip, want, out)
		}
	}
	// An IPv6 address: a neighbour advertisement, which Linux takes only
	// with a valid checksum and hop limit 255.
	if out, err := exec.Command("ip", "neigh", "add", "fd00:78::7", "lladdr", "02:00:00:00:00:01", "dev", "tva1", "nud", "stale").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := l.AnnounceARP("tbra", []Peer{{IP: netip.MustParseAddr("fd00:78::7"), MAC: mac("02:00:00:00:00:77")}}); err != nil {
		t.Fatal(err)
	}
	ok := false
	for range 50 {
		out, _ := exec.Command("ip", "-6", "neigh", "show", "fd00:78::7", "dev", "tva1").Output()
		if ok = strings.Contains(string(out), "02:00:00:00:00:77"); ok {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !ok {
		out, _ := exec.Command("ip", "-6", "neigh", "show", "dev", "tva1").Output()
		t.Errorf("fd00:78::7 not moved by the advertisement:\n%s", out)
	}
	// The bridge's own address (a rebuilt bridge's gateway): at its MAC.
	if out, err := exec.Command("ip", "neigh", "add", "10.78.0.1", "lladdr", "02:00:00:00:00:01", "dev", "tva1", "nud", "stale").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	bridgeMAC, err := net.InterfaceByName("tbra")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AnnounceOwn("tbra", netip.MustParseAddr("10.78.0.1")); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, "10.78.0.1 at the bridge's MAC", time.Second, func() error {
		out, _ := exec.Command("ip", "neigh", "show", "10.78.0.1", "dev", "tva1").Output()
		if !strings.Contains(string(out), bridgeMAC.HardwareAddr.String()) {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
}
