package ipam

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/ipam"

	"github.com/mynet/mynet/internal/cluster"
	"github.com/mynet/mynet/internal/errdefs"
	"github.com/mynet/mynet/internal/store"
)

// countingCluster counts the cluster calls (each one etcd round trip) an
// allocator makes, and can hold address and block claims until released.
type countingCluster struct {
	c     *cluster.Client
	trips atomic.Int64
	hold  atomic.Pointer[chan struct{}] // when set, claims wait for it to close
	held  chan struct{}                 // a claim is waiting
}

var _ clusterAPI = (*countingCluster)(nil)

func (k *countingCluster) trip() {
	k.trips.Add(1)
	if h := k.hold.Load(); h != nil {
		select {
		case k.held <- struct{}{}:
		default:
		}
		<-*h
	}
}

func (k *countingCluster) LookupNetwork(name string) (cluster.NetworkSpec, bool, error) {
	k.trips.Add(1)
	return k.c.LookupNetwork(name)
}

func (k *countingCluster) EnsureNetwork(name string, subnet netip.Prefix, gw netip.Addr, port int) (cluster.NetworkSpec, error) {
	k.trips.Add(1)
	return k.c.EnsureNetwork(name, subnet, gw, port)
}

func (k *countingCluster) SettleSubnet6(name string, subnet netip.Prefix, gw netip.Addr) (cluster.NetworkSpec, error) {
	k.trips.Add(1)
	return k.c.SettleSubnet6(name, subnet, gw)
}

func (k *countingCluster) EnsureNetwork6(name string, subnet netip.Prefix, gw netip.Addr, port int) (cluster.NetworkSpec, error) {
	k.trips.Add(1)
	return k.c.EnsureNetwork6(name, subnet, gw, port)
}

func (k *countingCluster) ClaimAddress(net string, ip netip.Addr, owner string) (bool, string, error) {
	k.trip()
	return k.c.ClaimAddress(net, ip, owner)
}

func (k *countingCluster) ClaimBlock(net string, first netip.Addr) (bool, string, error) {
	k.trip()
	return k.c.ClaimBlock(net, first)
}

func (k *countingCluster) AdoptClaim(net string, ip netip.Addr, owner string) (bool, error) {
	k.trips.Add(1)
	return k.c.AdoptClaim(net, ip, owner)
}

func (k *countingCluster) ReleaseAddress(net string, ip netip.Addr, owner string) error {
	k.trips.Add(1)
	return k.c.ReleaseAddress(net, ip, owner)
}

func (k *countingCluster) AllocationOf(net string) (cluster.Allocation, error) {
	k.trips.Add(1)
	return k.c.AllocationOf(net)
}

func (k *countingCluster) JoinNetwork(name string) error {
	k.trips.Add(1)
	return k.c.JoinNetwork(name)
}

func (k *countingCluster) LeaveNetwork(name string) (bool, error) {
	k.trips.Add(1)
	return k.c.LeaveNetwork(name)
}

func (k *countingCluster) Node() string { return k.c.Node() }

