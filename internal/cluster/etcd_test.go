package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mynet/mynet/test/etcdtest"
)

// etcdHosts are Clients of a real etcd, one per simulated host.
func etcdHosts(t *testing.T, e *etcdtest.Etcd, n int, ttl time.Duration) []*Client {
	t.Helper()
	var out []*Client
	for i := range n {
		c, err := New(Config{Endpoints: []string{e.URL()}, Node: fmt.Sprintf("host%d", i+1),
			Advertise: netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 11)}), TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	return out
}

// claimNext claims the lowest free address from 10.40.0.2 up, as a host's
// allocator does.
func claimNext(c *Client, owner string) (netip.Addr, error) {
	for ip := netip.MustParseAddr("10.40.0.2"); blueNet.Contains(ip); ip = ip.Next() {
		ok, _, err := c.ClaimAddress("blue", ip, owner)
		if err != nil {
			return netip.Addr{}, err
		}
		if ok {
			return ip, nil
		}
	}
	return netip.Addr{}, errors.New("full")
}

// 3 hosts x 50 concurrent allocations get 150 distinct addresses from a
// real etcd, and a race for one address has one winner.
func TestEtcdConcurrentClaims(t *testing.T) {
	e := etcdtest.Start(t, etcdtest.Options{})
	h := etcdHosts(t, e, 3, 10*time.Second)
	register(t, h...)
	var mu sync.Mutex
	got := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for _, c := range h {
		for i := range 50 {
			wg.Go(func() {
				owner := fmt.Sprintf("%s-%d", c.Node(), i)
				ip, err := claimNext(c, owner)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if prev, dup := got[ip]; dup {
					t.Errorf("%s handed out twice: %s and %s", ip, prev, owner)
				}
				got[ip] = owner
			})
		}
	}
	wg.Wait()
	if len(got) != 150 {
		t.Errorf("%d distinct addresses, want 150", len(got))
	}
	ip := netip.MustParseAddr("10.40.9.9")
	wins := make(chan string, 3)
	for _, c := range h {
		wg.Go(func() {
			if ok, _, err := c.ClaimAddress("blue", ip, "static"); err == nil && ok {
				wins <- c.Node()
			}
		})
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Errorf("%d hosts won the race for %s, want 1", n, ip)
	}
}

