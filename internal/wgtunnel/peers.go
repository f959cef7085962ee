package wgtunnel

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Peer is another host as the device must know it.
type Peer struct {
	Node     string
	Key      wgtypes.Key
	Endpoint netip.AddrPort // its underlay address and WireGuard port
	Tunnel   netip.Addr     // its tunnel address: the only source accepted from it
}

// SetPeers makes the device's peers exactly peers (psk, when set, on each):
// peers that are gone are removed, new or changed ones written, unchanged
// ones left alone, so their sessions go on.
func (t *Tunnel) SetPeers(peers []Peer, psk *wgtypes.Key) error {
	dev, err := t.wg.Device(t.cfg.Name)
	if err != nil {
		return fmt.Errorf("read WireGuard device %q: %w", t.cfg.Name, err)
	}
	want := map[wgtypes.Key]Peer{}
	for _, p := range peers {
		want[p.Key] = p
	}
	var changes []wgtypes.PeerConfig
	have := map[wgtypes.Key]bool{}
	for _, p := range dev.Peers {
		have[p.PublicKey] = true
		w, ok := want[p.PublicKey]
		switch {
		case !ok:
			changes = append(changes, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
		case !samePeer(p, w, psk):
			changes = append(changes, peerConfig(w, psk))
		}
	}
	for _, p := range peers {
		if !have[p.Key] {
			changes = append(changes, peerConfig(p, psk))
		}
	}
	if len(changes) == 0 {
		return nil
	}
	if err := t.wg.ConfigureDevice(t.cfg.Name, wgtypes.Config{Peers: changes}); err != nil {
		return fmt.Errorf("configure the peers of WireGuard device %q: %w", t.cfg.Name, err)
	}
	return nil
}

func tunnelNet(a netip.Addr) net.IPNet {
	return net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

// Keepalive is every peer's persistent keepalive: a handshake at once when
// a peer is (re)written (a key rotated: the session is back in a round
// trip, not at WireGuard's 5 s retry), and a session kept fresh between
// hosts, so a handshake's age tells a dead peer (health).
const Keepalive = 25 * time.Second

func peerConfig(p Peer, psk *wgtypes.Key) wgtypes.PeerConfig {
	zero := wgtypes.Key{}
	if psk == nil {
		psk = &zero
	}
	keepalive := Keepalive
	return wgtypes.PeerConfig{
		PublicKey:                   p.Key,
		PresharedKey:                psk,
		Endpoint:                    net.UDPAddrFromAddrPort(p.Endpoint),
		PersistentKeepaliveInterval: &keepalive,
		ReplaceAllowedIPs:           true,
		AllowedIPs:                  []net.IPNet{tunnelNet(p.Tunnel)},
	}
}

func samePeer(have wgtypes.Peer, want Peer, psk *wgtypes.Key) bool {
	wantPSK := wgtypes.Key{}
	if psk != nil {
		wantPSK = *psk
	}
	if have.PresharedKey != wantPSK || have.Endpoint == nil || endpointOf(have.Endpoint) != want.Endpoint || len(have.AllowedIPs) != 1 ||
		have.PersistentKeepaliveInterval != Keepalive {
		return false
	}
	a := have.AllowedIPs[0]
	ones, _ := a.Mask.Size()
	ip, ok := netip.AddrFromSlice(a.IP)
	return ok && ip.Unmap() == want.Tunnel && ones == want.Tunnel.BitLen()
}

// PeerStatus is what the device tells of a peer.
type PeerStatus struct {
	Key           wgtypes.Key
	Endpoint      netip.AddrPort
	LastHandshake time.Time // zero: none yet
	Received      int64
	Sent          int64
}

// Peers reads the device's peers, sorted by key.
func (t *Tunnel) Peers() ([]PeerStatus, error) {
	dev, err := t.wg.Device(t.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("read WireGuard device %q: %w", t.cfg.Name, err)
	}
	out := make([]PeerStatus, 0, len(dev.Peers))
	for _, p := range dev.Peers {
		s := PeerStatus{Key: p.PublicKey, LastHandshake: p.LastHandshakeTime, Received: p.ReceiveBytes, Sent: p.TransmitBytes}
		if p.Endpoint != nil {
			s.Endpoint = endpointOf(p.Endpoint)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return slices.Compare(a.Key[:], b.Key[:]) })
	return out, nil
}

func endpointOf(a *net.UDPAddr) netip.AddrPort {
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
