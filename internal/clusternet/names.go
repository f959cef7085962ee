package clusternet

import (
	"net/netip"
	"strings"
	"sync"
)

// A network's names answer the name forwarders' questions without the
// driver's lock and without a scan: the names of its peers (with their
// hosts) and of this host's endpoints on it. Kept current as peers and
// endpoints change; its lock is always the inner one and is held for map
// operations only.
type names struct {
	mu     sync.RWMutex
	remote map[string][]Peer   // lower-case name -> peers
	byIP   map[netip.Addr]Peer // address -> named peer
	local  map[string]int      // lower-case name -> this host's endpoints
	eps    map[string][]string // endpoint ID -> what it put in local
}

func (x *names) init() {
	x.remote, x.byIP, x.local, x.eps = map[string][]Peer{}, map[netip.Addr]Peer{}, map[string]int{}, map[string][]string{}
}

func (x *names) clear() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.init()
}

// setPeers makes the peers' names those of peers.
func (x *names) setPeers(peers map[netip.Addr]Peer) {
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
	x.remote, x.byIP = m, ips
	x.mu.Unlock()
}

// addPeer indexes one peer; removePeer takes it out.
func (x *names) addPeer(p Peer) {
	keys := p.keys()
	if len(keys) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, k := range keys {
		x.remote[k] = append(x.remote[k], p)
	}
	if p.Name != "" {
		x.byIP[p.IP] = p
	}
}

func (x *names) removePeer(p Peer) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if o, ok := x.byIP[p.IP]; ok && o.Node == p.Node {
		delete(x.byIP, p.IP)
	}
	for _, k := range p.keys() {
		peers := x.remote[k]
		for i, o := range peers {
			if o.IP == p.IP {
				peers = append(peers[:i:i], peers[i+1:]...)
				break
			}
		}
		if len(peers) == 0 {
			delete(x.remote, k)
		} else {
			x.remote[k] = peers
		}
	}
}

// SetLocal records the names of one of this host's endpoints on the
// network (its container's name and aliases): a name of this host's is
// Docker's to answer. RemoveLocal forgets them.
func (n *Network) SetLocal(endpointID, name string, aliases []string) {
	x := &n.names
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unsetLocalLocked(endpointID)
	var keys []string
	if name != "" {
		keys = append(keys, strings.ToLower(name))
	}
	keys = append(keys, aliases...)
	if len(keys) == 0 {
		return
	}
	for _, k := range keys {
		x.local[k]++
	}
	x.eps[endpointID] = keys
}

// RemoveLocal forgets one of this host's endpoints' names.
func (n *Network) RemoveLocal(endpointID string) {
	n.names.mu.Lock()
	defer n.names.mu.Unlock()
	n.names.unsetLocalLocked(endpointID)
}

func (x *names) unsetLocalLocked(endpointID string) {
	keys, ok := x.eps[endpointID]
	if !ok {
		return
	}
	delete(x.eps, endpointID)
	for _, k := range keys {
		if x.local[k]--; x.local[k] <= 0 {
			delete(x.local, k)
		}
	}
}

// SetNetworkNames records the Docker names of the networks (ID -> name),
// for questions of the form name.network.
func (t *Table) SetNetworkNames(names map[string]string) {
	m := make(map[string]string, len(names))
	for id, name := range names {
		m[id] = strings.ToLower(name)
	}
	t.mu.Lock()
	t.netNames = m
	t.mu.Unlock()
}

// SetAlive tells which hosts are alive (their leases): the names of the
// others' containers are withheld (their VXLAN entries stay).
func (t *Table) SetAlive(nodes []string) {
	m := make(map[string]bool, len(nodes))
	for _, node := range nodes {
		m[node] = true
	}
	t.alive.Store(&m)
}

// lookup is the networks asked about, with their Docker names.
func (t *Table) lookup(networks []string) ([]*Network, []string) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	nets := make([]*Network, 0, len(networks))
	dns := make([]string, 0, len(networks))
	for _, id := range networks {
		if n := t.nets[id]; n != nil {
			nets = append(nets, n)
			dns = append(dns, t.netNames[id])
		}
	}
	return nets, dns
}

// Resolve answers name (lower case) on the networks (IDs): the addresses
// of live peers of that name (or of name.network, the network's Docker
// name), and whether an endpoint of this host has it there (then Docker's
// resolver answers). It takes no lock but the table's and the networks'
// names', each for a map lookup.
func (t *Table) Resolve(networks []string, name string) (addrs []netip.Addr, local bool) {
	alive := t.alive.Load()
	nets, dns := t.lookup(networks)
	for i, n := range nets {
		key := name
		if dn := dns[i]; dn != "" {
			if base, ok := strings.CutSuffix(name, "."+dn); ok && base != "" {
				key = base
			}
		}
		x := &n.names
		x.mu.RLock()
		if x.local[key] > 0 {
			x.mu.RUnlock()
			return nil, true
		}
		for _, p := range x.remote[key] {
			if alive == nil || (*alive)[p.Node] {
				addrs = append(addrs, p.IP)
			}
		}
		x.mu.RUnlock()
	}
	return addrs, false
}

// Reverse answers a PTR question for ip on the networks: the live peer
// that has it, as name.network (Docker's form), or its name alone when
// the network's Docker name is not known.
func (t *Table) Reverse(networks []string, ip netip.Addr) (string, bool) {
	alive := t.alive.Load()
	nets, dns := t.lookup(networks)
	for i, n := range nets {
		n.names.mu.RLock()
		p, ok := n.names.byIP[ip]
		n.names.mu.RUnlock()
		if !ok || (alive != nil && !(*alive)[p.Node]) {
			continue
		}
		if dns[i] != "" {
			return p.Name + "." + dns[i], true
		}
		return p.Name, true
	}
	return "", false
}
