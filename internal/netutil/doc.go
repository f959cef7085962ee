// Package netutil is mynet's only importer of netlink: it makes and removes
// the kernel objects a bridge network is built from (bridges, veth pairs,
// addresses), sets per-link settings through netlink (route_localnet,
// bridge netfilter), reads the host's routes and a few sysctls through
// /proc, and announces link changes (WatchLinks).
//
// Everything works in the daemon's own network namespace, the host's: the
// Links handle is opened there, and no function switches namespaces (Docker
// moves the container's end of a veth into its sandbox itself). Each
// function says what it does with its `ip` equivalent. Functions named
// Ensure* accept what already exists when it is compatible; Delete* treat
// "not found" as done, so callers can repeat them safely. Dumps that the
// kernel reports as interrupted by concurrent changes are retried.
package netutil
