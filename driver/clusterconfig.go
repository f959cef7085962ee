package driver

import (
	"cmp"
	"fmt"
	"net/netip"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/netutil"
)

// A cluster network's configuration: what the IPAM and the cluster say it
// is, checked before anything is touched.

// resolveCluster makes cfg a cluster network's when its pool is one, and
// checks what a cluster network needs, before anything is touched.
func (d *Driver) resolveCluster(cfg *NetworkConfig, space string) error {
	requested := cfg.Cluster
	var cn ClusterNet
	var ok bool
	// An IPv6-only network's pool is its IPv6 one.
	primary := cfg.Subnet
	if cfg.NoIPv4 {
		primary = cfg.Subnet6
	}
	if d.cluster.Of != nil && primary.IsValid() {
		cn, ok = d.cluster.Of(space, primary)
	}
	switch {
	case !ok && requested == "":
		return nil
	case !ok && d.cluster.Client == nil:
		return errdefs.Invalid("option %s=%s: this mynet runs without --cluster-store, so it has no cluster networks", OptCluster, requested)
	case !ok:
		return errdefs.Invalid("option %s=%s: a cluster network needs mynet's IPAM: add --ipam-driver mynet --ipam-opt %s=%s", OptCluster, requested, OptCluster, requested)
	case requested != "" && requested != cn.Name:
		return errdefs.Invalid("option %s=%s does not match the IPAM's --ipam-opt %s=%s", OptCluster, requested, OptCluster, cn.Name)
	case cn.VNI == 0:
		// The IPAM makes a new cluster network at its gateway's request.
		return errdefs.Invalid("cluster network %s has no configuration in the cluster yet (no gateway address was requested for it)", cn.Name)
	}
	cfg.Cluster, cfg.VNI, cfg.VXLANPort, cfg.VXLAN = cn.Name, cn.VNI, cn.Port, VXLANPrefix+cfg.ID[:12]
	if cfg.Subnet6.IsValid() && !cfg.NoIPv4 {
		// Dual stack: the IPv6 pool must be the same cluster network's
		// (mynet's IPAM settled its subnet and gateway in the cluster).
		cn6, ok6 := d.cluster.Of(space, cfg.Subnet6)
		switch {
		case !ok6 || cn6.Name != cn.Name:
			return errdefs.Invalid("cluster network %s: its IPv6 subnet %s must come from mynet's IPAM with --ipam-opt %s=%s too", cn.Name, cfg.Subnet6, OptCluster, cn.Name)
		case cn6.VNI != cn.VNI:
			return errdefs.Invalid("cluster network %s: its IPv6 subnet %s has no configuration in the cluster yet (no IPv6 gateway address was requested for it)", cn.Name, cfg.Subnet6)
		}
	}
	if err := d.settlePolicy(cfg, cn.Name); err != nil {
		return err
	}
	over, wg := netutil.Overheads(d.cluster.Underlay)
	carrier := "VXLAN"
	if d.cluster.Underlay.Is6() {
		carrier = "VXLAN over IPv6"
	}
	if cfg.Encrypted {
		if d.cluster.Tunnel == nil {
			return errdefs.Invalid("cluster network %s is encrypted, and this mynet has no WireGuard tunnel", cn.Name)
		}
		vtep, err := d.cluster.Tunnel.Address()
		if err != nil {
			return errdefs.Invalid("cluster network %s is encrypted, and this host cannot encrypt: %v", cn.Name, err)
		}
		cfg.VTEP = vtep
		// The tunnel's addresses, and so its VXLAN, are IPv4, inside
		// WireGuard over the underlay's family.
		over, carrier = netutil.VXLANOverhead+wg, "VXLAN in WireGuard"
	}
	// One MTU on every host: the first host's (its option, or its
	// underlay's less the overhead), settled in the cluster.
	limit := d.cluster.UnderlayMTU - over
	asked := cfg.MTU
	if asked > limit {
		return errdefs.Invalid("option %s: %d does not fit in %s over the underlay's MTU %d (at most %d)", OptMTU, asked, carrier, d.cluster.UnderlayMTU, limit)
	}
	mtu, err := d.cluster.Client.SettleMTU(cn.Name, cmp.Or(asked, limit))
	switch {
	case err != nil && cluster.IsConflict(err):
		return errdefs.Invalid("%v", err)
	case err != nil:
		return err
	case asked != 0 && asked != mtu:
		return errdefs.Invalid("cluster network %s has MTU %d on every host: create it with -o %s=%d (or none)", cn.Name, mtu, OptMTU, mtu)
	case mtu > limit:
		return errdefs.Invalid("cluster network %s has MTU %d on every host, but this host's underlay (MTU %d) carries at most %d: raise the underlay's MTU, or make the network again with -o %s=%d on its first host",
			cn.Name, mtu, d.cluster.UnderlayMTU, limit, OptMTU, limit)
	}
	cfg.MTU = mtu
	return nil
}

