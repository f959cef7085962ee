package status

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/internal/ids"
)

// Print writes the report as tables.
func Print(w io.Writer, r Report) {
	fmt.Fprintf(w, "source: %s", r.Source)
	if r.Socket != "" {
		fmt.Fprintf(w, " on %s", r.Socket)
	}
	fmt.Fprintln(w)
	if h := r.Health; h != nil {
		printHealth(w, h)
	}
	fmt.Fprintf(w, "\nNETWORKS\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tBRIDGE\tSUBNET\tGATEWAY\tIPV6\tENDPOINTS\tOPTIONS")
	for _, n := range r.Networks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", ids.Short(n.ID), n.BridgeName, orDash(n.Subnet.String(), n.Subnet.IsValid()),
			orDash(n.Gateway.Addr().String(), n.Gateway.IsValid()),
			orDash(n.Subnet6.String(), n.Subnet6.IsValid()), n.Endpoints, strings.Join(options(n), ","))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nENDPOINTS\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNETWORK\tVETH\tADDRESS\tMAC\tPORTS")
	for _, e := range r.Endpoints {
		var addrs []string
		for _, a := range []netip.Prefix{e.Address, e.AddressIPv6} {
			if a.IsValid() {
				addrs = append(addrs, a.String())
			}
		}
		addr := strings.Join(addrs, " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ids.Short(e.ID), ids.Short(e.NetworkID), e.HostVeth, addr, e.MAC, e.PortsText)
	}
	tw.Flush()
	if c := r.Cluster; c != nil {
		printCluster(w, c)
	}
	fmt.Fprintf(w, "\nIPAM POOLS\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tALLOCATED\tSIZE")
	for _, p := range r.Pools {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", p.ID, p.Allocated, p.Size)
	}
	tw.Flush()
}

func printHealth(w io.Writer, h *Health) {
	fmt.Fprintf(w, "health: %s (mynet %s, up since %s)\n", h.Status, h.Version, h.Started.Format(time.RFC3339))
	for _, p := range h.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	state := "writable"
	if !h.StateFile.Writable {
		state = "NOT WRITABLE: " + h.StateFile.Error
	}
	fmt.Fprintf(tw, "  state file\t%s\t%s\n", h.StateFile.Path, state)
	ipt := fmt.Sprintf("%s %s", h.IPTables.Backend, h.IPTables.Version)
	switch {
	case !h.IPTables.Reachable:
		ipt += ", NOT REACHABLE: " + h.IPTables.Error
	case h.IPTables.BaseInstalled:
		ipt += ", mynet's chains installed"
	default:
		ipt += ", mynet's chains not installed (no network yet)"
	}
	if h.IPTables.IPv6 {
		ipt += ", IPv6"
	}
	fmt.Fprintf(tw, "  iptables\t%s\n", ipt)
	rec := "not run yet"
	if !h.Reconcile.Time.IsZero() {
		rec = fmt.Sprintf("%s (%s): ", h.Reconcile.Time.Format(time.RFC3339), h.Reconcile.Trigger)
		if h.Reconcile.OK {
			rec += fmt.Sprintf("ok, %d repaired", h.Reconcile.Repaired)
		} else {
			rec += "FAILED: " + h.Reconcile.Error
		}
	}
	fmt.Fprintf(tw, "  last reconcile\t%s\n", rec)
	fmt.Fprintf(tw, "  holds\t%d networks, %d endpoints\n", h.Networks, h.Endpoints)
	if h.DockerSync != "" {
		fmt.Fprintf(tw, "  docker sync\t%s\n", h.DockerSync)
	}
	if h.Names != "" {
		fmt.Fprintf(tw, "  names across hosts\t%s\n", h.Names)
	}
	tw.Flush()
}

func printCluster(w io.Writer, c *Cluster) {
	state := "reachable"
	if !c.Reachable {
		state = "UNREACHABLE: " + c.Error
	}
	fmt.Fprintf(w, "\nCLUSTER\nnode %s (%s), store %s: %s\n", c.Node, c.Advertise, strings.Join(c.Store, ","), state)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tALIVE")
	for _, p := range c.Hosts {
		fmt.Fprintf(tw, "%s\t%s\t%v\n", p.Name, p.Addr, p.Alive)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nPEERS (other hosts' containers)\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tADDRESS\tNAME\tMAC\tHOST\tVTEP")
	nets := make([]string, 0, len(c.Peers))
	for id := range c.Peers {
		nets = append(nets, id)
	}
	sort.Strings(nets)
	for _, id := range nets {
		for _, p := range c.Peers[id] {
			name := p.Name
			if name == "" {
				name = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ids.Short(id), p.IP, name, p.MAC, p.Node, p.VTEP)
		}
	}
	tw.Flush()
	if t := c.Tunnel; t != nil {
		printTunnel(w, t)
	}
	if s := c.DockerSync; s != nil {
		state := "on"
		if !s.On {
			state = "OFF: " + s.Reason
		}
		fmt.Fprintf(w, "\nDOCKER SYNC (%s, driver %s): %s\n", s.DockerHost, s.Driver, state)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLUSTER NETWORK\tDOCKER NAME\tSTATE\tDETAIL")
		for _, n := range s.Networks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Cluster, n.Name, n.State, n.Detail)
		}
		tw.Flush()
	}
}

func printTunnel(w io.Writer, t *Tunnel) {
	fmt.Fprintf(w, "\nWIREGUARD (device %s, %s, %s, port %d, key %s)\n", t.Device, t.Kind, t.Address, t.Port, t.PublicKey)
	if t.Error != "" {
		fmt.Fprintf(w, "DEVICE UNREADABLE: %s\n", t.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tENDPOINT\tTUNNEL\tLAST HANDSHAKE\tRECEIVED\tSENT")
	for _, p := range t.Peers {
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = time.Since(p.LastHandshake).Truncate(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", p.Node, p.Endpoint, p.Tunnel, hs, p.Received, p.Sent)
	}
	tw.Flush()
}

func options(n Network) []string {
	var opts []string
	if !n.ICC {
		opts = append(opts, "icc=off")
	}
	if !n.Masquerade {
		opts = append(opts, "masquerade=off")
	}
	if n.Internal {
		opts = append(opts, "internal")
	}
	if n.MTU != 0 {
		opts = append(opts, fmt.Sprintf("mtu=%d", n.MTU))
	}
	if n.GatewayMode4 == driver.GatewayRouted {
		opts = append(opts, "gateway_mode_ipv4=routed")
	}
	if n.Cluster != "" {
		opts = append(opts, fmt.Sprintf("cluster=%s,vni=%d", n.Cluster, n.VNI))
	}
	if n.Encrypted {
		opts = append(opts, "encrypted")
	}
	return opts
}

func orDash(s string, ok bool) string {
	if !ok {
		return "-"
	}
	return s
}
