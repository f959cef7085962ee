package integration

import (
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/firewall"
	"github.com/mynet/mynet/internal/nstest"
	"github.com/mynet/mynet/ipam"
	"github.com/mynet/mynet/netutil"
	"github.com/mynet/mynet/store"
)

func TestMain(m *testing.M) { nstest.Main(m) }

const (
	netID = "1111111111aa2222222222bb3333333333cc4444444444dd5555555555ee6666"
	epID  = "aaaaaaaaaa11bbbbbbbbbb22cccccccccc33dddddddddd44eeeeeeeeee55ffff"
)

type stack struct {
	st    *store.Bolt
	links *netutil.Links
	drv   *driver.Driver
	alloc *ipam.Allocator
}

func newStack(t *testing.T, dir string) *stack {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(dir, "mynet.db"))
	if err != nil {
		t.Fatal(err)
	}
	links, err := netutil.New()
	if err != nil {
		t.Fatal(err)
	}
	fw, err := firewall.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := ipam.New(ipam.Config{Store: st, HostRoutes: links.Routes})
	if err != nil {
		t.Fatal(err)
	}
	drv, err := driver.New(driver.Config{Store: st, Links: links, Firewall: fw, EnsureSysctl: netutil.EnsureSysctl})
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{st: st, links: links, drv: drv, alloc: alloc}
	t.Cleanup(s.close)
	return s
}

func (s *stack) close() {
	s.links.Close()
	s.st.Close()
}

// mynetRules returns the lines of iptables-save that belong to mynet.
func mynetRules(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-A") && strings.Contains(l, "MYNET") {
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
	wantRules := []string{
		`-A FORWARD -j MYNET-FORWARD`,
		`-A MYNET-FORWARD -o mn-1111111111aa -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "mynet:1111111111aa" -j ACCEPT`,
		`-A MYNET-FORWARD -i mn-1111111111aa -o mn-1111111111aa -m comment --comment "mynet:1111111111aa" -j ACCEPT`,
		`-A MYNET-FORWARD -i mn-1111111111aa ! -o mn-1111111111aa -m comment --comment "mynet:1111111111aa" -j ACCEPT`,
		`-A POSTROUTING -j MYNET-POSTROUTING`,
		`-A MYNET-POSTROUTING -s 10.123.0.0/24 ! -o mn-1111111111aa -m comment --comment "mynet:1111111111aa" -j MASQUERADE`,
	}
	if got := mynetRules(t); !slices.Equal(got, wantRules) {
		t.Errorf("rules =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantRules, "\n"))
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
	if got := linkNames(t); !slices.Equal(got, before) {
		t.Errorf("links after teardown = %v, want %v", got, before)
	}
	if got := mynetRules(t); !slices.Equal(got, []string{`-A FORWARD -j MYNET-FORWARD`, `-A POSTROUTING -j MYNET-POSTROUTING`}) {
		t.Errorf("rules after teardown:\n%s", strings.Join(got, "\n"))
	}
}

func TestRejectedNetworkLeavesNothing(t *testing.T) {
	s := newStack(t, t.TempDir())
	before, rulesBefore := linkNames(t), mynetRules(t)
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
	if got := mynetRules(t); len(got) > len(rulesBefore)+2 {
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
	fw, err := firewall.New(nil)
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
		if got := linkNames(t); !slices.Equal(got, before) {
			t.Errorf("%v: links after rollback = %v, want %v", generic, got, before)
		}
		for _, r := range mynetRules(t) {
			if strings.Contains(r, "mynet:1111111111aa") {
				t.Errorf("%v: rule left after rollback: %s", generic, r)
			}
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
	want := mynetRules(t)
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
	if err := s2.drv.Restore(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s2.links.LinkExists("mn-1111111111aa"); !ok {
		t.Error("bridge not restored")
	}
	if got := mynetRules(t); !slices.Equal(got, want) {
		t.Errorf("rules after restore =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := s2.drv.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
		t.Fatal(err)
	}
}
