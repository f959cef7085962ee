package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/netutil"
	"github.com/mynet/mynet/internal/store"
	"github.com/mynet/mynet/internal/wgtunnel"
)

// TunnelConfig is the WireGuard tunnel of encrypted cluster networks.
type TunnelConfig struct {
	Device  string       // --cluster-wireguard-device
	Port    int          // --cluster-wireguard-port
	Mode    string       // --cluster-wireguard: auto, kernel or userspace
	PSKFile string       // --cluster-psk-file ("" none)
	Pool    netip.Prefix // --cluster-tunnel-pool (invalid: the cluster's choice)
	Binary  string       // mynet's executable, for a userspace device
}

const keyTunnel = "tunnel"

// savedTunnel is what the store keeps of the tunnel, so a host restarted
// while etcd is down has its encrypted networks back.
type savedTunnel struct {
	Addr  netip.Prefix    `json:"addr"` // this host's tunnel address, with the pool's length
	Pool  netip.Prefix    `json:"pool"`
	Peers []wgtunnel.Peer `json:"peers"`
}

// tunnel is this host's WireGuard tunnel, made when its first encrypted
// network is (Address), or at start when it had one, and kept by the
// cluster's upkeep (keep): the device, its address and peers, the
// blackhole behind it.
type tunnel struct {
	d   *Daemon
	cfg TunnelConfig
	wg  *wgtunnel.Tunnel
	log *logrus.Entry

	mu    sync.Mutex // guards the fields below; held across setup (etcd, the device)
	key   wgtunnel.Key
	psk   *wgtunnel.Key
	saved savedTunnel
	ready bool // saved.Addr is this host's and the device was made
	// used is when a network last asked for the tunnel (Address): it is
	// not taken down within idleAfter of that, so a network being created
	// never loses it between the two.
	used time.Time
	// unpublished: this host's record does not have its key yet (a
	// rotation while etcd did not answer); keep publishes it.
	unpublished bool
	// firstSeen is when each peer was first read on the device
	// (tunnel_status.go): a peer never handshaken is stale from then.
	firstSeen map[wgtunnel.Key]time.Time
}

func (d *Daemon) newTunnel(cfg TunnelConfig, underlayMTU int) (*tunnel, error) {
	if cfg.Device == "" {
		return nil, nil
	}
	log := d.log.WithField("part", "wireguard")
	wg, err := wgtunnel.New(wgtunnel.Config{Name: cfg.Device, Port: cfg.Port, Mode: cfg.Mode,
		MTU: wgMTU(d.underlay, underlayMTU), Binary: cfg.Binary, Dir: d.cfg.StateDir}, d.links, log)
	if err != nil {
		return nil, err
	}
	psk, err := wgtunnel.LoadPresharedKey(cfg.PSKFile)
	if err != nil {
		return nil, err
	}
	return &tunnel{d: d, cfg: cfg, wg: wg, log: log, psk: psk}, nil
}

func (t *tunnel) keyPath() string { return filepath.Join(t.d.cfg.StateDir, wgtunnel.KeyFile) }

// Address is driver.Tunnel's: the tunnel made ready, this host's tunnel
// address.
func (t *tunnel) Address() (netip.Addr, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.used = time.Now()
	if !t.ready {
		if err := t.setup(); err != nil {
			return netip.Addr{}, err
		}
	}
	return t.saved.Addr.Addr(), nil
}

// setup makes the tunnel from nothing: the key and the device first (a
// host that cannot make one is refused before anything else is made or
// claimed), then the cluster's pool and this host's address in it (etcd
// must answer), the blackhole and the device's address. Caller holds t.mu.
func (t *tunnel) setup() error {
	var err error
	if t.key, err = wgtunnel.LoadOrCreateKey(t.keyPath()); err != nil {
		return err
	}
	if err := t.wg.Ensure(t.key); err != nil {
		return err
	}
	c := t.d.clusterClient
	pool, err := c.TunnelPool()
	if err != nil {
		return err
	}
	addr, err := c.ClaimTunnel(t.saved.Addr.Addr())
	if err != nil {
		return fmt.Errorf("claim this host's tunnel address: %w", err)
	}
	t.saved.Addr, t.saved.Pool = addr, pool
	if err := t.device(); err != nil {
		return err
	}
	if err := c.SetWireGuard(t.info()); err != nil {
		return err
	}
	t.ready = true
	t.save()
	t.log.WithFields(logrus.Fields{"tunnel": addr, "public_key": t.key.PublicKey().String(), "kind": t.wg.Kind()}).Info("WireGuard tunnel ready for encrypted networks")
	t.peers()
	return nil
}

// info is what this host's record says of its tunnel. Caller holds t.mu.
func (t *tunnel) info() cluster.WireGuardInfo {
	return cluster.WireGuardInfo{Key: t.key.PublicKey().String(), Port: t.cfg.Port, Tunnel: t.saved.Addr.Addr()}
}

