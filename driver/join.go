package driver

import (
	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/engineapi"
	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/ids"
)

// Join implements network.Driver: Docker moves the container end of the veth
// into the sandbox, names it (the endpoint's ifname, else the prefix and a
// number), and routes through the gateway.
func (d *Driver) Join(req *network.JoinRequest) (*engineapi.JoinResponse, error) {
	ep, cfg, err := d.endpoint(req.NetworkID, req.EndpointID)
	if err != nil {
		return nil, err
	}
	res := &engineapi.JoinResponse{
		InterfaceName: engineapi.InterfaceName{SrcName: ep.PeerVeth, DstPrefix: cfg.ContainerPrefix, DstName: ep.IfName},
	}
	if !cfg.Internal {
		// Like Docker's bridge: an internal network gives no default route.
		if cfg.Gateway.IsValid() {
			res.Gateway = cfg.Gateway.Addr().String()
		}
		if cfg.Gateway6.IsValid() && ep.AddressIPv6.IsValid() {
			res.GatewayIPv6 = cfg.Gateway6.Addr().String()
		}
	}
	if err := d.openRoutedPorts(req.Options, ep.NetworkID, ep.ID); err != nil {
		return nil, err
	}
	d.joinNames(ep, cfg, req.SandboxKey)
	d.log.WithFields(logrus.Fields{"network": ids.Short(ep.NetworkID), "endpoint": ids.Short(ep.ID), "sandbox": req.SandboxKey}).Info("endpoint joined")
	return res, nil
}

// Leave implements network.Driver. Docker takes the interface back out of
// the sandbox itself; the ports still open (a routed network's, which
// Revoke keeps) close, and the rest waits for DeleteEndpoint.
func (d *Driver) Leave(req *network.LeaveRequest) error {
	if ep, _, err := d.endpoint(req.NetworkID, req.EndpointID); err == nil && ep.Sandbox != "" {
		d.leaveNames(ep)
		ep.Sandbox = ""
		if err := d.saveEndpoint(&ep); err != nil {
			d.log.WithError(err).WithField("endpoint", ids.Short(ep.ID)).Warn("could not save the endpoint's leave")
		}
	}
	if err := d.closePorts(req.NetworkID, req.EndpointID); err != nil {
		if errdefs.IsNotFound(err) {
			return nil // a repeated Leave
		}
		return err
	}
	d.log.WithFields(logrus.Fields{"network": ids.Short(req.NetworkID), "endpoint": ids.Short(req.EndpointID)}).Info("endpoint left")
	return nil
}
