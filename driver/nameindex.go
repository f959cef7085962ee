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
	remote map[string]map[string][]Peer          // network ID -> lower-case name -> peers
	local  map[string]map[string]int             // network ID -> lower-case name -> this host's endpoints
	eps    map[string]struct{ net, name string } // endpoint ID -> what it put in local

	// alive is the set of live hosts (nil: not known yet, all are).
	alive atomic.Pointer[map[string]bool]
}

func newNameIndex() *nameIndex {
	return &nameIndex{remote: map[string]map[string][]Peer{}, local: map[string]map[string]int{},
		eps: map[string]struct{ net, name string }{}}
}

// setPeers makes a network's remote names those of peers.
func (x *nameIndex) setPeers(networkID string, peers map[netip.Addr]Peer) {
	m := map[string][]Peer{}
	for _, p := range peers {
		if p.Name != "" {
			k := strings.ToLower(p.Name)
			m[k] = append(m[k], p)
		}
	}
	x.mu.Lock()
	x.remote[networkID] = m
	x.mu.Unlock()
}

// addPeer indexes one peer; removePeer takes it out.
func (x *nameIndex) addPeer(networkID string, p Peer) {
	if p.Name == "" {
		return
	}
	k := strings.ToLower(p.Name)
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.remote[networkID]
	if m == nil {
		m = map[string][]Peer{}
		x.remote[networkID] = m
	}
	m[k] = append(m[k], p)
}

func (x *nameIndex) removePeer(networkID string, p Peer) {
	if p.Name == "" {
		return
	}
	k := strings.ToLower(p.Name)
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.remote[networkID]
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

// setLocal records a local endpoint's name on its network ("" : none);
// removeLocal forgets it.
func (x *nameIndex) setLocal(ep *Endpoint) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unsetLocalLocked(ep.ID)
	if ep.Name == "" {
		return
	}
	k := strings.ToLower(ep.Name)
	m := x.local[ep.NetworkID]
	if m == nil {
		m = map[string]int{}
		x.local[ep.NetworkID] = m
	}
	m[k]++
	x.eps[ep.ID] = struct{ net, name string }{ep.NetworkID, k}
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
		if m[was.name]--; m[was.name] <= 0 {
			delete(m, was.name)
		}
	}
}

// dropNetwork forgets a network's names.
func (x *nameIndex) dropNetwork(networkID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.remote, networkID)
	delete(x.local, networkID)
	for id, e := range x.eps {
		if e.net == networkID {
			delete(x.eps, id)
		}
	}
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
// live other hosts' containers of that name, and whether a container of
// this host has it there.
func (x *nameIndex) resolve(networks []string, name string) (addrs []netip.Addr, local bool) {
	alive := x.alive.Load()
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, id := range networks {
		if x.local[id][name] > 0 {
			return nil, true
		}
		for _, p := range x.remote[id][name] {
			if alive == nil || (*alive)[p.Node] {
				addrs = append(addrs, p.IP)
			}
		}
	}
	return addrs, false
}