// Leases, watches and compaction on a real etcd: a host that stops
// renewing loses its endpoints after the TTL, a restart within it keeps
// them, and a compacted watch says so.
func TestEtcdLeasesAndWatch(t *testing.T) {
	e := etcdtest.Start(t, etcdtest.Options{})
	h := etcdHosts(t, e, 2, 2*time.Second)
	ctx1, stop1 := context.WithCancel(context.Background())
	lease, _, err := h[0].Register(ctx1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := h[0].PublishPeer(Peer{Network: "blue", IP: netip.MustParseAddr("10.40.0.2"), MAC: "02:42:0a:28:00:02"}); err != nil {
		t.Fatal(err)
	}
	eps, rev, err := h[1].Peers("blue")
	if err != nil || len(eps) != 1 || eps[0].VTEP != netip.MustParseAddr("198.18.0.11") {
		t.Fatalf("endpoints = %+v, %v", eps, err)
	}
	// A restart within the TTL: the old keepalive stops, the new process
	// reuses the lease.
	stop1()
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	if again, _, err := h[0].Register(ctx2, lease); err != nil || again != lease {
		t.Fatalf("re-register: %d, %v; want lease %d reused", again, err, lease)
	}
	time.Sleep(3 * time.Second) // past the TTL: the reused lease is kept alive
	if eps, _, _ := h[1].Peers("blue"); len(eps) != 1 {
		t.Fatalf("after a restart within the TTL the endpoint is gone: %+v", eps)
	}
	// The host goes silent: past the TTL it is not alive any more, and its
	// endpoint stays (its peers keep reaching its containers over the
	// underlay; it goes when the host withdraws it or is forgotten).
	stop2()
	gone := false
	for range 100 {
		if nodes, err := h[1].Nodes(); err == nil && !slices.ContainsFunc(nodes, func(n NodeInfo) bool { return n.Name == "host1" }) {
			gone = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !gone {
		t.Fatal("a host silent past its TTL is still registered")
	}
	if eps, _, _ := h[1].Peers("blue"); len(eps) != 1 || eps[0].Node != "host1" {
		t.Errorf("the endpoint of a host silent past its TTL: %+v, want it kept", eps)
	}
	// Compaction past a watcher's revision: it must resync.
	ek := h[1].kv.(*etcdKV)
	res, err := ek.c.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ek.c.Compact(context.Background(), res.Header.Revision); err != nil {
		t.Fatal(err)
	}
	ctx3, stop3 := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop3()
	if err := h[1].WatchPeers(ctx3, "blue", rev, func(Peer, bool) {}); !errors.Is(err, ErrCompacted) {
		t.Errorf("watch from a compacted revision: %v, want ErrCompacted", err)
	}
}

// etcd frozen or killed: calls fail within the call timeout with
// ErrUnavailable, and everything works again when it returns, with its data.
func TestEtcdDownAndBack(t *testing.T) {
	e := etcdtest.Start(t, etcdtest.Options{})
	h := etcdHosts(t, e, 1, 10*time.Second)
	c := h[0]
	register(t, c)
	if ok, _, err := c.ClaimAddress("blue", netip.MustParseAddr("10.40.0.2"), "a"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for _, down := range []struct {
		name        string
		fail, recov func()
	}{
		{"SIGSTOP", e.Stop, e.Resume},
		{"killed", e.Kill, e.Restart},
	} {
		down.fail()
		start := time.Now()
		_, _, err := c.ClaimAddress("blue", netip.MustParseAddr("10.40.0.3"), "b")
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: claim = %v, want ErrUnavailable", down.name, err)
		}
		if took > 8*time.Second {
			t.Errorf("%s: the failing call took %v; Docker waits 30 s and the bound is the 5 s call timeout", down.name, took)
		}
		down.recov()
		var ok bool
		for range 50 {
			if ok, _, err = c.ClaimAddress("blue", netip.MustParseAddr("10.40.0.3"), "b"); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !ok || err != nil {
			t.Errorf("%s: claim after recovery: %v %v", down.name, ok, err)
		}
		claimed, err := c.Claimed("blue")
		if err != nil || claimed[netip.MustParseAddr("10.40.0.2")] != "host1" {
			t.Errorf("%s: the earlier claim did not survive: %v %v", down.name, claimed, err)
		}
		if err := c.ReleaseAddress("blue", netip.MustParseAddr("10.40.0.3"), "b"); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkEtcdWrites times the two writes a cluster endpoint costs on a
// real one-member etcd: the address claim (RequestAddress) and the endpoint
// record (CreateEndpoint).
func BenchmarkEtcdWrites(b *testing.B) {
	e := etcdtest.Start(b, etcdtest.Options{})
	c, err := New(Config{Endpoints: []string{e.URL()}, Node: "host1", Advertise: netip.MustParseAddr("198.18.0.11"), TTL: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Register(b.Context(), 0); err != nil {
		b.Fatal(err)
	}
	var claim, publish []time.Duration
	ip := netip.MustParseAddr("10.40.0.2")
	for b.Loop() {
		start := time.Now()
		if ok, _, err := c.ClaimAddress("blue", ip, "m"); !ok || err != nil {
			b.Fatal(ok, err)
		}
		claim = append(claim, time.Since(start))
		start = time.Now()
		if err := c.PublishPeer(Peer{Network: "blue", IP: ip, MAC: "02:42:0a:28:00:02"}); err != nil {
			b.Fatal(err)
		}
		publish = append(publish, time.Since(start))
		ip = ip.Next()
	}
	for name, d := range map[string][]time.Duration{"claim": claim, "publish": publish} {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, name+"-p99-ms")
	}
}

// A watched record's facts are read as of its revision: what the store
// held then, from the member asked; a revision it has not reached reads
// the latest.
func TestEtcdRecordFactsAtARevision(t *testing.T) {
	e := etcdtest.Start(t, etcdtest.Options{})
	h := etcdHosts(t, e, 2, 10*time.Second)
	register(t, h...)
	ip := netip.MustParseAddr("10.40.0.7")
	if ok, _, err := h[1].ClaimAddress("blue", ip, "02:00:00:00:00:07"); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if err := h[1].PublishPeer(Peer{Network: "blue", IP: ip, MAC: "02:00:00:00:00:07"}); err != nil {
		t.Fatal(err)
	}
	eps, rev, err := h[0].Peers("blue")
	if err != nil || len(eps) != 1 {
		t.Fatalf("endpoints: %v %v", eps, err)
	}
	if err := h[1].ReleaseAddress("blue", ip, "02:00:00:00:00:07"); err != nil {
		t.Fatal(err)
	}
	then, err := h[0].RecordFacts("blue", ip, "host2", rev)
	if err != nil || !then.Claimed || then.Claim.Node != "host2" || !then.Registered {
		t.Errorf("facts as of the record's revision: %+v, %v; want host2's claim and registration", then, err)
	}
	now, err := h[0].RecordFacts("blue", ip, "host2", 0)
	if err != nil || now.Claimed {
		t.Errorf("facts now: %+v, %v; want the claim gone", now, err)
	}
	future, err := h[0].RecordFacts("blue", ip, "host2", rev+1000)
	if err != nil || future.Claimed || !future.Registered {
		t.Errorf("facts as of a revision not reached: %+v, %v; want the latest", future, err)
	}
}

// A list longer than a page comes whole, in key order, at the revision of
// its first page: keys written meanwhile are not in it.
func TestEtcdListInPages(t *testing.T) {
	e := etcdtest.Start(t, etcdtest.Options{})
	kv, err := dialEtcd([]string{e.URL()}, TLS{}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer kv.close()
	kv.page = 3
	ctx := t.Context()
	for i := range 10 {
		if err := kv.put(ctx, fmt.Sprintf("/t/a/%02d", i), []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.put(ctx, "/t/b/0", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	lists, rev, err := kv.listMany(ctx, "/t/a/", "/t/b/")
	if err != nil {
		t.Fatal(err)
	}
	if len(lists[0]) != 10 || lists[0][0].Key != "/t/a/00" || lists[0][9].Key != "/t/a/09" || len(lists[1]) != 1 {
		t.Fatalf("lists = %v", lists)
	}
	// A later page is read at the first page's revision.
	if err := kv.put(ctx, "/t/a/99", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	rest, err := kv.rest(ctx, "/t/a/", rev, lists[0][:3])
	if err != nil || len(rest) != 10 {
		t.Errorf("the rest of the list at revision %d: %d keys, %v; want 10", rev, len(rest), err)
	}
}
