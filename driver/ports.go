package driver

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/fault"
	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/internal/hostport"
	"github.com/mynet/mynet/internal/ids"
)

const optPortMap = "com.docker.network.portmap"

// PortMapping is one published port of an endpoint, as programmed: the host
// port is the one mynet reserved (an ephemeral one for -p CONTAINERPORT).
type PortMapping struct {
	Proto         string     `json:"proto"`
	HostIP        netip.Addr `json:"host_ip"` // unspecified (0.0.0.0 or ::) for every host address
	HostPort      uint16     `json:"host_port"`
	ContainerIP   netip.Addr `json:"container_ip"`
	ContainerPort uint16     `json:"container_port"`
}

func (p PortMapping) key() hostport.Key {
	return hostport.Key{Proto: p.Proto, IP: p.HostIP, Port: p.HostPort}
}

// String renders the mapping like `docker port` does: 0.0.0.0:8080->80/tcp.
func (p PortMapping) String() string {
	host := p.HostIP.String()
	if p.HostIP.Is6() {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s:%d->%d/%s", host, p.HostPort, p.ContainerPort, p.Proto)
}

// FormatPorts renders mappings for status output.
func FormatPorts(ports []PortMapping) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}

// dockerPortBinding is libnetwork's types.PortBinding on the wire.
type dockerPortBinding struct {
	Proto       uint8
	IP          string
	Port        uint16
	HostIP      string
	HostPort    uint16
	HostPortEnd uint16
}

func protoName(p uint8) (string, error) {
	switch p {
	case 6:
		return "tcp", nil
	case 17:
		return "udp", nil
	case 132:
		return "sctp", nil
	}
	return "", errdefs.Invalid("unsupported port protocol number %d", p)
}

// portRequest is one binding to reserve and program.
type portRequest struct {
	proto         string
	hostIP        netip.Addr
	first, last   uint16
	containerIP   netip.Addr
	containerPort uint16
}

// parsePortMap reads the portmap option into the bindings to program for
// an endpoint: each Docker binding becomes one for IPv4 and, when the
// endpoint has an IPv6 address and the host address allows it, one for IPv6.
func parsePortMap(opts map[string]any, cfg *NetworkConfig, ep *Endpoint) ([]portRequest, error) {
	raw, ok := opts[optPortMap]
	if !ok || raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, errdefs.Invalid("option %s: %v", optPortMap, err)
	}
	var bindings []dockerPortBinding
	if err := json.Unmarshal(b, &bindings); err != nil {
		return nil, errdefs.Invalid("option %s: %v", optPortMap, err)
	}
	var out []portRequest
	for _, pb := range bindings {
		proto, err := protoName(pb.Proto)
		if err != nil {
			return nil, err
		}
		if pb.Port == 0 {
			return nil, errdefs.Invalid("port binding without a container port")
		}
		if pb.HostPortEnd != 0 && pb.HostPortEnd < pb.HostPort {
			return nil, errdefs.Invalid("host port range %d-%d is reversed", pb.HostPort, pb.HostPortEnd)
		}
		hostIP := cfg.HostBinding
		if pb.HostIP != "" {
			if hostIP, err = netip.ParseAddr(pb.HostIP); err != nil {
				return nil, errdefs.Invalid("invalid host IP %q in port binding", pb.HostIP)
			}
			hostIP = hostIP.Unmap()
		}
		last := max(pb.HostPortEnd, pb.HostPort)
		add := func(hostIP, ctr netip.Addr) {
			out = append(out, portRequest{proto, hostIP, pb.HostPort, last, ctr, pb.Port})
		}
		switch {
		case !hostIP.IsValid(): // every host address, both families
			if ep.Address.IsValid() {
				add(netip.IPv4Unspecified(), ep.Address.Addr())
			}
			if ep.AddressIPv6.IsValid() {
				add(netip.IPv6Unspecified(), ep.AddressIPv6.Addr())
			}
		case hostIP.Is4() && ep.Address.IsValid():
			add(hostIP, ep.Address.Addr())
		case hostIP.Is4():
			return nil, errdefs.Invalid("cannot publish on IPv4 address %s: the container has no IPv4 address", hostIP)
		case ep.AddressIPv6.IsValid():
			add(hostIP, ep.AddressIPv6.Addr())
		default:
			return nil, errdefs.Invalid("cannot publish on IPv6 address %s: the container has no IPv6 address", hostIP)
		}
	}
	return out, nil
}

