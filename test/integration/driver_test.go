package integration

import (
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	wiring "github.com/mynet/mynet/internal/daemon"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/nstest"
	"github.com/mynet/mynet/internal/store"
	"github.com/mynet/mynet/ipam"
)

func TestMain(m *testing.M) { nstest.Main(m) }

const (
	netID = "1111111111aa2222222222bb3333333333cc4444444444dd5555555555ee6666"
	epID  = "aaaaaaaaaa11bbbbbbbbbb22cccccccccc33dddddddddd44eeeeeeeeee55ffff"
)

// stack is the daemon's parts as main wires them (daemon.New), called
// directly, plus a netlink handle of the test's own for fixtures.
type stack struct {
	d     *wiring.Daemon
	links *netutil.Links
	drv   *driver.Driver
	alloc *ipam.Allocator
}

func newStack(t *testing.T, dir string) *stack {
	t.Helper()
	d, err := wiring.New(wiring.Config{StateDir: dir, IPTables: firewall.BackendAuto, Version: "test"}, logrus.NewEntry(logrus.StandardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	links, err := netutil.New()
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	s := &stack{d: d, links: links, drv: d.Driver(), alloc: d.IPAM()}
	t.Cleanup(func() {
		s.close()
		links.Close()
	})
	return s
}

// close stops the daemon's parts as a dying daemon would (the kernel state
// stays).
func (s *stack) close() { s.d.Close() }

func saveLines(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(out), "\n")
}

// taggedRules returns the iptables-save lines whose mynet tag starts with
// prefix (a network's tag, an endpoint's, or "mynet:" for all networks'
// and endpoints'); the shared rules (firewall.BaseTag) are baseRules'.
func taggedRules(t *testing.T, prefix string) []string {
	t.Helper()
	var rules []string
	for _, l := range saveLines(t) {
		if strings.HasPrefix(l, "-A") && strings.Contains(l, `--comment "`+prefix) && !strings.Contains(l, `"`+firewall.BaseTag+`"`) {
			rules = append(rules, l)
		}
	}
	return rules
}

// baseRules returns mynet's rules of no network: the jumps, the fixed
// chains and the shared rules.
func baseRules(t *testing.T) []string {
	t.Helper()
	var rules []string
	for _, l := range saveLines(t) {
		if strings.HasPrefix(l, "-A") && strings.Contains(l, "MYNET") &&
			(!strings.Contains(l, `--comment "mynet:`) || strings.Contains(l, `"`+firewall.BaseTag+`"`)) {
			rules = append(rules, l)
		}
	}
	return rules
}

func linkNames(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		if n := l.Attrs().Name; n != "lo" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

func TestNetworkAndEndpointInTheKernel(t *testing.T) {
	s := newStack(t, t.TempDir())
	// IPAM picks the pool and gateway the way dockerd asks for them.
	pool, err := s.alloc.RequestPool(&ipamapi.RequestPoolRequest{Pool: "10.123.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := s.alloc.RequestAddress(&ipamapi.RequestAddressRequest{PoolID: pool.PoolID,
		Options: map[string]string{ipam.OptRequestAddressType: ipam.GatewayAddressType}})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.alloc.RequestAddress(&ipamapi.RequestAddressRequest{PoolID: pool.PoolID})
	if err != nil {
		t.Fatal(err)
	}
	before := linkNames(t)

	err = s.drv.CreateNetwork(&network.CreateNetworkRequest{
		NetworkID: netID,
		Options:   map[string]any{"com.docker.network.generic": map[string]any{driver.OptMTU: "1450"}},
		IPv4Data:  []*network.IPAMData{{Pool: pool.Pool, Gateway: gw.Address}},
	})
	if err != nil {
		t.Fatal(err)
	}
	br, err := netlink.LinkByName("mn-1111111111aa")
	if err != nil {
		t.Fatalf("bridge missing: %v", err)
	}
	if _, ok := br.(*netlink.Bridge); !ok || br.Attrs().MTU != 1450 || br.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("bridge: type %s mtu %d flags %v", br.Type(), br.Attrs().MTU, br.Attrs().Flags)
	}
	addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.123.0.1/24" {
		t.Errorf("bridge addresses = %v", addrs)
	}
	tag := `"mynet:1111111111aa"`
	br0 := "mn-1111111111aa"
	wantRules := []string{
		`-A MYNET-INGRESS ! -i ` + br0 + ` -o ` + br0 + ` -m conntrack ! --ctstate DNAT -m comment --comment ` + tag + ` -j DROP`,
		`-A MYNET-POSTROUTING -s 10.123.0.0/24 ! -o ` + br0 + ` -m comment --comment ` + tag + ` -j MASQUERADE`,
		`-A MYNET-POSTROUTING -s 10.123.0.0/24 -o ` + br0 + ` -m conntrack --ctstate DNAT -m comment --comment ` + tag + ` -j MASQUERADE`,
	}
	if g := br.Attrs().Group; g != firewall.DefaultBridgeGroup {
		t.Errorf("bridge device group = %#x, want %#x", g, firewall.DefaultBridgeGroup)
	}
	if got := taggedRules(t, "mynet:1111111111aa"); !slices.Equal(got, wantRules) {
		t.Errorf("rules =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantRules, "\n"))
	}
	base := baseRules(t)
	for _, want := range []string{"-A FORWARD -j MYNET-FORWARD", "-A POSTROUTING -j MYNET-POSTROUTING", "-A DOCKER-USER -j MYNET-ISOLATION",
		"-A PREROUTING -m addrtype --dst-type LOCAL -j MYNET-DNAT", "-A MYNET-FORWARD -m connmark --mark 0x1000000/0x1000000 -j ACCEPT"} {
		if !slices.Contains(base, want) {
			t.Errorf("base rules lack %q:\n%s", want, strings.Join(base, "\n"))
		}
	}
	if v, _ := netutil.Sysctl("net/ipv4/ip_forward"); v != "1" {
		t.Errorf("ip_forward = %s", v)
	}

	res, err := s.drv.CreateEndpoint(&network.CreateEndpointRequest{NetworkID: netID, EndpointID: epID,
		Interface: &network.EndpointInterface{Address: addr.Address}})
	if err != nil {
		t.Fatal(err)
	}
	host, err := netlink.LinkByName("mnhaaaaaaaaaa11")
	if err != nil {
		t.Fatalf("host veth missing: %v", err)
	}
	peer, err := netlink.LinkByName("mncaaaaaaaaaa11")
	if err != nil {
		t.Fatalf("container veth missing: %v", err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index || host.Attrs().Flags&net.FlagUp == 0 || host.Attrs().MTU != 1450 {
		t.Errorf("host veth: master %d flags %v mtu %d", host.Attrs().MasterIndex, host.Attrs().Flags, host.Attrs().MTU)
	}
	if peer.Attrs().HardwareAddr.String() != res.Interface.MacAddress || res.Interface.MacAddress != "02:42:0a:7b:00:02" {
		t.Errorf("peer MAC %s, response MAC %s", peer.Attrs().HardwareAddr, res.Interface.MacAddress)
	}
	join, err := s.drv.Join(&network.JoinRequest{NetworkID: netID, EndpointID: epID, SandboxKey: "/x"})
	if err != nil || join.InterfaceName.SrcName != "mncaaaaaaaaaa11" || join.Gateway != "10.123.0.1" {
		t.Errorf("Join = %+v, %v", join, err)
	}

	// Publish a port: the host port is really held, and the DNAT rule is there.
	err = s.drv.ProgramExternalConnectivity(&network.ProgramExternalConnectivityRequest{NetworkID: netID, EndpointID: epID,
		Options: map[string]any{"com.docker.network.portmap": []any{
			map[string]any{"Proto": 6.0, "Port": 80.0, "HostIP": "127.0.0.1", "HostPort": 18080.0, "HostPortEnd": 18080.0},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := net.Listen("tcp4", "127.0.0.1:18080"); err == nil {
		l.Close()
		t.Error("published host port is not reserved")
	}
	// The DNAT, and (a loopback address) the drop of what comes for it
	// from elsewhere.
	dnat := `-A MYNET-DNAT -d 127.0.0.1/32 -p tcp -m tcp --dport 18080 -m comment --comment "mynet:1111111111aa:aaaaaaaaaa11" -j DNAT --to-destination 10.123.0.2:80`
	loopback := `-A MYNET-LOOPBACK -d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 18080 -m comment --comment "mynet:1111111111aa:aaaaaaaaaa11" -j DROP`
	if got := taggedRules(t, "mynet:1111111111aa:aaaaaaaaaa11"); !slices.Equal(got, []string{loopback, dnat}) {
		t.Errorf("endpoint rules = %v", got)
	}
	if v, _ := netutil.Sysctl("net/ipv4/conf/mn-1111111111aa/route_localnet"); v != "1" {
		t.Errorf("route_localnet = %q", v)
	}
	if err := s.drv.RevokeExternalConnectivity(&network.RevokeExternalConnectivityRequest{NetworkID: netID, EndpointID: epID}); err != nil {
		t.Fatal(err)
	}
	if got := taggedRules(t, "mynet:1111111111aa:aaaaaaaaaa11"); len(got) != 0 {
		t.Errorf("endpoint rules after revoke = %v", got)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:18080")
	if err != nil {
		t.Errorf("host port still held after revoke: %v", err)
	} else {
		l.Close()
	}

	// Teardown in Docker's order leaves exactly what was there before.
	if err := s.drv.Leave(&network.LeaveRequest{NetworkID: netID, EndpointID: epID}); err != nil {
		t.Fatal(err)
	}
	if err := s.drv.DeleteEndpoint(&network.DeleteEndpointRequest{NetworkID: netID, EndpointID: epID}); err != nil {
		t.Fatal(err)
	}
	if err := s.drv.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
		t.Fatal(err)
	}
	s.drv.Close() // wait for the background deletions
	if got := linkNames(t); !slices.Equal(got, before) {
		t.Errorf("links after teardown = %v, want %v", got, before)
	}
	if got := taggedRules(t, "mynet:"); len(got) != 0 {
		t.Errorf("rules after teardown:\n%s", strings.Join(got, "\n"))
	}
	if got := baseRules(t); !slices.Equal(got, base) {
		t.Errorf("base rules changed by teardown:\n%s", strings.Join(got, "\n"))
	}
}

func TestRejectedNetworkLeavesNothing(t *testing.T) {
	s := newStack(t, t.TempDir())
	before := linkNames(t)
	bad := []map[string]any{
		{driver.OptMTU: "abc"},
		{driver.OptBridgeName: "sixteen-bytes-xx"},
		{driver.OptEnableICC: "perhaps"},
	}
	for _, generic := range bad {
		err := s.drv.CreateNetwork(&network.CreateNetworkRequest{
			NetworkID: netID,
			Options:   map[string]any{"com.docker.network.generic": generic},
			IPv4Data:  []*network.IPAMData{{Pool: "10.124.0.0/24", Gateway: "10.124.0.1/24"}},
		})
		if err == nil {
			t.Errorf("%v accepted", generic)
		}
	}
	if got := linkNames(t); !slices.Equal(got, before) {
		t.Errorf("links after rejected creates = %v, want %v", got, before)
	}
	if got := taggedRules(t, "mynet:"); len(got) != 0 {
		t.Errorf("rules after rejected creates:\n%s", strings.Join(got, "\n"))
	}
}

// failingFirewall is the real firewall except that AddNetwork fails after
// doing its work, the worst moment for a rollback.
type failingFirewall struct{ *firewall.Firewall }

func (f failingFirewall) AddNetwork(n firewall.Network) error {
	if err := f.Firewall.AddNetwork(n); err != nil {
		return err
	}
	return errors.New("injected failure after programming the rules")
}

func TestFailedCreateIsRolledBackInTheKernel(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "mynet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	links, err := netutil.New()
	if err != nil {
		t.Fatal(err)
	}
	defer links.Close()
	fw, err := firewall.New(firewall.Config{})
	if err != nil {
		t.Fatal(err)
	}
	drv, err := driver.New(driver.Config{Store: st, Links: links, Firewall: failingFirewall{fw}, EnsureSysctl: netutil.EnsureSysctl})
	if err != nil {
		t.Fatal(err)
	}
	before := linkNames(t)
	for _, generic := range []map[string]any{{}, {driver.OptBridgeName: "tbrfail"}} {
		err = drv.CreateNetwork(&network.CreateNetworkRequest{
			NetworkID: netID,
			Options:   map[string]any{"com.docker.network.generic": generic},
			IPv4Data:  []*network.IPAMData{{Pool: "10.126.0.0/24", Gateway: "10.126.0.1/24"}},
		})
		if err == nil || !strings.Contains(err.Error(), "injected") {
			t.Fatalf("err = %v", err)
		}
		drv.Close()
		if got := linkNames(t); !slices.Equal(got, before) {
			t.Errorf("%v: links after rollback = %v, want %v", generic, got, before)
		}
		for _, r := range taggedRules(t, "mynet:1111111111aa") {
			t.Errorf("%v: rule left after rollback: %s", generic, r)
		}
	}
	if len(drv.Networks()) != 0 {
		t.Error("rolled-back network is still known")
	}
}

func TestUserNamedBridgeMynetCreatedIsRemoved(t *testing.T) {
	s := newStack(t, t.TempDir())
	before := linkNames(t)
	err := s.drv.CreateNetwork(&network.CreateNetworkRequest{
		NetworkID: netID,
		Options:   map[string]any{"com.docker.network.generic": map[string]any{driver.OptBridgeName: "tbrnew"}},
		IPv4Data:  []*network.IPAMData{{Pool: "10.127.0.0/24", Gateway: "10.127.0.1/24"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.drv.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
		t.Fatal(err)
	}
	s.drv.Close() // wait for the background deletions
	if got := linkNames(t); !slices.Equal(got, before) {
		t.Errorf("links = %v, want %v", got, before)
	}
	// A bridge the user made stays, without our address.
	if _, err := s.links.EnsureBridge(netutil.BridgeConfig{Name: "tbrmine"}); err != nil {
		t.Fatal(err)
	}
	err = s.drv.CreateNetwork(&network.CreateNetworkRequest{
		NetworkID: netID,
		Options:   map[string]any{"com.docker.network.generic": map[string]any{driver.OptBridgeName: "tbrmine"}},
		IPv4Data:  []*network.IPAMData{{Pool: "10.127.0.0/24", Gateway: "10.127.0.1/24"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.drv.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
		t.Fatal(err)
	}
	br, err := netlink.LinkByName("tbrmine")
	if err != nil {
		t.Fatalf("user's bridge was deleted: %v", err)
	}
	if addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4); len(addrs) != 0 {
		t.Errorf("user's bridge keeps our address: %v", addrs)
	}
	_ = s.links.DeleteLink("tbrmine")
}

func TestRestoreRebuildsAfterReboot(t *testing.T) {
	dir := t.TempDir()
	s := newStack(t, dir)
	err := s.drv.CreateNetwork(&network.CreateNetworkRequest{
		NetworkID: netID,
		IPv4Data:  []*network.IPAMData{{Pool: "10.125.0.0/24", Gateway: "10.125.0.1/24"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := append(baseRules(t), taggedRules(t, "mynet:")...)
	s.close()
	// A reboot: the bridge and every rule are gone, the state file is not.
	if err := s.links.DeleteLink("mn-1111111111aa"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-F"}, {"-X"}, {"-t", "nat", "-F"}, {"-t", "nat", "-X"}} {
		if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v %s", args, err, out)
		}
	}
	s2 := newStack(t, dir)
	if _, err := s2.drv.Restore(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s2.links.LinkExists("mn-1111111111aa"); !ok {
		t.Error("bridge not restored")
	}
	if got := append(baseRules(t), taggedRules(t, "mynet:")...); !slices.Equal(got, want) {
		t.Errorf("rules after restore =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := s2.drv.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
		t.Fatal(err)
	}
}