// settlePolicy holds a cluster network to one behaviour on every host
// (internal, ICC, masquerade, gateway modes, encryption): the first host's, settled in
// the cluster; a host that asks for another is refused with the values.
func (d *Driver) settlePolicy(cfg *NetworkConfig, name string) error {
	asked := cluster.Policy{Internal: cfg.Internal, ICC: cfg.ICC, Masquerade: cfg.Masquerade, GatewayMode: cfg.GatewayMode4,
		GatewayMode6: cfg.GatewayMode6, Encrypted: cfg.Encrypted}
	got, err := d.cluster.Client.SettlePolicy(name, asked)
	if got.GatewayMode6 == "" { // settled before the IPv6 mode was kept
		got.GatewayMode6 = GatewayNAT
	}
	switch {
	case err != nil && cluster.IsConflict(err):
		return errdefs.Invalid("%v", err)
	case err != nil:
		return err
	case got != asked:
		return errdefs.Invalid("cluster network %s is %s on every host, this host asked for %s: create it with the same options (--internal, -o %s, -o %s, -o %s, -o %s, -o %s)",
			name, policyText(got), policyText(asked), OptEnableICC, OptEnableMasq, OptGatewayMode4, OptGatewayMode6, OptEncrypted)
	}
	return nil
}

func policyText(p cluster.Policy) string {
	return fmt.Sprintf("internal=%v enable_icc=%v enable_ip_masquerade=%v gateway_mode_ipv4=%s gateway_mode_ipv6=%s encrypted=%v",
		p.Internal, p.ICC, p.Masquerade, p.GatewayMode, p.GatewayMode6, p.Encrypted)
}

// vxlanConfig is the network's VXLAN device; underlay is this host's
// underlay address, its VTEP unless the network is encrypted.
func (cfg *NetworkConfig) vxlanConfig(underlay netip.Addr) netutil.VXLANConfig {
	return netutil.VXLANConfig{Name: cfg.VXLAN, VNI: cfg.VNI, Port: cfg.UDPPort(), Local: cfg.localVTEP(underlay), Bridge: cfg.BridgeName, MTU: cfg.MTU}
}

// localVTEP is this host's VTEP on the network: its tunnel address for an
// encrypted network, else its underlay address.
func (cfg *NetworkConfig) localVTEP(underlay netip.Addr) netip.Addr {
	if cfg.Encrypted {
		return cfg.VTEP
	}
	return underlay
}

// UDPPort is a cluster network's VXLAN port: the sealed port inside the
// WireGuard tunnel for an encrypted network, else its own, or IANA's for
// one made before mynet had a port of its own (VXLANPort 0).
func (cfg *NetworkConfig) UDPPort() int {
	if cfg.Encrypted {
		return netutil.SealedVXLANPort
	}
	if cfg.VXLANPort == 0 {
		return netutil.VXLANPort
	}
	return cfg.VXLANPort
}