// countedHost is one registered host of mem whose cluster calls are
// counted.
func countedHost(t *testing.T, mem *cluster.Memory, node string) (*Allocator, *countingCluster) {
	t.Helper()
	c := cluster.NewWithStore(mem, cluster.Config{Node: node})
	if _, _, err := c.Register(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	k := &countingCluster{c: c, held: make(chan struct{}, 1)}
	a, err := New(Config{Store: store.NewMemory(), Cluster: k})
	if err != nil {
		t.Fatal(err)
	}
	return a, k
}

func macOf(host, n int) string { return fmt.Sprintf("02:00:%02x:00:%02x:%02x", host, n>>8, n&0xff) }

// However full the network and however stale this host's view of it, a
// request costs a small constant number of round trips. Before, the
// allocator walked the addresses other hosts took since its last list one
// claim at a time: thousands of round trips under the one mutex.
func TestClusterRequestsAreBoundedWhateverTheFill(t *testing.T) {
	t.Parallel()
	mem := cluster.NewMemory()
	a, k := countedHost(t, mem, "host1")
	pool := clusterNetworkOn(t, []*Allocator{a}, "10.40.0.0/16")[0]
	first := mustAddr(t, a, pool, "", map[string]string{OptMACAddress: macOf(1, 0)})
	if first != "10.40.0.2/16" {
		t.Fatalf("first address = %s, want 10.40.0.2/16", first)
	}

	// Another host (an older mynet, without blocks) takes every address
	// of the subnet but the last 20, host1's view of it left stale.
	mine := map[string]bool{"10.40.0.1": true, "10.40.0.2": true}
	subnet := netip.MustParsePrefix("10.40.0.0/16")
	free := map[string]bool{}
	for off := uint64(3); off <= 65534; off++ {
		ip := addrAt(subnet, off)
		if off > 65534-20 {
			free[ip.String()+"/16"] = true
			continue
		}
		mem.PutClaim("blue", ip, "host9", ip.String())
	}
	for n := 1; n <= 20; n++ {
		before := k.trips.Load()
		got := mustAddr(t, a, pool, "", map[string]string{OptMACAddress: macOf(1, n)})
		if trips := k.trips.Load() - before; trips > 2*maxClaimTries+1 {
			t.Errorf("request %d made %d round trips, want at most %d", n, trips, 2*maxClaimTries+1)
		}
		if !free[got] || mine[got] {
			t.Fatalf("request %d got %s, which is not one of the free addresses (or was handed out before)", n, got)
		}
		mine[got] = true
	}
	before := k.trips.Load()
	_, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: pool, Options: map[string]string{OptMACAddress: macOf(1, 21)}})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "no free address left") {
		t.Fatalf("request in a full network = %v, want no free address left", err)
	}
	if trips := k.trips.Load() - before; trips > 2*maxClaimTries+1 {
		t.Errorf("the refused request made %d round trips", trips)
	}
}

// Hosts allocating at once take addresses from blocks of their own: no
// address twice, no request fails, and about one round trip a request.
func TestClusterHostsAllocatingAtOnce(t *testing.T) {
	t.Parallel()
	mem := cluster.NewMemory()
	const hosts, each = 3, 60
	var as []*Allocator
	var ks []*countingCluster
	for i := range hosts {
		a, k := countedHost(t, mem, fmt.Sprintf("host%d", i+1))
		as, ks = append(as, a), append(ks, k)
	}
	pools := clusterNetworkOn(t, as, "10.40.0.0/22")
	var start int64
	for _, k := range ks {
		start += k.trips.Load()
	}
	got := make([][]string, hosts)
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range each {
				res, err := as[i].RequestAddress(&api.RequestAddressRequest{PoolID: pools[i], Options: map[string]string{OptMACAddress: macOf(i, n)}})
				if err != nil {
					t.Errorf("host%d request %d: %v", i+1, n, err)
					return
				}
				got[i] = append(got[i], res.Address)
			}
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for i, l := range got {
		for _, addr := range l {
			if j, ok := seen[addr]; ok {
				t.Errorf("%s handed out on host%d and host%d", addr, j+1, i+1)
			}
			seen[addr] = i
		}
	}
	var trips int64
	for _, k := range ks {
		trips += k.trips.Load()
	}
	// One claim each, one block claim per 16 addresses, and a few lists
	// where two hosts raced for a block.
	if per := float64(trips-start) / (hosts * each); per > 1.5 {
		t.Errorf("%.2f round trips a request, want about 1", per)
	}
}

