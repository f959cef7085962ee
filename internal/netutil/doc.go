// Package netutil is mynet's only importer of netlink and of nftables: it
// makes and removes the kernel objects a bridge network is built from
// (bridges, veth pairs, addresses), and a cluster network's VXLAN device
// with its FDB and neighbour entries; sets per-link settings through
// netlink (route_localnet, bridge netfilter); keeps the VXLAN members'
// ipset; keeps the DNS redirect in containers' namespaces (an nftables
// table with a timed set, DNSNAT); sends gratuitous ARP; reads the host's
// routes, a few sysctls through /proc and dockerd's nftables bridges;
// forgets DNS flows in conntrack; and announces link changes (WatchLinks).
//
// Everything works in the daemon's own network namespace, the host's, where
// the Links handle is opened (Docker moves the container's end of a veth
// into its sandbox itself), but for what concerns a container's namespace,
// which Sandboxes finds where this process sees it (a managed plugin sees
// the host's through a mount) and opens: InNetns and Sandboxes.Enter run a
// function on a locked thread switched into it and put the thread back,
// and DNSNAT keeps a netlink socket opened there. Each function says what
// it does with its `ip` (or `nft`) equivalent. Functions named Ensure*
// accept what already exists when it is compatible; Delete* treat "not
// found" as done, so callers can repeat them safely. Dumps that the kernel
// reports as interrupted by concurrent changes are retried.
//
// Files: links.go bridges, veths, addresses and routes; vxlan.go VXLAN
// devices and their FDB and neighbour entries; wireguard.go the kernel's
// WireGuard link and the tunnel device's address and blackhole route; arp.go gratuitous ARP;
// conf.go per-link settings through netlink; sysctl.go sysctls through
// /proc; ipset.go the VXLAN members' set; sandbox.go the containers'
// namespaces where this process sees them, whether its mount receives the
// host's, and a managed plugin's own ID; dnsnat.go the DNS redirect in a
// container's namespace; netns.go running in another namespace (InNetns,
// which switches a locked thread and puts it back) and the DNS flows in
// conntrack; nftables.go reading dockerd's nftables bridges; watch.go link
// events; dump.go the dumps, retried when interrupted.
package netutil
