package multihost

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mynet/mynet/test/mhtest"
)

// TestDataLossSoak runs seeded random schedules of endpoint creations (one
// host, or three at once), removals, daemon kill -9 and restart, etcd
// frozen 3 s, etcd's data deleted under the running hosts (etcdctl del
// --prefix), etcd replaced by a new empty one, and etcd restored from an
// older backup, on three hosts sharing
// a /25, so that addresses are reused. At every creation no address is held
// twice (from what each host handed out, not from etcd); after each
// schedule, within settleBound: every live endpoint's claim and record are
// back (mynet cluster check finds nothing), each host programs exactly the
// other hosts' live endpoints (nothing refused that should not be, nothing
// stale), and every host pair reaches each other.
//
// An even seed's network is dual stack (its IPv6 subnet a /121, so that
// IPv6 addresses are reused too): no address of either family is held
// twice, both families are programmed and reached.
//
// MYNET_SOAK_SEEDS=N runs N schedules (make test: 2; make soak: more),
// MYNET_SOAK_SEED=S runs the one of seed S again, MYNET_SOAK_STEPS their
// length (default 40).
func TestDataLossSoak(t *testing.T) {
	seeds := []uint64{1, 2}
	if s := os.Getenv("MYNET_SOAK_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MYNET_SOAK_SEED=%q: %v", s, err)
		}
		seeds = []uint64{n}
	} else if s := os.Getenv("MYNET_SOAK_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("MYNET_SOAK_SEEDS=%q: want a count", s)
		}
		base := uint64(time.Now().UnixNano() % 1000000)
		seeds = nil
		for i := range n {
			seeds = append(seeds, base+uint64(i))
		}
	}
	steps := 40
	if s := os.Getenv("MYNET_SOAK_STEPS"); s != "" {
		steps, _ = strconv.Atoi(s)
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { soak(t, seed, steps) })
	}
}

// settleBound is how long after the last fault the invariants must hold:
// a host notices a loss within 1 s, registers and claims again in a round
// trip or two, held records are settled every 2 s, and a held peer whose
// host did not publish it again goes 10 s after that host is back.
const settleBound = 30 * time.Second

type live struct {
	host int
	c    *mhtest.Container
}

type soaker struct {
	t      *testing.T
	w      *mhtest.World
	nets   []*mhtest.ClusterNet
	rng    *rand.Rand
	mu     sync.Mutex
	live   []live
	faults map[string]int
	backup string
}

func soak(t *testing.T, seed uint64, steps int) {
	t.Logf("seed %d (run again: MYNET_SOAK_SEED=%d go test -run TestDataLossSoak ./test/multihost)", seed, seed)
	w := mhtest.NewWorld(t, 3)
	s := &soaker{t: t, w: w, rng: rand.New(rand.NewPCG(seed, seed^0x6d796e6574)), faults: map[string]int{}}
	for i, h := range w.Hosts {
		subnet, subnet6 := "10.243.0.0/25", "fd00:243::/121"
		if i > 0 {
			subnet, subnet6 = "", ""
		}
		if seed%2 == 0 {
			s.nets = append(s.nets, h.CreateDualStack("blue", subnet, subnet6))
		} else {
			s.nets = append(s.nets, h.CreateNetwork("blue", subnet))
		}
	}
	t.Logf("dual stack: %v", seed%2 == 0)
	wipes, restores := 0, 0
	for range steps {
		at := time.Now().Format("15:04:05.000")
		switch r := s.rng.IntN(100); {
		case r < 35:
			s.create(s.rng.IntN(3))
		case r < 45:
			var wg sync.WaitGroup
			for i := range 3 {
				wg.Add(1)
				go func() { defer wg.Done(); s.create(i) }()
			}
			wg.Wait()
			s.faults["concurrent creations"]++
		case r < 70:
			s.remove()
		case r < 78:
			i := s.rng.IntN(3)
			w.Hosts[i].Kill()
			w.Hosts[i].Restart()
			s.faults["daemon kill -9"]++
			t.Logf("%s host%d killed and restarted", at, i+1)
		case r < 85:
			w.Etcd.Stop()
			time.Sleep(3 * time.Second)
			w.Etcd.Resume()
			s.faults["etcd frozen 3 s"]++
			t.Logf("%s etcd frozen 3 s", at)
		case r < 88 && wipes < 2:
			// A new, empty etcd under the same endpoints (the cluster's
			// disks lost): no keys, no leases, revisions from 1.
			w.Etcd.Wipe()
			w.Etcd.Restart()
			wipes++
			s.faults["etcd replaced by an empty one"]++
			t.Logf("%s etcd replaced by an empty one with %d live endpoints", at, len(s.live))
		case r < 92 && wipes < 2:
			n := w.Etcd.DeletePrefix()
			wipes++
			s.faults["etcd data deleted"]++
			t.Logf("%s etcd's data deleted (%d keys) with %d live endpoints", at, n, len(s.live))
		case r < 96 && s.backup == "":
			s.backup = w.Etcd.Backup()
			s.faults["backup taken"]++
			t.Logf("%s etcd backup taken", at)
		case r < 100 && s.backup != "" && restores < 1:
			w.Etcd.Restore(s.backup)
			restores++
			s.faults["etcd restored from the older backup"]++
			t.Logf("%s etcd restored from the older backup", at)
		default:
			s.create(s.rng.IntN(3))
		}
		time.Sleep(time.Duration(s.rng.IntN(300)) * time.Millisecond)
	}
	t.Logf("seed %d: %d live endpoints at the end; faults %v", seed, len(s.live), s.faults)
	s.settle()
}

