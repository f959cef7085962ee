package netutil

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ipv4DevconfRouteLocalnet is IPV4_DEVCONF_ROUTE_LOCALNET in linux/ip.h.
const ipv4DevconfRouteLocalnet = 26

// setLink changes the link named name, in this namespace, with one
// attribute: RTM_SETLINK for generic ones, RTM_NEWLINK (without CREATE, so a
// change) for kind-specific IFLA_INFO_DATA, which only that message applies.
func (l *Links) setLink(name string, msgType int, attr *nl.RtAttr) error {
	link, err := linkByName(l.h, name)
	if err != nil {
		return fmt.Errorf("look up %q: %w", name, err)
	}
	req := nl.NewNetlinkRequest(msgType, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(link.Attrs().Index)
	req.AddData(msg)
	req.AddData(attr)
	_, err = req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// SetRouteLocalnet lets packets with a loopback source be routed out of the
// link (sysctl net.ipv4.conf.NAME.route_localnet=1), so that DNAT of
// 127.0.0.1 to a container works. It goes through netlink (RTM_SETLINK,
// IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF), which needs only CAP_NET_ADMIN and
// works where /proc/sys is read-only, as inside a managed plugin.
func (l *Links) SetRouteLocalnet(name string) error {
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
	inet := spec.AddRtAttr(unix.AF_INET, nil)
	conf := inet.AddRtAttr(unix.IFLA_INET_CONF, nil)
	conf.AddRtAttr(ipv4DevconfRouteLocalnet, nl.Uint32Attr(1))
	if err := l.setLink(name, unix.RTM_SETLINK, spec); err != nil {
		return fmt.Errorf("set route_localnet on %q: %w", name, err)
	}
	return nil
}

// SetBridgeNetfilter makes the bridge pass the traffic between its ports
// through iptables (and ip6tables), which enable_icc=false relies on (ip
// link set NAME type bridge nf_call_iptables 1 nf_call_ip6tables 1). It needs
// the br_netfilter module, which dockerd loads; without it, the error says so.
func (l *Links) SetBridgeNetfilter(name string) error {
	if _, err := os.Stat("/proc/sys/net/bridge"); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bridge %q cannot pass traffic to iptables: load the br_netfilter module on the host (modprobe br_netfilter)", name)
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(unix.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(unix.IFLA_INFO_DATA, nil)
	data.AddRtAttr(unix.IFLA_BR_NF_CALL_IPTABLES, nl.Uint8Attr(1))
	data.AddRtAttr(unix.IFLA_BR_NF_CALL_IP6TABLES, nl.Uint8Attr(1))
	if err := l.setLink(name, unix.RTM_NEWLINK, info); err != nil {
		return fmt.Errorf("set nf_call_iptables on bridge %q: %w", name, err)
	}
	return nil
}