// ProgramExternalConnectivity implements network.Driver: it publishes the
// endpoint's ports. Each host port is reserved first (a port in use is a
// clear error and nothing is left behind), then all DNAT rules are written
// in one batch. In routed mode no host port is used: the container ports
// are opened to routed traffic instead.
func (d *Driver) ProgramExternalConnectivity(req *network.ProgramExternalConnectivityRequest) error {
	unlock, err := d.lockEndpoint(req.EndpointID)
	if err != nil {
		return err
	}
	defer unlock()
	ep, cfg, err := d.endpoint(req.NetworkID, req.EndpointID)
	if err != nil {
		return err
	}
	reqs, err := parsePortMap(req.Options, &cfg, &ep)
	if err != nil {
		return err
	}
	if len(reqs) == 0 && len(ep.Ports) == 0 {
		return nil // nothing to publish, as for most containers
	}
	log := d.log.WithFields(logrus.Fields{"network": ids.Short(ep.NetworkID), "endpoint": ids.Short(ep.ID)})
	if cfg.Internal {
		if len(reqs) > 0 {
			log.Info("ports are not published on an internal network")
		}
		return nil
	}
	// A repeated call replaces what the first one did.
	if len(ep.Ports) > 0 {
		if err := d.unpublish(&ep); err != nil {
			return err
		}
		ep.Ports = nil
	}
	var mapped []PortMapping
	for _, r := range reqs {
		m := PortMapping{Proto: r.proto, HostIP: r.hostIP, ContainerIP: r.containerIP, ContainerPort: r.containerPort}
		if cfg.Routed(family(r.containerIP)) {
			m.HostPort = r.containerPort // no host port: the rule opens the container port
		} else {
			port, err := d.ports.Reserve(r.proto, r.hostIP, r.first, r.last)
			if err != nil {
				d.releasePorts(mapped)
				return errdefs.Conflict("cannot publish %s port %d of endpoint %s: %v", r.proto, r.containerPort, ids.Short(ep.ID), err)
			}
			m.HostPort = port
		}
		mapped = append(mapped, m)
	}
	d.fault.At(fault.ProgramReserved)
	if err := d.fw.SetEndpoint(firewallNetwork(&cfg), firewallEndpoint(&ep, mapped)); err != nil {
		d.releasePorts(mapped)
		_ = d.fw.SetEndpoint(firewallNetwork(&cfg), firewallEndpoint(&ep, nil))
		return fmt.Errorf("publish ports of endpoint %s: %w", ids.Short(ep.ID), err)
	}
	d.fault.At(fault.ProgramFirewall)
	ep.Ports = mapped
	if err := d.saveEndpoint(&ep); err != nil {
		d.releasePorts(mapped)
		_ = d.fw.SetEndpoint(firewallNetwork(&cfg), firewallEndpoint(&ep, nil))
		return err
	}
	d.fault.At(fault.ProgramSaved)
	if len(mapped) > 0 {
		log.WithField("ports", FormatPorts(mapped)).Info("ports published")
	}
	return nil
}

// RevokeExternalConnectivity implements network.Driver: the endpoint's
// published ports are removed and their host ports released, but for those
// of a family the network routes, which stay until Leave (openRoutedPorts).
func (d *Driver) RevokeExternalConnectivity(req *network.RevokeExternalConnectivityRequest) error {
	unlock, err := d.lockEndpoint(req.EndpointID)
	if err != nil {
		return err
	}
	defer unlock()
	ep, cfg, err := d.endpoint(req.NetworkID, req.EndpointID)
	if errdefs.IsNotFound(err) {
		return nil // a repeated revoke, or one after DeleteEndpoint
	}
	if err != nil {
		return err
	}
	keep := routedPorts(&cfg, ep.Ports)
	if len(keep) == len(ep.Ports) {
		return nil
	}
	if err := d.fw.SetEndpoint(firewallNetwork(&cfg), firewallEndpoint(&ep, keep)); err != nil {
		return fmt.Errorf("remove port rules of endpoint %s: %w", ids.Short(ep.ID), err)
	}
	d.releasePorts(slices.DeleteFunc(slices.Clone(ep.Ports), func(p PortMapping) bool { return slices.Contains(keep, p) }))
	d.fault.At(fault.RevokeFirewall)
	ep.Ports = keep
	if err := d.saveEndpoint(&ep); err != nil {
		return err
	}
	d.log.WithFields(logrus.Fields{"network": ids.Short(ep.NetworkID), "endpoint": ids.Short(ep.ID)}).Info("ports revoked")
	return nil
}

// routedPorts are the mappings of the families the network routes: no host
// port, the container port opened to routed traffic.
func routedPorts(cfg *NetworkConfig, ports []PortMapping) []PortMapping {
	var out []PortMapping
	for _, p := range ports {
		if cfg.Routed(family(p.ContainerIP)) {
			out = append(out, p)
		}
	}
	return out
}

