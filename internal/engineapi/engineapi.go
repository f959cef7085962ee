// Package engineapi holds the parts of Docker's remote driver API that
// Engine 29 has and github.com/docker/go-plugins-helpers does not, so that
// the plugin layer, which encodes them, and the driver, which fills them,
// share one definition. The JSON is moby's
// (daemon/libnetwork/drivers/remote/api): field names as Go writes them,
// no tags.
package engineapi

import "github.com/docker/go-plugins-helpers/network"

// InterfaceName names the container's interface. DstName, when set, is its
// exact name (Engine 29; the option com.docker.network.endpoint.ifname);
// otherwise dockerd makes one from DstPrefix and a number. Older engines
// read DstPrefix only.
type InterfaceName struct {
	SrcName   string
	DstName   string
	DstPrefix string
}

// JoinResponse is network.JoinResponse with Engine 29's InterfaceName.
type JoinResponse struct {
	InterfaceName         InterfaceName
	Gateway               string
	GatewayIPv6           string
	StaticRoutes          []*network.StaticRoute
	DisableGatewayService bool
}
