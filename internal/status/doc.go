// Package status is `mynet status` and the report behind it: networks,
// endpoints with their published ports, IPAM pools, and the daemon's
// health (state file, iptables, last reconcile).
//
// The daemon builds a Report for /mynet.Status (Build); the command asks a
// running daemon over its socket, finding a managed plugin's socket by
// itself, and when none answers reads the state file directly, read-only.
// It sits beside main at the top of the house: it reads the driver's and the
// IPAM's state and never touches the kernel.
//
// Files: report.go the Report and how it is built; print.go its tables;
// command.go `mynet status` and the default socket and state paths.
package status
