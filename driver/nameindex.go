package driver

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
)

// nameIndex answers the name forwarders' questions without the driver's
// lock and without a scan: per cluster network, the names of other hosts'
// containers (with their hosts) and of this host's. The driver keeps it
// current as peers and endpoints change, under d.mu; its own lock is
// always the inner one and is held for map operations only.
type nameIndex struct {
	mu     sync.RWMutex
	remote map[string]map[string][]Peer   // network ID -> lower-case name -> peers
	byIP   map[string]map[netip.Addr]Peer // network ID -> address -> named peer
	local  map[string]map[string]int      // network ID -> lower-case name -> this host's endpoints
	eps    map[string]localNames          // endpoint ID -> what it put in local
	// netNames are the networks' Docker names (network ID -> lower case).
	netNames map[string]string

	// alive is the set of live hosts (nil: not known yet, all are).
	alive atomic.Pointer[map[string]bool]
}

func newNameIndex() *nameIndex {
	return &nameIndex{remote: map[string]map[string][]Peer{}, byIP: map[string]map[netip.Addr]Peer{}, local: map[string]map[string]int{},
		eps: map[string]localNames{}, netNames: map[string]string{}}
}

// keys are the names a peer is answered by: its name and its aliases.
func (p Peer) keys() []string {
	if p.Name == "" {
		return p.Aliases
	}
	return append([]string{p.Name}, p.Aliases...)
}

// setPeers makes a network's remote names those of peers.
func (x *nameIndex) setPeers(networkID string, peers map[netip.Addr]Peer) {
	m := map[string][]Peer{}
	ips := map[netip.Addr]Peer{}
	for _, p := range peers {
		for _, k := range p.keys() {
			m[k] = append(m[k], p)
		}
		if p.Name != "" {
			ips[p.IP] = p
		}
	}
	x.mu.Lock()
	x.remote[networkID], x.byIP[networkID] = m, ips
	x.mu.Unlock()
}

// addPeer indexes one peer; removePeer takes it out.
func (x *nameIndex) addPeer(networkID string, p Peer) {
	keys := p.keys()
	if len(keys) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.remote[networkID]
	if m == nil {
		m = map[string][]Peer{}
		x.remote[networkID] = m
	}
	for _, k := range keys {
		m[k] = append(m[k], p)
	}
	if p.Name != "" {
		if x.byIP[networkID] == nil {
			x.byIP[networkID] = map[netip.Addr]Peer{}
		}
		x.byIP[networkID][p.IP] = p
	}
}

func (x *nameIndex) removePeer(networkID string, p Peer) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if o, ok := x.byIP[networkID][p.IP]; ok && o.Node == p.Node {
		delete(x.byIP[networkID], p.IP)
	}
	m := x.remote[networkID]
	for _, k := range p.keys() {
		peers := m[k]
		for i, o := range peers {
			if o.IP == p.IP {
				peers = append(peers[:i:i], peers[i+1:]...)
				break
			}
		}
		if len(peers) == 0 {
			delete(m, k)
		} else {
			m[k] = peers
		}
	}
}

// setLocal records a local endpoint's names on its network; removeLocal
// forgets them.
func (x *nameIndex) setLocal(ep *Endpoint) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unsetLocalLocked(ep.ID)
	var keys []string
	if ep.Name != "" {
		keys = append(keys, strings.ToLower(ep.Name))
	}
	keys = append(keys, ep.Aliases...)
	if len(keys) == 0 {
		return
	}
	m := x.local[ep.NetworkID]
	if m == nil {
		m = map[string]int{}
		x.local[ep.NetworkID] = m
	}
	for _, k := range keys {
		m[k]++
	}
	x.eps[ep.ID] = localNames{ep.NetworkID, keys}
}

func (x *nameIndex) removeLocal(endpointID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unsetLocalLocked(endpointID)
}

func (x *nameIndex) unsetLocalLocked(endpointID string) {
	was, ok := x.eps[endpointID]
	if !ok {
		return
	}
	delete(x.eps, endpointID)
	if m := x.local[was.net]; m != nil {
		for _, k := range was.keys {
			if m[k]--; m[k] <= 0 {
				delete(m, k)
			}
		}
	}
}

// setNetworkNames records the Docker names of the cluster networks, for
// questions of the form name.network.
func (x *nameIndex) setNetworkNames(names map[string]string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.netNames = make(map[string]string, len(names))
	for id, n := range names {
		x.netNames[id] = strings.ToLower(n)
	}
}

// dropNetwork forgets a network's names.
func (x *nameIndex) dropNetwork(networkID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.remote, networkID)
	delete(x.byIP, networkID)
	delete(x.local, networkID)
	for id, e := range x.eps {
		if e.net == networkID {
			delete(x.eps, id)
		}
	}
}

// localNames is what one local endpoint put in the index.
type localNames struct {
	net  string
	keys []string
}

// setAlive tells which hosts are alive: the names of the others are
// withheld (their VXLAN entries stay).
func (x *nameIndex) setAlive(nodes []string) {
	m := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		m[n] = true
	}
	x.alive.Store(&m)
}

// resolve answers name (lower case) on the networks: the addresses of
// live other hosts' containers of that name (or of name.network, the
// network's Docker name), and whether a container of this host has it
// there.
func (x *nameIndex) resolve(networks []string, name string) (addrs []netip.Addr, local bool) {
	alive := x.alive.Load()
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, id := range networks {
		key := name
		if dn := x.netNames[id]; dn != "" {
			if base, ok := strings.CutSuffix(name, "."+dn); ok && base != "" {
				key = base
			}
		}
		if x.local[id][key] > 0 {
			return nil, true
		}
		for _, p := range x.remote[id][key] {
			if alive == nil || (*alive)[p.Node] {
				addrs = append(addrs, p.IP)
			}
		}
	}
	return addrs, false
}

// reverse answers a PTR question for ip on the networks: the live other
// host's container that has it, as name.network (Docker's form) or its
// name alone when the network's Docker name is not known.
func (x *nameIndex) reverse(networks []string, ip netip.Addr) (string, bool) {
	alive := x.alive.Load()
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, id := range networks {
		p, ok := x.byIP[id][ip]
		if !ok || (alive != nil && !(*alive)[p.Node]) {
			continue
		}
		if dn := x.netNames[id]; dn != "" {
			return p.Name + "." + dn, true
		}
		return p.Name, true
	}
	return "", false
}
