// Package store keeps the state that must outlive the mynet daemon.
//
// Docker never replays CreateNetwork or CreateEndpoint to a remote driver
// after the plugin restarts, so everything mynet learns from a call is written
// here before the call returns success. The package offers one small
// interface, Store, with transactional access to named buckets of keys; the
// driver and the IPAM allocator each own their buckets and encode their
// records themselves.
//
// Two implementations live here: Bolt, an embedded bbolt file (the default),
// and Memory, a map for unit tests of pure logic. The store is host-local by
// design: state shared between hosts (multi-host networks) needs claims,
// leases and watches, which internal/cluster offers over etcd;
// stretching this one over a distributed store would let each host's
// allocator hand out the same addresses.
//
// Files: store.go the interface and its helpers; bolt.go bbolt, the
// default; memory.go the in-memory store for tests.
package store
