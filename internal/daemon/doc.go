// Package daemon wires mynet together and runs it: it opens the state file,
// builds the firewall, netlink handle, IPAM and driver, restores the
// networks, serves Docker's plugin API on one unix socket (its own or one
// systemd passed), and keeps the kernel repaired.
//
// Repairs come from four triggers, all through one reconciler that records
// the last result for /mynet.Health and the metrics: the start (Restore), a
// timer (--reconcile-interval, the backstop), SIGHUP or /mynet.Reconcile,
// and netlink link events: a bridge or host veth of ours that is deleted
// triggers a run within milliseconds. Events only speed repairs up; a lost
// event (the kernel's buffer overflowed) also triggers a full run.
//
// membership.go keeps this host registered in the cluster (and refuses a
// node name another live host holds), and tells the IPAM and the driver
// when it registered anew.
//
// main parses flags into a Config and calls New, Listen and Run; the
// integration tests run the same binary. Nothing here touches the kernel
// itself: that is internal/netutil's and internal/firewall's.
//
// Shutdown is one function (daemon.go stop), in the order it states:
// systemd told, the listeners closed, the driver's watches and background
// work ended, mynet's base rules removed when no network is left, then
// what New opened released in reverse (the name forwarders first).
//
// Files: daemon.go the configuration, building the parts, serving and the
// shutdown; policy.go the daemon's decisions as pure functions (who may
// send VXLAN here, what a link event calls for, the hosts status lists),
// unit-tested; metrics.go the metrics listener and its gauges; health.go
// the health report; reconcile.go the reconciler and its triggers;
// membership.go the cluster: registration, the check that etcd kept its
// data, the upkeep (reclaims, held records, this host's routes) and the
// Docker sync's wiring; vxlanguard.go the VXLAN guard (the members' set,
// of the underlay's family, and the firewall's rule); names.go the name forwarders of
// cluster networks (where this process sees the sandboxes, whether names
// across hosts are on); tunnel.go the WireGuard tunnel of encrypted
// networks (made at the first, restored from the store at start, its
// peers from the hosts' records, kept by the upkeep, its key rotated);
// tunnel_status.go what status, health and metrics say of it.
package daemon