// A cluster pool waiting on etcd holds up no local pool, nor the driver's
// questions about the cluster pool itself (before, one mutex was held
// across every etcd round trip).
func TestLocalPoolsNeverWaitOnTheCluster(t *testing.T) {
	t.Parallel()
	mem := cluster.NewMemory()
	a, k := countedHost(t, mem, "host1")
	cpool := clusterNetworkOn(t, []*Allocator{a}, "10.40.0.0/24")[0]
	local := mustPool(t, a, api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.50.0.0/24"})

	release := make(chan struct{})
	k.hold.Store(&release)
	done := make(chan error, 1)
	go func() {
		_, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: cpool, Options: map[string]string{OptMACAddress: macOf(1, 1)}})
		done <- err
	}()
	<-k.held // the cluster request waits on etcd

	localDone := make(chan error, 1)
	go func() {
		localDone <- func() error {
			res, err := a.RequestAddress(&api.RequestAddressRequest{PoolID: local.PoolID})
			if err != nil {
				return err
			}
			if _, err := a.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.60.0.0/24"}); err != nil {
				return err
			}
			_ = a.Pools()
			if _, ok := a.ClusterOf(LocalSpace, netip.MustParsePrefix("10.50.0.0/24")); ok {
				return fmt.Errorf("a local pool reported as a cluster network")
			}
			// The driver asks which cluster network a subnet is while that
			// network's pool waits on etcd.
			if c, ok := a.ClusterOf(LocalSpace, netip.MustParsePrefix("10.40.0.0/24")); !ok || c.Name != "blue" || c.VNI == 0 {
				return fmt.Errorf("ClusterOf the waiting cluster pool = %+v, %v", c, ok)
			}
			return a.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: local.PoolID, Address: strings.Split(res.Address, "/")[0]})
		}()
	}()
	select {
	case err := <-localDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the local pool's calls waited on the cluster pool's etcd round trip")
	}
	select {
	case err := <-done:
		t.Fatalf("the cluster request returned (%v) before etcd answered", err)
	default:
	}
	k.hold.Store(nil)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A claim whose answer was lost (etcd, frozen, applied it after the call
// timed out) is this host's claim of an address the pool does not hold.
// The next request that picks the address adopts it. Before, every later
// request picked the same address, lost it to this host's own claim and,
// with the view refreshed, picked it again: the network refused every new
// endpoint until the daemon restarted.
func TestOwnLostClaimIsAdopted(t *testing.T) {
	t.Parallel()
	mem := cluster.NewMemory()
	a, k := countedHost(t, mem, "host1")
	pool := clusterNetworkOn(t, []*Allocator{a}, "10.40.0.0/16")[0]
	mustAddr(t, a, pool, "", map[string]string{OptMACAddress: macOf(1, 0)})
	for _, ip := range []string{"10.40.0.3", "10.40.0.9"} {
		if ok, _, err := k.c.ClaimAddress("blue", netip.MustParseAddr(ip), macOf(1, 99)); err != nil || !ok {
			t.Fatalf("lost claim of %s: ok=%v err=%v", ip, ok, err)
		}
	}
	got := mustAddr(t, a, pool, "", map[string]string{OptMACAddress: macOf(1, 1)})
	asked := mustAddr(t, a, pool, "10.40.0.9", map[string]string{OptMACAddress: macOf(1, 2)})
	if got != "10.40.0.3/16" || asked != "10.40.0.9/16" {
		t.Fatalf("after lost claims: picked %s, asked 10.40.0.9 got %s; want 10.40.0.3/16 and 10.40.0.9/16", got, asked)
	}
	claims, err := k.c.Claims("blue")
	if err != nil {
		t.Fatal(err)
	}
	for ip, mac := range map[string]string{"10.40.0.3": macOf(1, 1), "10.40.0.9": macOf(1, 2)} {
		if cl := claims[netip.MustParseAddr(ip)]; cl.Node != "host1" || cl.Owner != mac {
			t.Errorf("claim of %s = %+v, want host1's for %s", ip, cl, mac)
		}
	}
	// Another host's claim is never adopted.
	b, _ := countedHost(t, mem, "host2")
	poolB := clusterNetworkOn(t, []*Allocator{b}, "")[0]
	if _, err := b.RequestAddress(&api.RequestAddressRequest{PoolID: poolB, Address: "10.40.0.3", Options: map[string]string{OptMACAddress: macOf(2, 0)}}); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "host1") {
		t.Errorf("host2 asking for host1's 10.40.0.3: %v, want a conflict naming host1", err)
	}
}