// openRoutedPorts opens, at Join, the container ports an endpoint publishes
// in a family its network routes. Engine 29's bridge keeps those open for
// every endpoint from Join to Leave, the container's gateway or not, while
// the engine calls ProgramExternalConnectivity for the gateway endpoints
// only: without this, a routed network that is not a container's gateway
// network would stay closed to the hosts that route to it. An endpoint
// that has ports already (a repeated Join) keeps them.
func (d *Driver) openRoutedPorts(opts map[string]any, networkID, endpointID string) error {
	unlock, err := d.lockEndpoint(endpointID)
	if err != nil {
		return err
	}
	defer unlock()
	ep, cfg, err := d.endpoint(networkID, endpointID)
	if err != nil {
		return err
	}
	if cfg.Internal || (!cfg.Routed(4) && !cfg.Routed(6)) || len(ep.Ports) > 0 {
		return nil
	}
	reqs, err := parsePortMap(opts, &cfg, &ep)
	if err != nil {
		return err
	}
	var mapped []PortMapping
	for _, r := range reqs {
		if cfg.Routed(family(r.containerIP)) {
			mapped = append(mapped, PortMapping{Proto: r.proto, HostIP: r.hostIP, HostPort: r.containerPort,
				ContainerIP: r.containerIP, ContainerPort: r.containerPort})
		}
	}
	if len(mapped) == 0 {
		return nil
	}
	if err := d.fw.SetEndpoint(firewallNetwork(&cfg), firewallEndpoint(&ep, mapped)); err != nil {
		_ = d.fw.SetEndpoint(firewallNetwork(&cfg), firewallEndpoint(&ep, nil))
		return fmt.Errorf("open routed ports of endpoint %s: %w", ids.Short(ep.ID), err)
	}
	ep.Ports = mapped
	if err := d.saveEndpoint(&ep); err != nil {
		_ = d.fw.SetEndpoint(firewallNetwork(&cfg), firewallEndpoint(&ep, nil))
		return err
	}
	d.log.WithFields(logrus.Fields{"network": ids.Short(ep.NetworkID), "endpoint": ids.Short(ep.ID), "ports": FormatPorts(mapped)}).
		Info("routed ports opened")
	return nil
}

// closePorts removes every port of an endpoint (Leave).
func (d *Driver) closePorts(networkID, endpointID string) error {
	unlock, err := d.lockEndpoint(endpointID)
	if err != nil {
		return err
	}
	defer unlock()
	ep, _, err := d.endpoint(networkID, endpointID)
	if err != nil || len(ep.Ports) == 0 {
		return err
	}
	if err := d.unpublish(&ep); err != nil {
		return err
	}
	ep.Ports = nil
	return d.saveEndpoint(&ep)
}

// unpublish removes an endpoint's port rules and releases its host ports.
func (d *Driver) unpublish(ep *Endpoint) error {
	d.mu.Lock()
	n := d.networks[ep.NetworkID]
	d.mu.Unlock()
	if n != nil {
		cfg := n.Config
		if err := d.fw.SetEndpoint(firewallNetwork(&cfg), firewallEndpoint(ep, nil)); err != nil {
			return fmt.Errorf("remove port rules of endpoint %s: %w", ids.Short(ep.ID), err)
		}
	}
	d.releasePorts(ep.Ports)
	return nil
}

func (d *Driver) releasePorts(ports []PortMapping) {
	for _, p := range ports {
		if p.HostPort != 0 {
			d.ports.Release(p.key())
		}
	}
}

// reservePorts takes an endpoint's host ports back after a restart (the
// rules are Reconcile's). Caller holds d.mu.
func (d *Driver) reservePorts(cfg *NetworkConfig, ep *Endpoint) error {
	var failed []string
	for _, p := range ep.Ports {
		if cfg.Routed(family(p.ContainerIP)) {
			continue
		}
		if _, err := d.ports.Reserve(p.Proto, p.HostIP, p.HostPort, p.HostPort); err != nil {
			failed = append(failed, p.String())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("host ports taken while mynet was down (still forwarded, but unreserved): %s", strings.Join(failed, ", "))
	}
	return nil
}

func firewallEndpoint(ep *Endpoint, ports []PortMapping) firewall.Endpoint {
	fe := firewall.Endpoint{NetworkID: ep.NetworkID, EndpointID: ep.ID}
	for _, p := range ports {
		fe.Ports = append(fe.Ports, firewall.PortBinding{
			Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, ContainerIP: p.ContainerIP, ContainerPort: p.ContainerPort,
		})
	}
	return fe
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}
