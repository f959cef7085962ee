// Package integration runs mynet's driver and IPAM against the real kernel,
// as root, inside a network namespace of the test's own (internal/nstest):
// what CreateNetwork, CreateEndpoint and their inverses do is read back
// through netlink and iptables-save.
package integration
