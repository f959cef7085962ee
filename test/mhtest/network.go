package mhtest

import (
	"fmt"
	"maps"
	"strings"
)

// clusterNet is a cluster network as one host's dockerd created it.
type ClusterNet struct {
	Host   *Host
	ID     string // this host's Docker network ID
	PoolID string
	GW     string
	// PoolID6 and GW6 are a dual-stack network's IPv6 pool and gateway
	// ("" otherwise).
	PoolID6 string
	GW6     string
}

// createNetwork plays `docker network create -d mynet --ipam-driver mynet
// --ipam-opt mynet.cluster=NAME [--subnet SUBNET] NAME` on one host.
func (h *Host) CreateNetwork(name, subnet string) *ClusterNet {
	h.w.t.Helper()
	return h.CreateNetworkWith(name, subnet, nil)
}

// CreateNetworkWith is CreateNetwork with driver options (-o KEY=VALUE).
func (h *Host) CreateNetworkWith(name, subnet string, opts map[string]string) *ClusterNet {
	h.w.t.Helper()
	n, err := h.TryCreateNetworkWith(name, subnet, opts)
	if err != nil {
		h.w.t.Fatalf("%s: create network %s: %v\nlog:\n%s", h.Name, name, err, Tail(h.log.String(), 3000))
	}
	return n
}

// CreateIPv6Only plays `docker network create ... --ipv6 -o
// com.docker.network.enable_ipv4=false [--subnet SUBNET6] NAME` (Engine
// 28 and later): an IPv6 pool and gateway only.
func (h *Host) CreateIPv6Only(name, subnet6 string) *ClusterNet {
	h.w.t.Helper()
	n, err := h.TryCreateNetworkWith(name, "", map[string]string{"com.docker.network.enable_ipv6": "true",
		"com.docker.network.enable_ipv4": "false", "subnet6": subnet6})
	if err != nil {
		h.w.t.Fatalf("%s: create network %s: %v\nlog:\n%s", h.Name, name, err, Tail(h.log.String(), 3000))
	}
	return n
}

// CreateDualStack plays `docker network create ... --ipv6 [--subnet
// SUBNET] [--subnet SUBNET6] NAME` on one host: the IPv4 pool and
// gateway, then the IPv6 ones, as dockerd asks.
func (h *Host) CreateDualStack(name, subnet, subnet6 string) *ClusterNet {
	h.w.t.Helper()
	n, err := h.TryCreateNetworkWith(name, subnet, map[string]string{"com.docker.network.enable_ipv6": "true", "subnet6": subnet6})
	if err != nil {
		h.w.t.Fatalf("%s: create network %s: %v\nlog:\n%s", h.Name, name, err, Tail(h.log.String(), 3000))
	}
	return n
}

// TryCreateNetworkWith is CreateNetworkWith that returns the driver's
// refusal; the pool and gateway address are given back then, as dockerd
// does. With opts com.docker.network.enable_ipv6=true the network is dual
// stack, its IPv6 subnet opts' "subnet6" ("": the cluster's); with
// com.docker.network.enable_ipv4=false as well, IPv6-only.
func (h *Host) TryCreateNetworkWith(name, subnet string, opts map[string]string) (*ClusterNet, error) {
	h.w.t.Helper()
	opts = maps.Clone(opts)
	subnet6, dual := opts["subnet6"], opts["com.docker.network.enable_ipv6"] == "true"
	only6 := dual && opts["com.docker.network.enable_ipv4"] == "false"
	delete(opts, "subnet6")
	delete(opts, "com.docker.network.enable_ipv4")
	epSeq.Lock()
	epSeq.n++
	id := fmt.Sprintf("c%09x%02d%s", epSeq.n, h.n, strings.Repeat("0", 52))
	epSeq.Unlock()
	n := &ClusterNet{Host: h, ID: id}
	generic := map[string]any{}
	for k, v := range opts {
		generic[k] = v
	}
	req := map[string]any{"NetworkID": id, "Options": map[string]any{"com.docker.network.generic": generic}}
	if only6 {
		req["Options"].(map[string]any)["com.docker.network.enable_ipv4"] = false
	} else {
		pool := h.Call("/IpamDriver.RequestPool", map[string]any{"AddressSpace": "LocalDefault", "Pool": subnet,
			"Options": map[string]string{"mynet.cluster": name}})
		n.PoolID = pool["PoolID"].(string)
		n.GW = h.Call("/IpamDriver.RequestAddress", map[string]any{"PoolID": n.PoolID,
			"Options": map[string]string{"RequestAddressType": "com.docker.network.gateway"}})["Address"].(string)
		req["IPv4Data"] = []map[string]any{{"AddressSpace": "LocalDefault", "Pool": pool["Pool"], "Gateway": n.GW}}
	}
	release := func() {
		if n.PoolID6 != "" {
			if n.GW6 != "" {
				h.Call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": n.PoolID6, "Address": strings.Split(n.GW6, "/")[0]})
			}
			h.Call("/IpamDriver.ReleasePool", map[string]any{"PoolID": n.PoolID6})
		}
		if n.PoolID != "" {
			h.Call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": n.PoolID, "Address": strings.Split(n.GW, "/")[0]})
			h.Call("/IpamDriver.ReleasePool", map[string]any{"PoolID": n.PoolID})
		}
	}
	if dual {
		pool6, err := h.Try("/IpamDriver.RequestPool", map[string]any{"AddressSpace": "LocalDefault", "Pool": subnet6, "V6": true,
			"Options": map[string]string{"mynet.cluster": name}})
		if err != nil {
			release()
			return nil, err
		}
		n.PoolID6 = pool6["PoolID"].(string)
		gw6, err := h.Try("/IpamDriver.RequestAddress", map[string]any{"PoolID": n.PoolID6,
			"Options": map[string]string{"RequestAddressType": "com.docker.network.gateway"}})
		if err != nil {
			release()
			return nil, err
		}
		n.GW6 = gw6["Address"].(string)
		req["Options"].(map[string]any)["com.docker.network.enable_ipv6"] = true
		req["IPv6Data"] = []map[string]any{{"AddressSpace": "LocalDefault", "Pool": pool6["Pool"], "Gateway": n.GW6}}
	}
	if _, err := h.Try("/NetworkDriver.CreateNetwork", req); err != nil {
		release()
		return nil, err
	}
	return n, nil
}
