// Package ipam is mynet's IpamDriver: address spaces, pools and a bitmap
// address allocator whose state lives in a store.Store.
//
// A pool is one subnet in an address space ("LocalDefault" or
// "GlobalDefault"); pools in a space never overlap. A pool may carry a
// sub-range (docker network create --ip-range): addresses picked by the
// allocator come from the range, while an explicitly requested address may be
// anywhere in the subnet, as with Docker's built-in IPAM.
//
// Each pool's allocations are a bitmap of host offsets split into chunks of
// 4096 addresses. Chunks are created on first use and dropped when empty, so a
// fresh /8 costs nothing and a full one 2 MiB, and an IPv6 /64 works the same
// way. Every change rewrites exactly one 512-byte chunk in the store inside
// the call, so a restart (even kill -9) rebuilds the same bitmap and never
// hands an address out twice. The allocator hands out the lowest free
// address, as Docker's does; the network address (and, for IPv4 subnets
// larger than /31, the broadcast address) are never handed out.
//
// Files. ipam.go is the API for pools (the calls Docker makes), addresses.go
// for addresses (RequestAddress, ReleaseAddress); status.go Pools, for
// mynet status and the metrics; pool.go the pools, their records and
// locks, subnet parsing and the choice of a default pool; persist.go
// loading and saving the chunks; bitmap.go the allocator; addr.go
// addresses as offsets in a subnet and back; defaults.go the
// default pool sets (Docker's, or --default-address-pool); clusterpool.go
// the pools of cluster networks (their configuration from the cluster, an
// address claimed cluster-wide before it is handed out); blocks.go how a
// cluster pool picks and claims an address (blocks with an affinity);
// claims.go the reclaim that keeps a cluster pool's claims in line with
// what it holds, and the hold-off after etcd lost its data.
package ipam