// device makes the blackhole, the device with this host's key, and its
// address. Caller holds t.mu.
func (t *tunnel) device() error {
	if err := t.d.links.EnsureBlackhole(t.saved.Pool); err != nil {
		return err
	}
	if err := t.wg.Ensure(t.key); err != nil {
		return err
	}
	return t.d.links.EnsureTunnel(netutil.TunnelConfig{Name: t.cfg.Device, Addr: t.saved.Addr, MTU: t.wgMTU()})
}

func (t *tunnel) wgMTU() int { return wgMTU(t.d.underlay, t.d.underlayMTU) }

// wgMTU is the WireGuard device's MTU over the underlay.
func wgMTU(underlay netip.Addr, underlayMTU int) int {
	_, wg := netutil.Overheads(underlay)
	return underlayMTU - wg
}

// restore brings the tunnel back at start from what the store kept (etcd
// is not needed): the device with its last peers.
func (t *tunnel) restore() {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s savedTunnel
	_ = t.d.store.View(func(tx store.Tx) error {
		b, err := tx.Get(bucketCluster, keyTunnel)
		if err == nil && b != nil {
			err = json.Unmarshal(b, &s)
		}
		return err
	})
	if !s.Addr.IsValid() {
		return
	}
	t.saved = s
	key, err := wgtunnel.LoadOrCreateKey(t.keyPath())
	if err != nil {
		t.log.WithError(err).Error("cannot read this host's WireGuard key: encrypted networks carry nothing")
		return
	}
	t.key = key
	// This host's record says so from its registration on (it is made
	// anew at every start).
	if err := t.d.clusterClient.SetWireGuard(t.info()); err != nil {
		t.log.WithError(err).Warn("cannot publish this host's WireGuard key yet")
	}
	if err := t.device(); err != nil {
		t.log.WithError(err).Error("cannot bring the WireGuard tunnel back: encrypted networks carry nothing until it is")
		return
	}
	if err := t.wg.SetPeers(s.Peers, t.psk); err != nil {
		t.log.WithError(err).Warn("cannot give the WireGuard device its saved peers")
	}
	t.ready, t.used = true, time.Now()
	t.log.WithFields(logrus.Fields{"tunnel": s.Addr, "peers": len(s.Peers), "kind": t.wg.Kind()}).Info("WireGuard tunnel restored")
}

// idleAfter is how long the tunnel stays with no encrypted network after a
// network last asked for it: longer than a CreateNetwork may take (Docker
// gives a plugin call 30 s).
const idleAfter = 35 * time.Second

// keep runs every 2 s (clusterUpkeep): the device is made again if it went
// (a killed userspace process), this host's tunnel address is claimed
// again (after etcd lost its data) and the peers follow the cluster. With
// no encrypted network left (encrypted false) for a while, the device and
// the blackhole go: the host keeps its key, and its tunnel address for the
// next one.
func (t *tunnel) keep(encrypted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready {
		return
	}
	if !encrypted && time.Since(t.used) > idleAfter {
		t.remove()
		return
	}
	if err := t.device(); err != nil {
		t.log.WithError(err).Warn("the WireGuard tunnel is not whole; encrypted networks carry nothing until it is")
		return
	}
	if t.unpublished {
		if err := t.d.clusterClient.SetWireGuard(t.info()); err == nil {
			t.unpublished = false
		}
	}
	// Claimed again at every pass (one create-if-absent): a registration
	// reused after etcd lost its keys keeps its lease, so nothing cheaper
	// tells that the claim went.
	if addr, err := t.d.clusterClient.ClaimTunnel(t.saved.Addr.Addr()); err == nil && addr != t.saved.Addr {
		// Another host holds this host's address now (claimed while etcd
		// had lost this host's claim): the two cannot both be programmed.
		t.log.WithFields(logrus.Fields{"tunnel": t.saved.Addr, "other": addr}).Error("this host's tunnel address was taken by another host after etcd lost its data; restart mynet here with its encrypted networks removed, or forget the other host")
		_ = t.d.clusterClient.ReleaseTunnel(addr.Addr())
	}
	t.peers()
}

// remove takes the device and the blackhole down and forgets the saved
// state (so a restart does not make them again). Caller holds t.mu.
func (t *tunnel) remove() {
	if err := t.d.links.RemoveTunnel(t.cfg.Device, t.saved.Pool); err != nil {
		t.log.WithError(err).Warn("could not remove the WireGuard tunnel; trying again")
		return
	}
	t.ready = false
	if err := t.d.store.Update(func(tx store.Tx) error { return tx.Delete(bucketCluster, keyTunnel) }); err != nil {
		t.log.WithError(err).Warn("could not forget the WireGuard tunnel's state")
	}
	t.saved.Peers = nil
	t.log.WithField("device", t.cfg.Device).Info("no encrypted network left: WireGuard device removed")
}

// peers programs the device's peers from the cluster (the saved ones stay
// while etcd does not answer). Caller holds t.mu.
func (t *tunnel) peers() {
	c := t.d.clusterClient
	nodes, err := c.Nodes()
	if err != nil {
		return
	}
	claims, err := c.TunnelClaims()
	if err != nil {
		return
	}
	peers, refused := wireguardPeers(c.Node(), nodes, claims)
	for _, r := range refused {
		t.log.Warn("not a WireGuard peer: " + r)
	}
	if err := t.wg.SetPeers(peers, t.psk); err != nil {
		t.log.WithError(err).Warn("cannot program the WireGuard peers")
		return
	}
	if !slices.Equal(peers, t.saved.Peers) {
		t.saved.Peers = peers
		t.save()
	}
}