// create plays docker run on host i; an address any live endpoint has is
// the failure this test is about.
func (s *soaker) create(i int) {
	c, err := s.nets[i].TryRun("")
	if err != nil {
		s.mu.Lock()
		s.faults["creations refused"]++
		s.mu.Unlock()
		s.t.Logf("%s a creation on host%d refused: %s", time.Now().Format("15:04:05.000"), i+1, firstLine(err.Error()))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.live {
		for _, pair := range [][2]netip.Prefix{{l.c.IP, c.IP}, {l.c.IP6, c.IP6}} {
			if pair[0].IsValid() && pair[0].Addr() == pair[1].Addr() {
				s.t.Fatalf("address %s given twice: host%d's live endpoint has it, and host%d just handed it out", pair[1].Addr(), l.host+1, i+1)
			}
		}
	}
	s.live = append(s.live, live{host: i, c: c})
}

func (s *soaker) remove() {
	s.mu.Lock()
	if len(s.live) == 0 {
		s.mu.Unlock()
		return
	}
	k := s.rng.IntN(len(s.live))
	l := s.live[k]
	s.mu.Unlock()
	if err := l.c.TryRemove(); err != nil {
		// Docker retries nothing here: the endpoint may be half gone.
		// It stays counted as live only if its address is still the
		// host's; a failed removal is re-tried until it goes.
		s.t.Logf("removal of %s on host%d failed (%v); retrying", l.c.IP.Addr(), l.host+1, err)
		if !mhtest.WaitFor(settleBound, func() bool { return l.c.TryRemove() == nil }) {
			s.t.Fatalf("removal of %s on host%d still fails\nits log (tail):\n%s", l.c.IP.Addr(), l.host+1, mhtest.Tail(s.w.Hosts[l.host].Log(), 6000))
		}
	}
	s.mu.Lock()
	s.live = append(s.live[:k:k], s.live[k+1:]...)
	s.mu.Unlock()
}

// settle checks the invariants, waiting up to settleBound for them.
func (s *soaker) settle() {
	t := s.t
	start := time.Now()
	var last error
	ok := mhtest.WaitFor(settleBound, func() bool { last = s.check(); return last == nil })
	if !ok {
		out, _ := exec.Command("ip", "netns", "exec", s.w.Hosts[0].NS, mhtest.Binary(s.t), "cluster", "check", "--cluster-store", s.w.Store()).CombinedOutput()
		t.Logf("mynet cluster check at the end:\n%s", out)
		for _, h := range s.w.Hosts {
			t.Logf("%s's log (tail):\n%s", h.Name, mhtest.Tail(h.Log(), 4000))
			if dir := os.Getenv("MYNET_SOAK_LOGS"); dir != "" {
				_ = os.WriteFile(filepath.Join(dir, h.Name+".log"), []byte(h.Log()), 0o644)
			}
		}
		t.Fatalf("not settled within %v: %v", settleBound, last)
	}
	t.Logf("settled %v after the schedule's end", time.Since(start).Round(100*time.Millisecond))
	if err := s.reach(); err != nil {
		for i, n := range s.nets {
			fdb, _ := exec.Command("bridge", "-n", n.Host.NS, "fdb", "show", "dev", "mnv"+n.ID[:12]).CombinedOutput()
			t.Logf("host%d: neighbours\n%s\nfdb\n%s\nlog (tail):\n%s", i+1, n.Remotes(), fdb, mhtest.Tail(n.Host.Log(), 3000))
		}
		t.Fatal(err)
	}
}

// check: each host programs exactly the other hosts' live endpoints, and
// mynet cluster check finds nothing.
func (s *soaker) check() error {
	for i, n := range s.nets {
		want := map[netip.Addr]string{}
		for _, l := range s.live {
			if l.host != i {
				want[l.c.IP.Addr()] = l.c.MAC
				if l.c.IP6.IsValid() {
					want[l.c.IP6.Addr()] = l.c.MAC
				}
			}
		}
		have := map[netip.Addr]string{}
		for _, line := range strings.Split(strings.TrimSpace(n.Remotes()), "\n") {
			if f := strings.Fields(line); len(f) >= 3 {
				if a, err := netip.ParseAddr(f[0]); err == nil {
					have[a] = f[2]
				}
			}
		}
		for a, mac := range want {
			if have[a] != mac {
				return fmt.Errorf("host%d programs %s at %q, want %s", i+1, a, have[a], mac)
			}
		}
		for a := range have {
			if _, ok := want[a]; !ok {
				return fmt.Errorf("host%d programs %s, which no other host's live endpoint has", i+1, a)
			}
		}
	}
	out, err := exec.Command("ip", "netns", "exec", s.w.Hosts[0].NS, mhtest.Binary(s.t), "cluster", "check", "--cluster-store", s.w.Store()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mynet cluster check: %v\n%s", err, out)
	}
	return nil
}

// reach: one endpoint of each host pings one of each other host.
func (s *soaker) reach() error {
	first := map[int]*mhtest.Container{}
	for _, l := range s.live {
		if first[l.host] == nil {
			first[l.host] = l.c
		}
	}
	for i, a := range first {
		for j, b := range first {
			if i == j {
				continue
			}
			if !mhtest.WaitFor(10*time.Second, func() bool { return a.Ping(b.IP.Addr(), 0) == nil }) {
				return fmt.Errorf("host%d's %s does not reach host%d's %s", i+1, a.IP.Addr(), j+1, b.IP.Addr())
			}
			if b.IP6.IsValid() && !mhtest.WaitFor(10*time.Second, func() bool { return a.Ping(b.IP6.Addr(), 0) == nil }) {
				return fmt.Errorf("host%d's %s does not reach host%d's %s", i+1, a.IP6.Addr(), j+1, b.IP6.Addr())
			}
		}
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
