package netutil

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// dockerNFTTable is the nftables table of a dockerd with
// --firewall-backend=nftables (Engine 28 and later); it keeps one chain
// filter-forward-in__BR per bridge BR of its networks.
const (
	dockerNFTTable  = "docker-bridges"
	dockerNFTPrefix = "filter-forward-in__"
)

// nfgenmsg is the header of an nfnetlink message (family, version, res_id).
type nfgenmsg struct{ family uint8 }

func (m nfgenmsg) Len() int { return 4 }

func (m nfgenmsg) Serialize() []byte { return []byte{m.family, unix.NFNETLINK_V0, 0, 0} }

// DockerNFTBridges returns the bridges that a dockerd on nftables keeps
// rules for in this namespace, read from its chains through netlink (nft
// list chains ip docker-bridges, and ip6). None is no error: that dockerd
// is not there, or uses iptables.
func DockerNFTBridges() ([]string, error) {
	var out []string
	for _, family := range []uint8{unix.NFPROTO_IPV4, unix.NFPROTO_IPV6} {
		chains, err := nftChains(family)
		if err != nil {
			return nil, err
		}
		for _, c := range chains {
			if c.table == dockerNFTTable && strings.HasPrefix(c.name, dockerNFTPrefix) {
				out = append(out, strings.TrimPrefix(c.name, dockerNFTPrefix))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

type nftChain struct{ table, name string }

// nftChains dumps the nftables chains of one family.
func nftChains(family uint8) ([]nftChain, error) {
	req := nl.NewNetlinkRequest(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETCHAIN, unix.NLM_F_DUMP)
	req.AddData(nfgenmsg{family: family})
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return nil, fmt.Errorf("list nftables chains: %w", err)
	}
	var out []nftChain
	for _, m := range msgs {
		if len(m) < 4 {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[4:])
		if err != nil {
			return nil, fmt.Errorf("parse an nftables chain: %w", err)
		}
		var c nftChain
		for _, a := range attrs {
			switch a.Attr.Type & nl.NLA_TYPE_MASK {
			case unix.NFTA_CHAIN_TABLE:
				c.table = strings.TrimRight(string(a.Value), "\x00")
			case unix.NFTA_CHAIN_NAME:
				c.name = strings.TrimRight(string(a.Value), "\x00")
			}
		}
		out = append(out, c)
	}
	return out, nil
}
