package driver

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/hostport"
	"github.com/mynet/mynet/internal/netutil"
)

// fakeLinks is an in-memory kernel for unit tests: links by name.
type fakeLinks struct {
	mu        sync.Mutex
	links     map[string]string                      // name -> kind ("bridge", "veth", "other")
	addrs     map[string]map[netip.Prefix]bool       // name -> addresses
	peers     map[string]string                      // veth end -> other end
	failOn    map[string]error                       // method -> error to return
	settings  map[string]bool                        // bridge/setting -> on
	remotes   map[string]map[netip.Addr]netutil.Peer // VXLAN device -> programmed remotes
	vxlans    []netutil.VXLANConfig                  // every EnsureVXLAN call
	announced []string                               // AnnounceARP calls, "IP@MAC"
	calls     map[string]int                         // calls of the remote-endpoint methods, by name
}

var _ linksAPI = (*fakeLinks)(nil)

func newFakeLinks() *fakeLinks {
	return &fakeLinks{links: map[string]string{}, addrs: map[string]map[netip.Prefix]bool{}, peers: map[string]string{}, failOn: map[string]error{}}
}

func (f *fakeLinks) EnsureBridge(cfg netutil.BridgeConfig) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failOn["EnsureBridge"]; err != nil {
		return false, err
	}
	kind, ok := f.links[cfg.Name]
	if ok && kind != "bridge" {
		return false, fmt.Errorf("link %q exists and is not a bridge", cfg.Name)
	}
	f.links[cfg.Name] = "bridge"
	if f.addrs[cfg.Name] == nil {
		f.addrs[cfg.Name] = map[netip.Prefix]bool{}
	}
	for _, a := range cfg.Addrs {
		f.addrs[cfg.Name][a] = true
	}
	return !ok, nil
}

func (f *fakeLinks) ReleaseBridge(name string, addrs []netip.Prefix, _ uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range addrs {
		delete(f.addrs[name], a)
	}
	return nil
}

func (f *fakeLinks) DeleteLink(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failOn["DeleteLink"]; err != nil {
		return err
	}
	delete(f.links, name)
	delete(f.addrs, name)
	if p, ok := f.peers[name]; ok {
		delete(f.links, p)
		delete(f.peers, p)
		delete(f.peers, name)
	}
	return nil
}

func (f *fakeLinks) AddVeth(cfg netutil.VethConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failOn["AddVeth"]; err != nil {
		return err
	}
	if f.links[cfg.Bridge] != "bridge" {
		return fmt.Errorf("no bridge %q", cfg.Bridge)
	}
	if _, ok := f.links[cfg.HostName]; ok {
		return errors.New("file exists")
	}
	f.links[cfg.HostName], f.links[cfg.PeerName] = "veth", "veth"
	f.peers[cfg.HostName], f.peers[cfg.PeerName] = cfg.PeerName, cfg.HostName
	return nil
}

func (f *fakeLinks) LinkExists(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.links[name]
	return ok, nil
}

func (f *fakeLinks) IsBridge(name string) (bool, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kind, ok := f.links[name]
	return ok, kind == "bridge", nil
}

func (f *fakeLinks) EnsurePort(name, bridge string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.links[name] != "veth" || f.links[bridge] != "bridge" {
		return fmt.Errorf("no veth %q or bridge %q", name, bridge)
	}
	return nil
}

func (f *fakeLinks) ListLinkNames(prefix string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.links {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f *fakeLinks) SetRouteLocalnet(name string) error { return f.setting(name, "route_localnet") }

func (f *fakeLinks) SetBridgeNetfilter(name string) error { return f.setting(name, "nf_call_iptables") }

func (f *fakeLinks) setting(name, what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.links[name] != "bridge" {
		return fmt.Errorf("%s: no bridge %q", what, name)
	}
	if f.settings == nil {
		f.settings = map[string]bool{}
	}
	f.settings[name+"/"+what] = true
	return nil
}

func (f *fakeLinks) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.links)
}

// fakeFirewall records each network's and endpoint's rules.
type fakeFirewall struct {
	mu        sync.Mutex
	networks  map[string]firewall.Network
	endpoints map[string]firewall.Endpoint
	base      bool
	failAdd   error
	failSetEP error
}

var _ firewallAPI = (*fakeFirewall)(nil)

func newFakeFirewall() *fakeFirewall {
	return &fakeFirewall{networks: map[string]firewall.Network{}, endpoints: map[string]firewall.Endpoint{}}
}

func (f *fakeFirewall) HasIPv6() bool { return true }

func (f *fakeFirewall) BridgeGroup() uint32 { return firewall.DefaultBridgeGroup }

