package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// hosts are Clients of one store, as three daemons would be.
func hosts(t *testing.T, mem *Memory, n int) []*Client {
	t.Helper()
	var out []*Client
	for i := range n {
		out = append(out, NewWithStore(mem, Config{Node: fmt.Sprintf("host%d", i+1),
			Advertise: netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 11)}), CallTimeout: time.Second}))
	}
	return out
}

// register registers clients as their daemons do at start, until the test
// ends: a claim needs its host's registration.
func register(t *testing.T, cs ...*Client) {
	t.Helper()
	for _, c := range cs {
		if _, _, err := c.Register(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	blueNet = netip.MustParsePrefix("10.40.0.0/16")
	blueGW  = netip.MustParseAddr("10.40.0.1")
)

func TestEnsureNetworkIsSharedAndChecked(t *testing.T) {
	t.Parallel()
	h := hosts(t, NewMemory(), 2)
	a, err := h[0].EnsureNetwork("blue", blueNet, netip.Addr{}, 0)
	if err != nil || a.Subnet != blueNet || a.Gateway != blueGW || a.VNI < minVNI {
		t.Fatalf("first host: %+v, %v", a, err)
	}
	b, err := h[1].EnsureNetwork("blue", blueNet, blueGW, 0)
	if err != nil || b != a {
		t.Errorf("second host: %+v, %v; want the first host's %+v", b, err, a)
	}
	if _, err := h[1].EnsureNetwork("blue", netip.Prefix{}, netip.Addr{}, 0); err != nil {
		t.Errorf("a later host may leave the subnet to the cluster: %v", err)
	}
	_, err = h[1].EnsureNetwork("blue", netip.MustParsePrefix("10.41.0.0/16"), netip.Addr{}, 0)
	if !IsConflict(err) || !strings.Contains(err.Error(), "--subnet 10.40.0.0/16") {
		t.Errorf("another subnet: %v, want a conflict that says which subnet to use", err)
	}
	_, err = h[1].EnsureNetwork("blue", blueNet, netip.MustParseAddr("10.40.0.254"), 0)
	if !IsConflict(err) || !strings.Contains(err.Error(), "--gateway 10.40.0.1") {
		t.Errorf("another gateway: %v", err)
	}
	if _, err := h[0].EnsureNetwork("green", netip.Prefix{}, netip.Addr{}, 0); !IsConflict(err) {
		t.Errorf("a new network without a subnet: %v", err)
	}
	g, err := h[0].EnsureNetwork("green", netip.MustParsePrefix("10.42.0.0/16"), netip.Addr{}, 0)
	if err != nil || g.VNI == a.VNI {
		t.Errorf("second network %+v, %v: its VNI must differ from %d", g, err, a.VNI)
	}
	if _, err := h[0].EnsureNetwork("bad/name", blueNet, netip.Addr{}, 0); !IsConflict(err) {
		t.Errorf("a name with '/': %v", err)
	}
}

// A network made now gets mynet's VXLAN port; one made again after etcd
// lost it gets the port its hosts use (IANA's, for one made before mynet
// had its own); a network's port never changes once made.
func TestEnsureNetworkVXLANPort(t *testing.T) {
	t.Parallel()
	h := hosts(t, NewMemory(), 2)
	a, err := h[0].EnsureNetwork("blue", blueNet, netip.Addr{}, 0)
	if err != nil || a.Port != DefaultVXLANPort || a.VXLANPort() != DefaultVXLANPort {
		t.Fatalf("new network: %+v, %v; want port %d", a, err, DefaultVXLANPort)
	}
	if b, err := h[1].EnsureNetwork("blue", blueNet, netip.Addr{}, IANAVXLANPort); err != nil || b.VXLANPort() != DefaultVXLANPort {
		t.Errorf("a host asking another port of a made network: %+v, %v; want the network's", b, err)
	}
	old, err := h[1].EnsureNetwork("red", netip.MustParsePrefix("10.43.0.0/16"), netip.Addr{}, IANAVXLANPort)
	if err != nil || old.VXLANPort() != IANAVXLANPort {
		t.Errorf("restored network of IANA's port: %+v, %v", old, err)
	}
	if (NetworkSpec{}).VXLANPort() != IANAVXLANPort {
		t.Error("a record without a port (made before mynet had one) is not on IANA's port")
	}
	if _, err := h[0].EnsureNetwork("green", netip.MustParsePrefix("10.42.0.0/16"), netip.Addr{}, 70000); !IsConflict(err) {
		t.Errorf("port 70000: %v", err)
	}
}

// Hosts racing to create one network agree on one VNI and leave no stray
// VNI claim.
func TestEnsureNetworkRace(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := hosts(t, mem, 8)
	specs := make([]NetworkSpec, len(h))
	var wg sync.WaitGroup
	for i, c := range h {
		wg.Go(func() {
			var err error
			if specs[i], err = c.EnsureNetwork("blue", blueNet, netip.Addr{}, 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, s := range specs[1:] {
		if s != specs[0] {
			t.Errorf("hosts disagree: %+v vs %+v", s, specs[0])
		}
	}
	pairs, _, _ := mem.kv.list(context.Background(), Prefix+"vnis/")
	if len(pairs) != 1 {
		t.Errorf("VNI claims left: %v, want exactly one", pairs)
	}
}

func TestAddressClaims(t *testing.T) {
	t.Parallel()
	h := hosts(t, NewMemory(), 3)
	register(t, h...)
	ip := netip.MustParseAddr("10.40.0.7")
	// A race for one --ip has exactly one winner.
	wins := make(chan string, 30)
	var wg sync.WaitGroup
	for _, c := range h {
		for range 10 {
			wg.Go(func() {
				ok, _, err := c.ClaimAddress("blue", ip, "02:00:00:00:00:"+c.Node()[4:])
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins <- c.Node()
				}
			})
		}
	}
	wg.Wait()
	close(wins)
	var winners []string
	for w := range wins {
		winners = append(winners, w)
	}
	// The same host retrying the same claim wins again (idempotent), so
	// all winners are one host.
	for _, w := range winners {
		if w != winners[0] {
			t.Fatalf("two hosts won %s: %v", ip, winners)
		}
	}
	winner := map[string]*Client{}
	for _, c := range h {
		winner[c.Node()] = c
	}
	w := winner[winners[0]]
	loser := h[0]
	if loser == w {
		loser = h[1]
	}
	ok, holder, err := loser.ClaimAddress("blue", ip, "x")
	if ok || err != nil || holder != w.Node() {
		t.Errorf("a loser's claim: %v %q %v; want refused, held by %s", ok, holder, err, w.Node())
	}
	// A loser cannot release the winner's claim; the winner can.
	if err := loser.ReleaseAddress("blue", ip, "x"); err != nil {
		t.Fatal(err)
	}
	if claimed, _ := w.Claimed("blue"); claimed[ip] != w.Node() {
		t.Errorf("claims after a stranger's release: %v", claimed)
	}
	if err := w.ReleaseAddress("blue", ip, "02:00:00:00:00:"+w.Node()[4:]); err != nil {
		t.Fatal(err)
	}
	if claimed, _ := w.Claimed("blue"); len(claimed) != 0 {
		t.Errorf("claims after the holder's release: %v", claimed)
	}
}

func TestEndpointsWatchAndLeases(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := hosts(t, mem, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lease, _, err := h[0].Register(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h[1].Register(ctx, 0); err != nil {
		t.Fatal(err)
	}
	_, rev, err := h[1].Peers("blue")
	if err != nil {
		t.Fatal(err)
	}
	type change struct {
		ip      string
		deleted bool
	}
	seen := make(chan change, 10)
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- h[1].WatchPeers(ctx, "blue", rev, func(ep Peer, deleted bool) {
			seen <- change{ep.IP.String() + "@" + ep.Node + "/" + ep.VTEP.String(), deleted}
		})
	}()
	ep := Peer{Network: "blue", IP: netip.MustParseAddr("10.40.0.2"), MAC: "02:42:0a:28:00:02"}
	if err := h[0].PublishPeer(ep); err != nil {
		t.Fatal(err)
	}
	want := change{"10.40.0.2@host1/198.18.0.11", false}
	if got := <-seen; got != want {
		t.Errorf("watch saw %+v, want %+v", got, want)
	}
	eps, _, _ := h[1].Peers("blue")
	if len(eps) != 1 || eps[0].MAC != ep.MAC || eps[0].Node != "host1" {
		t.Errorf("list = %+v", eps)
	}
	// A restart within the TTL reuses the lease.
	if again, _, err := h[0].Register(ctx, lease); err != nil || again != lease {
		t.Errorf("re-register with a live lease: %d, %v; want %d", again, err, lease)
	}
	// The host goes silent past its TTL (cut off from etcd, say): it is no
	// longer alive, but its endpoint stays, so its peers keep reaching it.
	mem.Expire(lease)
	if nodes, _ := h[1].Nodes(); len(nodes) != 1 || nodes[0].Name != "host2" {
		t.Errorf("nodes after host1's lease expired: %+v", nodes)
	}
	if eps, _, _ := h[1].Peers("blue"); len(eps) != 1 || eps[0].Node != "host1" {
		t.Errorf("endpoints after host1's lease expired: %+v, want host1's kept", eps)
	}
	select {
	case got := <-seen:
		t.Errorf("after the lease expired the watch saw %+v, want nothing", got)
	default:
	}
	// Compaction ends the watch with ErrCompacted: the watcher resyncs.
	mem.Compact()
	if err := <-watchErr; !errors.Is(err, ErrCompacted) {
		t.Errorf("watch after compaction: %v, want ErrCompacted", err)
	}
	if err := h[1].WatchPeers(ctx, "blue", rev, func(Peer, bool) {}); !errors.Is(err, ErrCompacted) {
		t.Errorf("watch from a compacted revision: %v", err)
	}
}

// etcd unreachable: calls fail with ErrUnavailable within the call
// timeout, and work again when it is back.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := hosts(t, mem, 1)
	register(t, h...)
	mem.SetDown(errors.New("connection refused"))
	_, _, err := h[0].ClaimAddress("blue", netip.MustParseAddr("10.40.0.9"), "m")
	if !errors.Is(err, ErrUnavailable) || IsConflict(err) {
		t.Errorf("claim while down: %v, want ErrUnavailable", err)
	}
	mem.SetDown(nil)
	if ok, _, err := h[0].ClaimAddress("blue", netip.MustParseAddr("10.40.0.9"), "m"); !ok || err != nil {
		t.Errorf("claim after recovery: %v %v", ok, err)
	}
}

// Forget removes a dead host's claims and endpoints, more than one
// transaction's worth, and nobody else's.
func TestForget(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := hosts(t, mem, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, _, err := h[0].Register(ctx, 0); err != nil {
		t.Fatal(err)
	}
	register(t, h[1])
	for i := range 300 {
		ip := netip.AddrFrom4([4]byte{10, 40, byte(1 + i/250), byte(1 + i%250)})
		if ok, _, err := h[0].ClaimAddress("blue", ip, "m"); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	_ = h[0].PublishPeer(Peer{Network: "blue", IP: netip.MustParseAddr("10.40.1.1"), MAC: "m"})
	if ok, _, _ := h[1].ClaimAddress("blue", netip.MustParseAddr("10.40.9.9"), "n"); !ok {
		t.Fatal("host2's claim")
	}
	// host1's lease is alive: refused, nothing removed, unless forced.
	if n, err := h[1].Forget("host1", false); !errors.Is(err, ErrNodeAlive) || !IsConflict(err) || n != 0 ||
		!strings.Contains(err.Error(), "--force") {
		t.Fatalf("Forget of a live host = %d, %v; want ErrNodeAlive saying how", n, err)
	}
	if claimed, _ := h[1].Claimed("blue"); len(claimed) != 301 {
		t.Fatalf("claims after a refused forget: %d, want all 301", len(claimed))
	}
	n, err := h[1].Forget("host1", true)
	if err != nil || n != 303 {
		t.Errorf("Forget --force = %d, %v; want 303 keys (300 addresses, an endpoint, the node, its mark)", n, err)
	}
	claimed, _ := h[1].Claimed("blue")
	if len(claimed) != 1 || claimed[netip.MustParseAddr("10.40.9.9")] != "host2" {
		t.Errorf("claims after forget: %d, want host2's only", len(claimed))
	}
}

// A dead host (its lease expired) is forgotten without --force.
func TestForgetADeadHost(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := hosts(t, mem, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lease, _, err := h[0].Register(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := h[0].ClaimAddress("blue", netip.MustParseAddr("10.40.0.5"), "m"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	mem.kv.expire(lease)
	if n, err := h[1].Forget("host1", false); err != nil || n != 3 {
		t.Errorf("Forget of a dead host = %d, %v; want its claim, its (absent) record and its mark", n, err)
	}
}

// Two hosts under one node name would withdraw each other's records: the
// second to register is refused while the first's lease lives, and gets
// the name once that lease is gone; a restart reusing its own lease is not
// refused, nor one that lost track of its lease (same name and underlay
// address: its own record, taken over).
func TestRegisterRefusesANodeNameInUse(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	first := hosts(t, mem, 1)[0]
	second := NewWithStore(mem, Config{Node: "host1", Advertise: netip.MustParseAddr("198.18.0.99"), CallTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lease, _, err := first.Register(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := second.Register(ctx, 0); !errors.Is(err, ErrNodeNameInUse) || !strings.Contains(err.Error(), "--node-name") {
		t.Fatalf("second host under the same name: %v, want ErrNodeNameInUse naming --node-name", err)
	}
	if again, _, err := first.Register(ctx, lease); err != nil || again != lease {
		t.Errorf("restart with its own live lease = %d, %v; want lease %d reused", again, err, lease)
	}
	// The same host restarted without its lease (an older etcd backup
	// restored, its state lost): its own record is taken over.
	restarted := hosts(t, mem, 1)[0]
	if again, _, err := restarted.Register(ctx, 0); err != nil || again == lease {
		t.Errorf("restart without its lease = %d, %v; want a new lease and its record taken over", again, err)
	}
	mem.kv.expire(lease)
	if _, _, err := second.Register(ctx, 0); !errors.Is(err, ErrNodeNameInUse) {
		t.Errorf("the record is the restarted host's now: %v", err)
	}
}

// An etcd that lost its data would grant any claim, another host's live
// address too: a claim needs this host's record under its lease, so it is
// refused (ErrNotRegistered) and the registration ends (Register's channel
// closes) until the host registers again.
func TestClaimsNeedTheHostsRegistration(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	c := hosts(t, mem, 1)[0]
	_, _, err := c.ClaimAddress("blue", netip.MustParseAddr("10.40.0.9"), "m") // waits the call timeout (1 s)
	if !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("claim before registering: %v, want ErrNotRegistered", err)
	}
	_, lost, err := c.Register(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := c.ClaimAddress("blue", netip.MustParseAddr("10.40.0.9"), "m"); !ok || err != nil {
		t.Fatalf("claim once registered: %v %v", ok, err)
	}
	mem.Wipe()
	if ok, _, err := c.ClaimAddress("blue", netip.MustParseAddr("10.40.0.10"), "m2"); ok || !errors.Is(err, ErrNotRegistered) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("claim after the wipe: %v %v, want refused with ErrNotRegistered", ok, err)
	}
	select {
	case <-lost:
	case <-time.After(time.Second):
		t.Fatal("the registration did not end when its record was found gone")
	}
	if _, _, err := c.Register(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := c.ClaimAddress("blue", netip.MustParseAddr("10.40.0.10"), "m2"); !ok || err != nil {
		t.Errorf("claim after registering again: %v %v", ok, err)
	}
}

// A restart with another --cluster-ttl does not reuse the old lease: the
// new one has the TTL asked for, and the record is under it.
func TestRegisterWithANewTTL(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	mk := func(ttl time.Duration) *Client {
		return NewWithStore(mem, Config{Node: "host1", Advertise: netip.MustParseAddr("198.18.0.11"), TTL: ttl, CallTimeout: time.Second})
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	old, _, err := mk(15*time.Second).Register(ctx1, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop1()
	if again, _, err := mk(15*time.Second).Register(t.Context(), old); err != nil || again != old {
		t.Fatalf("restart with the same TTL: lease %d, %v; want %d reused", again, err, old)
	}
	lease, _, err := mk(30*time.Second).Register(t.Context(), old)
	if err != nil || lease == old {
		t.Fatalf("restart with another TTL: lease %d, %v; want a new one", lease, err)
	}
	if _, granted, _ := mem.kv.leaseTTL(t.Context(), lease); granted != 30*time.Second {
		t.Errorf("new lease granted %v, want 30s", granted)
	}
	if nodes, _ := mk(30 * time.Second).Nodes(); len(nodes) != 1 || nodes[0].Name != "host1" {
		t.Errorf("nodes after the new registration: %+v", nodes)
	}
}

// Check lists claims no endpoint holds, endpoint records no claim backs,
// duplicates and gone hosts; --fix removes the unbacked records only.
func TestCheck(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := hosts(t, mem, 2)
	register(t, h...)
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	// Good: host1's claim and record.
	if ok, _, err := h[0].ClaimAddress("blue", ip("10.40.0.2"), "m"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := h[0].PublishPeer(Peer{Network: "blue", IP: ip("10.40.0.2"), MAC: "m"}); err != nil {
		t.Fatal(err)
	}
	if rep, err := h[1].Check(false); err != nil || !rep.Clean() {
		t.Fatalf("a clean cluster: %+v, %v", rep, err)
	}
	// A claim without endpoint (host2), a record without claim (host2), a
	// duplicate of host1's address by host2, and a gone host's record.
	if ok, _, err := h[1].ClaimAddress("blue", ip("10.40.0.3"), "n"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for _, a := range []string{"10.40.0.4", "10.40.0.2"} {
		if err := h[1].PublishPeer(Peer{Network: "blue", IP: ip(a), MAC: "n"}); err != nil {
			t.Fatal(err)
		}
	}
	mem.PutClaim("blue", ip("10.40.0.9"), "ghost", "g")
	mem.PutPeer(Peer{Network: "blue", Node: "ghost", IP: ip("10.40.0.9"), VTEP: ip("198.18.0.99")})
	rep, err := h[1].Check(false)
	if err != nil {
		t.Fatal(err)
	}
	want := CheckReport{
		ClaimsWithoutEndpoint: []string{"blue 10.40.0.3 claimed by host2"},
		EndpointsWithoutClaim: []string{"blue 10.40.0.2 of host2", "blue 10.40.0.4 of host2"},
		Duplicates:            []string{"blue 10.40.0.2: records of host1, host2"},
		GoneHosts:             []string{"ghost"},
	}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("Check = %+v\nwant    %+v", rep, want)
	}
	rep, err = h[1].Check(true)
	if err != nil || len(rep.Fixed) != 2 {
		t.Fatalf("Check --fix = %+v, %v; want the two unbacked records removed", rep, err)
	}
	rep, _ = h[1].Check(false)
	if len(rep.EndpointsWithoutClaim)+len(rep.Duplicates) != 0 || len(rep.ClaimsWithoutEndpoint) != 1 || len(rep.GoneHosts) != 1 {
		t.Errorf("after --fix: %+v; want the claim and the gone host only", rep)
	}
	if eps, _, _ := h[1].Peers("blue"); len(eps) != 2 {
		t.Errorf("records after --fix: %+v, want host1's and ghost's", eps)
	}
}

// A watched record is checked against its address's claim and its node's
// registration, read together.
func TestRecordFacts(t *testing.T) {
	t.Parallel()
	mem := NewMemory()
	h := hosts(t, mem, 2)
	register(t, h...)
	ip := netip.MustParseAddr("10.40.0.7")
	if ok, _, err := h[1].ClaimAddress("blue", ip, "02:00:00:00:00:07"); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	got, err := h[0].RecordFacts("blue", ip, "host2", 0)
	want := RecordFacts{Claim: Claim{Node: "host2", Owner: "02:00:00:00:00:07"}, Claimed: true, VTEP: netip.MustParseAddr("198.18.0.12"), Registered: true}
	if err != nil || got != want {
		t.Errorf("RecordFacts = %+v, %v; want %+v", got, err, want)
	}
	got, err = h[0].RecordFacts("blue", netip.MustParseAddr("10.40.0.8"), "host9", 0)
	if err != nil || got != (RecordFacts{}) {
		t.Errorf("RecordFacts of an unclaimed address and an unknown node = %+v, %v; want nothing", got, err)
	}
}

// An attempt etcd does not answer (a member cut off holds it) is made
// again within the call's timeout; an answer, even an error, is not, and
// neither is a callOnce.
func TestCallTriesAgainWhenUnanswered(t *testing.T) {
	t.Parallel()
	c := NewWithStore(NewMemory(), Config{Node: "host1", CallTimeout: 400 * time.Millisecond})
	hangOnce := func(n *int) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			*n++
			if *n == 1 {
				<-ctx.Done() // the first attempt is never answered
				return ctx.Err()
			}
			return nil
		}
	}
	var n int
	if err := c.call("hang once", hangOnce(&n)); err != nil || n != 2 {
		t.Errorf("call: %v after %d attempts, want success at the second", err, n)
	}
	n = 0
	if err := c.callOnce("hang once", hangOnce(&n)); !errors.Is(err, ErrUnavailable) || n != 1 {
		t.Errorf("callOnce: %v after %d attempts, want unavailable after one", err, n)
	}
	n = 0
	answer := conflict("taken")
	if err := c.call("answer", func(context.Context) error { n++; return answer }); err != answer || n != 1 {
		t.Errorf("an answer: %v after %d attempts, want it as is after one", err, n)
	}
	n = 0
	start := time.Now()
	err := c.call("never", func(ctx context.Context) error { n++; <-ctx.Done(); return ctx.Err() })
	if !errors.Is(err, ErrUnavailable) || time.Since(start) > time.Second {
		t.Errorf("never answered: %v after %v, want unavailable within the timeout", err, time.Since(start))
	}
}
