// Package netutil is mynet's only importer of netlink and netns: it makes and
// removes the kernel objects a bridge network is built from (bridges, veth
// pairs, addresses), reads the host's routes, and writes the few sysctls mynet
// needs through /proc.
//
// Every function works in the network namespace its Links handle was opened
// in (the daemon's own, the host's) and says so with its `ip` equivalent.
// Functions named ensure* accept what already exists when it is compatible;
// delete* treat "not found" as done, so callers can repeat them safely. Dumps
// that the kernel reports as interrupted by concurrent changes are retried.
package netutil