// Reconcile makes the recorded rules exactly the given states.
func (f *fakeFirewall) Reconcile(states []firewall.State) (firewall.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.base = true
	var rep firewall.Report
	want := map[string]bool{}
	for _, st := range states {
		want[st.Network.ID] = true
		if _, ok := f.networks[st.Network.ID]; !ok {
			rep.Reapplied = append(rep.Reapplied, firewall.Tag(st.Network.ID))
		}
		f.networks[st.Network.ID] = st.Network
		for _, e := range st.Endpoints {
			if len(e.Ports) > 0 {
				f.endpoints[e.EndpointID] = e
			}
		}
	}
	for id := range f.networks {
		if !want[id] {
			rep.OrphansFound = append(rep.OrphansFound, firewall.Tag(id))
			delete(f.networks, id)
		}
	}
	return rep, nil
}

func (f *fakeFirewall) SetEndpoint(n firewall.Network, e firewall.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failSetEP != nil && len(e.Ports) > 0 {
		return f.failSetEP
	}
	if len(e.Ports) == 0 {
		delete(f.endpoints, e.EndpointID)
	} else {
		f.endpoints[e.EndpointID] = e
	}
	return nil
}

func (f *fakeFirewall) AddNetwork(n firewall.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAdd != nil {
		return f.failAdd
	}
	f.networks[n.ID] = n
	return nil
}

func (f *fakeFirewall) RemoveNetwork(n firewall.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := n.ID
	delete(f.networks, id)
	for k, e := range f.endpoints {
		if e.NetworkID == id {
			delete(f.endpoints, k)
		}
	}
	return nil
}

// fakePorts reserves ports in a map; taken lists ports "something else" holds.
type fakePorts struct {
	mu    sync.Mutex
	held  map[hostport.Key]bool
	taken map[uint16]bool
	next  uint16
}

var _ portsAPI = (*fakePorts)(nil)

func newFakePorts() *fakePorts {
	return &fakePorts{held: map[hostport.Key]bool{}, taken: map[uint16]bool{}, next: 49153}
}

func (f *fakePorts) Reserve(proto string, ip netip.Addr, first, last uint16) (uint16, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if first == 0 {
		first, last = f.next, f.next
		f.next++
	}
	for p := uint32(first); p <= uint32(max(first, last)); p++ {
		k := hostport.Key{Proto: proto, IP: ip, Port: uint16(p)}
		if !f.held[k] && !f.taken[uint16(p)] {
			f.held[k] = true
			return uint16(p), nil
		}
	}
	return 0, hostport.ErrInUse
}

func (f *fakePorts) Release(k hostport.Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.held, k)
}

func (f *fakePorts) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

func (f *fakeLinks) EnsureVXLAN(cfg netutil.VXLANConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.links[cfg.Bridge] != "bridge" {
		return fmt.Errorf("no bridge %q for %q", cfg.Bridge, cfg.Name)
	}
	if f.links[cfg.Name] != "vxlan" {
		f.links[cfg.Name] = "vxlan"
		if f.remotes == nil {
			f.remotes = map[string]map[netip.Addr]netutil.Peer{}
		}
		f.remotes[cfg.Name] = map[netip.Addr]netutil.Peer{}
	}
	f.vxlans = append(f.vxlans, cfg)
	return nil
}

func (f *fakeLinks) SetPeers(name string, rs []netutil.Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range rs {
		f.called("SetPeer")
	}
	if f.links[name] != "vxlan" {
		return fmt.Errorf("no VXLAN device %q", name)
	}
	for _, r := range rs {
		f.remotes[name][r.IP] = r
	}
	return nil
}

func (f *fakeLinks) DelPeer(name string, r netutil.Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.called("DelPeer")
	delete(f.remotes[name], r.IP)
	return nil
}

func (f *fakeLinks) Peers(name string) ([]netutil.Peer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.called("Peers")
	if f.links[name] != "vxlan" {
		return nil, fmt.Errorf("no VXLAN device %q", name)
	}
	var out []netutil.Peer
	for _, r := range f.remotes[name] {
		out = append(out, r)
	}
	return out, nil
}

// called records a call. Caller holds f.mu.
func (f *fakeLinks) called(method string) {
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[method]++
}

func (f *fakeLinks) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.calls)
}

func (f *fakeLinks) resetCounts() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// remoteIPs lists what a VXLAN device has programmed, as "IP@VTEP".
func (f *fakeLinks) remoteIPs(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for ip, r := range f.remotes[name] {
		out = append(out, ip.String()+"@"+r.VTEP.String())
	}
	slices.Sort(out)
	return out
}

func (f *fakeLinks) AnnounceARP(bridge string, rs []netutil.Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rs {
		f.announced = append(f.announced, r.IP.String()+"@"+r.MAC.String())
	}
	return nil
}

func (f *fakeLinks) AnnounceOwn(bridge string, ip netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announced = append(f.announced, ip.String()+"@"+bridge)
	return nil
}
