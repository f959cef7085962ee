package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/ipam"
	"github.com/mynet/mynet/store"
)

// status is what `mynet status` shows, and what the daemon serves at
// /mynet.Status.
type status struct {
	Source    string           `json:"source"` // "daemon" or "state file"
	Networks  []networkStatus  `json:"networks"`
	Endpoints []endpointStatus `json:"endpoints"`
	Pools     []ipam.PoolInfo  `json:"pools"`
}

type networkStatus struct {
	driver.NetworkConfig
	Endpoints int `json:"endpoints"`
}

type endpointStatus struct {
	driver.Endpoint
	PortsText string `json:"ports_text,omitempty"`
}

func buildStatus(source string, drv *driver.Driver, alloc *ipam.Allocator) status {
	st := status{Source: source, Pools: alloc.Pools()}
	count := map[string]int{}
	for _, ep := range drv.Endpoints() {
		count[ep.NetworkID]++
		st.Endpoints = append(st.Endpoints, endpointStatus{Endpoint: ep, PortsText: driver.FormatPorts(ep.Ports)})
	}
	for _, n := range drv.Networks() {
		st.Networks = append(st.Networks, networkStatus{NetworkConfig: n, Endpoints: count[n.ID]})
	}
	sort.Slice(st.Networks, func(i, j int) bool { return st.Networks[i].BridgeName < st.Networks[j].BridgeName })
	sort.Slice(st.Endpoints, func(i, j int) bool { return st.Endpoints[i].HostVeth < st.Endpoints[j].HostVeth })
	sort.Slice(st.Pools, func(i, j int) bool { return st.Pools[i].ID < st.Pools[j].ID })
	return st
}

// runStatus implements `mynet status`: it asks the running daemon over its
// socket and, when none answers, reads the state file.
func runStatus(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mynet status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := parseConfigFlags(fs, args, getenv)
	if err != nil {
		return err
	}
	st, err := statusFromDaemon(cfg.Socket)
	if err != nil {
		st, err = statusFromFile(filepath.Join(cfg.StateDir, stateFile))
		if err != nil {
			return fmt.Errorf("no daemon answers on %s and the state file cannot be read: %w", cfg.Socket, err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(stdout, st)
	return nil
}

func statusFromDaemon(socket string) (status, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
	res, err := client.Post("http://mynet/mynet.Status", "application/json", strings.NewReader("{}"))
	if err != nil {
		return status{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return status{}, fmt.Errorf("daemon answered %s", res.Status)
	}
	var st status
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return status{}, fmt.Errorf("decode status: %w", err)
	}
	return st, nil
}

func statusFromFile(path string) (status, error) {
	s, err := store.OpenBoltReadOnly(path)
	if err != nil {
		return status{}, err
	}
	defer s.Close()
	drv, err := driver.New(driver.Config{Store: s})
	if err != nil {
		return status{}, err
	}
	alloc, err := ipam.New(ipam.Config{Store: s})
	if err != nil {
		return status{}, err
	}
	return buildStatus("state file (daemon not running)", drv, alloc), nil
}

func printStatus(w io.Writer, st status) {
	fmt.Fprintf(w, "source: %s\n\nNETWORKS\n", st.Source)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tBRIDGE\tSUBNET\tGATEWAY\tIPV6\tENDPOINTS\tOPTIONS")
	for _, n := range st.Networks {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", short12(n.ID), n.BridgeName, n.Subnet, addrOrDash(n.Gateway.Addr().String(), n.Gateway.IsValid()),
			addrOrDash(n.Subnet6.String(), n.Subnet6.IsValid()), n.Endpoints, strings.Join(opts, ","))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nENDPOINTS\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNETWORK\tVETH\tADDRESS\tMAC\tPORTS")
	for _, e := range st.Endpoints {
		addr := e.Address.String()
		if e.AddressIPv6.IsValid() {
			addr += " " + e.AddressIPv6.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", short12(e.ID), short12(e.NetworkID), e.HostVeth, addr, e.MAC, e.PortsText)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nIPAM POOLS\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tALLOCATED")
	for _, p := range st.Pools {
		fmt.Fprintf(tw, "%s\t%d\n", p.ID, p.Allocated)
	}
	tw.Flush()
}

func short12(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func addrOrDash(s string, ok bool) string {
	if !ok {
		return "-"
	}
	return s
}
