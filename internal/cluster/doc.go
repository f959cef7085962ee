// Package cluster is mynet's shared state for multi-host networks, and the
// only importer of the etcd client. The host-local store (internal/store)
// is not stretched over etcd: a bitmap per host would hand out the same
// addresses on two hosts. Instead every decision that must be unique across
// hosts is one etcd transaction:
//
//   - a cluster network's configuration (subnet, gateway, VNI) is created if
//     absent and checked by every later host; its VNI is claimed
//     cluster-wide (vnis/<vni>), and a host that lost the race to create
//     the configuration gives its VNI claim back;
//   - an address is claimed with create-if-absent on its own key, so of
//     hosts racing for one --ip exactly one wins, and only while the
//     host's own record is there under its lease (the same transaction),
//     so an etcd that lost its data grants nothing until the host has
//     registered again and its allocator has re-claimed what it holds;
//     it is released with compare-and-delete, so no host releases
//     another's;
//   - each host registers under a lease (TTL) that it keeps alive and whose
//     ID it keeps in its own state, so a restart within the TTL reuses it;
//     its node record is under that lease (its liveness), while its
//     endpoints (IP, MAC, underlay address) are published under none, so a
//     host cut off from etcd past the TTL keeps its traffic with its peers;
//     they go when the host withdraws them or is forgotten;
//   - peers list a network's endpoints at a revision and watch from the
//     next one; a compacted revision is ErrCompacted, and the watcher lists
//     again (a resync). Nothing is removed because a watch failed.
//
// An address a dead host claimed stays claimed until Forget. Every call is
// bounded by CallTimeout (5 s): with etcd down, calls fail with
// ErrUnavailable well inside Docker's 30 s, while the data plane, which is
// the kernel's, keeps flowing. The key layout is in client.go and
// docs/multihost.md.
//
// Files: client.go the Client, its calls and errors; networks.go a
// network's configuration, VNI and the hosts that have it; claims.go
// address claims; nodes.go registration, leases and Forget; peers.go
// peers, the records of containers' endpoints every host reads, and their watch; dockernets.go the Docker-network
// records the Docker sync keeps; subnets.go default subnets of cluster networks, ipv6.go a network's IPv6 subnet, settled, and the default IPv6 pool
// and its subnets; tunnels.go the hosts' WireGuard tunnel addresses and keys; epoch.go how a host notices that etcd lost its data, writecount.go its count of its own writes (never above etcd's); check.go
// mynet cluster check; kv.go
// the store interface, etcd.go and memory.go its two implementations
// (memwitness.go the in-memory one's witness of each write, epoch.go),
// memfaults.go what unit tests do to the in-memory one.
//
// Memory is an in-memory store with the same semantics for unit tests;
// test/etcdtest runs a real etcd (the embedded server, test/etcd) as a
// process of its own for the rest.
package cluster