// follow reprograms the peers at every change of the hosts' records, so a
// host's new key (mynet cluster rotate-key) or a new host is programmed
// within a round trip of etcd's, not at the next upkeep.
func (t *tunnel) follow(ctx context.Context) {
	for ctx.Err() == nil {
		t.mu.Lock()
		ready := t.ready
		t.mu.Unlock()
		if ready {
			err := t.d.clusterClient.WatchNodes(ctx, func() {
				t.mu.Lock()
				defer t.mu.Unlock()
				t.peers()
			})
			if err != nil && ctx.Err() == nil {
				t.log.WithError(err).Debug("the hosts' watch ended; watching again")
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// RotateKeyReport is what /mynet.RotateKey answers.
type RotateKeyReport struct {
	PublicKey string `json:"public_key"`
}

// rotate makes this host's key anew: saved first (a crash after that
// brings the new key back at the next start), then on the device (its
// sessions end), then in its record, whose watch makes the other hosts
// take it at once; their keepalive's handshake brings the sessions back.
func (t *tunnel) rotate() (RotateKeyReport, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready {
		return RotateKeyReport{}, errdefs.Invalid("this host has no WireGuard tunnel (it has had no encrypted network): nothing to rotate")
	}
	key, err := wgtunnel.RotateKey(t.keyPath())
	if err != nil {
		return RotateKeyReport{}, err
	}
	t.key = key
	if err := t.wg.Ensure(key); err != nil {
		return RotateKeyReport{}, fmt.Errorf("the new key is saved, and the device did not take it (the upkeep tries again): %w", err)
	}
	if err := t.d.clusterClient.SetWireGuard(t.info()); err != nil {
		t.unpublished = true
		return RotateKeyReport{}, fmt.Errorf("the device has the new key, and the cluster does not know it yet (it is published as soon as etcd answers): %w", err)
	}
	pub := key.PublicKey().String()
	t.log.WithField("public_key", pub).Info("this host's WireGuard key rotated")
	return RotateKeyReport{PublicKey: pub}, nil
}

func (d *Daemon) rotateKey() (any, error) {
	if d.tunnel == nil {
		return nil, errdefs.Invalid("this mynet has no cluster (--cluster-store): no WireGuard key")
	}
	return d.tunnel.rotate()
}

// save keeps the tunnel's state in the store. Caller holds t.mu.
func (t *tunnel) save() {
	if err := t.d.store.Update(func(tx store.Tx) error { return store.PutJSON(tx, bucketCluster, keyTunnel, t.saved) }); err != nil {
		t.log.WithError(err).Warn("cannot save the WireGuard tunnel's state")
	}
}

// wireguardPeers are the other hosts with a WireGuard record whose tunnel
// address the cluster's claim gives them, sorted by node. A key or a
// tunnel address that two records name is neither's: both are refused
// (one of them is not who it says).
func wireguardPeers(self string, nodes []cluster.NodeInfo, claims map[netip.Addr]string) (peers []wgtunnel.Peer, refused []string) {
	keys, tunnels := map[wgtunnel.Key]int{}, map[netip.Addr]int{}
	type cand struct {
		node cluster.NodeInfo
		key  wgtunnel.Key
	}
	var cands []cand
	for _, n := range nodes {
		if n.WireGuard == nil {
			continue
		}
		k, err := wgtunnel.ParseKey(n.WireGuard.Key)
		if err != nil {
			refused = append(refused, fmt.Sprintf("host %s: its key is not a WireGuard key", n.Name))
			continue
		}
		keys[k]++
		tunnels[n.WireGuard.Tunnel]++
		if n.Name != self {
			cands = append(cands, cand{n, k})
		}
	}
	for _, c := range cands {
		wg := c.node.WireGuard
		switch {
		case keys[c.key] > 1:
			refused = append(refused, fmt.Sprintf("host %s: its public key is claimed by another host too", c.node.Name))
		case tunnels[wg.Tunnel] > 1:
			refused = append(refused, fmt.Sprintf("host %s: its tunnel address %s is another host's too", c.node.Name, wg.Tunnel))
		case claims[wg.Tunnel] != c.node.Name:
			refused = append(refused, fmt.Sprintf("host %s: its tunnel address %s is not claimed by it", c.node.Name, wg.Tunnel))
		case !c.node.Addr.IsValid() || wg.Port <= 0 || wg.Port > 65535:
			refused = append(refused, fmt.Sprintf("host %s: no WireGuard endpoint", c.node.Name))
		default:
			peers = append(peers, wgtunnel.Peer{Node: c.node.Name, Key: c.key, Endpoint: netip.AddrPortFrom(c.node.Addr, uint16(wg.Port)), Tunnel: wg.Tunnel})
		}
	}
	slices.SortFunc(peers, func(a, b wgtunnel.Peer) int { return strings.Compare(a.Node, b.Node) })
	return peers, refused
}
