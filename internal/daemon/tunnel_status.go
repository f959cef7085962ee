package daemon

import (
	"fmt"
	"time"

	"github.com/mynet/mynet/internal/metrics"
	"github.com/mynet/mynet/internal/status"
	"github.com/mynet/mynet/internal/wgtunnel"
)

// rejectAfter is WireGuard's Reject-After-Time: a session older than this
// carries nothing, so a peer that sent and has had no handshake for as
// long is not being reached.
const rejectAfter = 180 * time.Second

// tunnelPeer is a peer as the device reports it, with the host it is.
type tunnelPeer struct {
	peer  wgtunnel.Peer
	state wgtunnel.PeerStatus
}

// read is the device's peers, by the hosts they are, and the device's
// error. Caller holds t.mu.
func (t *tunnel) read() ([]tunnelPeer, error) {
	states, err := t.wg.Peers()
	if err != nil {
		return nil, err
	}
	byKey := map[wgtunnel.Key]wgtunnel.PeerStatus{}
	for _, s := range states {
		byKey[s.Key] = s
	}
	now := time.Now()
	if t.firstSeen == nil {
		t.firstSeen = map[wgtunnel.Key]time.Time{}
	}
	seen := map[wgtunnel.Key]time.Time{}
	var out []tunnelPeer
	for _, p := range t.saved.Peers {
		s, ok := byKey[p.Key]
		if !ok {
			continue
		}
		first, ok := t.firstSeen[p.Key]
		if !ok {
			first = now
		}
		seen[p.Key] = first
		out = append(out, tunnelPeer{peer: p, state: s})
	}
	t.firstSeen = seen
	return out, nil
}

// status is the tunnel as mynet status shows it; nil before it is made.
func (t *tunnel) status() *status.Tunnel {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready {
		return nil
	}
	st := &status.Tunnel{Device: t.cfg.Device, Kind: t.wg.Kind(), Address: t.saved.Addr, Port: t.cfg.Port,
		PublicKey: t.key.PublicKey().String(), Peers: []status.TunnelPeer{}}
	peers, err := t.read()
	if err != nil {
		st.Error = err.Error()
	}
	for _, p := range peers {
		st.Peers = append(st.Peers, status.TunnelPeer{Node: p.peer.Node, Endpoint: p.peer.Endpoint, Tunnel: p.peer.Tunnel,
			LastHandshake: p.state.LastHandshake, Received: p.state.Received, Sent: p.state.Sent})
	}
	return st
}

// problems are what health reports of the tunnel: a device that cannot be
// read (encrypted networks carry nothing), and each peer that was sent
// traffic and has had no handshake for longer than WireGuard keeps a
// session (since it became a peer, when it never had one).
func (t *tunnel) problems(now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready {
		return nil
	}
	peers, err := t.read()
	if err != nil {
		return []string{fmt.Sprintf("WireGuard device %s: %v: encrypted networks carry nothing", t.cfg.Device, err)}
	}
	var out []string
	for _, p := range peers {
		since := p.state.LastHandshake
		if since.IsZero() {
			since = t.firstSeen[p.peer.Key]
		}
		if stale(p.state.Sent, since, now) {
			out = append(out, fmt.Sprintf("WireGuard peer %s (%s): no handshake for %s while sending to it: encrypted traffic to it is lost",
				p.peer.Node, p.peer.Endpoint, now.Sub(since).Truncate(time.Second)))
		}
	}
	return out
}

// stale tells a peer that was sent traffic and has had no handshake since
// longer than WireGuard's Reject-After-Time.
func stale(sent int64, since, now time.Time) bool {
	return sent > 0 && now.Sub(since) > rejectAfter
}

// metrics are the peers' figures for the gauges.
func (t *tunnel) metrics() []metrics.WireGuardPeer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready {
		return nil
	}
	peers, _ := t.read()
	out := make([]metrics.WireGuardPeer, 0, len(peers))
	for _, p := range peers {
		out = append(out, metrics.WireGuardPeer{Node: p.peer.Node, LastHandshake: p.state.LastHandshake, Received: p.state.Received, Sent: p.state.Sent})
	}
	return out
}
