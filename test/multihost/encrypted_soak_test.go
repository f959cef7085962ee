package multihost

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/test/mhtest"
)

// An encrypted network's promise, under a seeded random schedule of
// faults mixed with load: while two hosts' containers ping each other
// without pause, daemons are killed and started again, WireGuard devices
// are killed, keys are rotated, etcd is frozen and thawed; not one packet
// of the network leaves in clear on either host's link, at any moment; and
// after the last fault the traffic is back both ways.
// MYNET_ENC_SEED=S runs one schedule again.
func TestEncryptedNeverInClearUnderFaults(t *testing.T) {
	seed := uint64(time.Now().UnixNano() % 1000000)
	if s := os.Getenv("MYNET_ENC_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MYNET_ENC_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("seed %d (run again: MYNET_ENC_SEED=%d go test -run TestEncryptedNeverInClearUnderFaults ./test/multihost)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x6d796e6574))
	w := mhtest.NewWorld(t, 2, "--cluster-ttl", "30s")
	logTunnelsOnFailure(t, w)
	enc := map[string]string{"encrypted": ""}
	cs := []*mhtest.Container{
		w.Hosts[0].CreateNetworkWith("sealed", "10.58.0.0/24", enc).Run(""),
		w.Hosts[1].CreateNetworkWith("sealed", "", enc).Run(""),
	}
	mhtest.Eventually(t, "encrypted ping across", func() error { return cs[0].Ping(cs[1].IP.Addr(), 0) })
	caps := []*capture{startCapture(t, w, "h1"), startCapture(t, w, "h2")}
	var loops []*exec.Cmd
	for i, c := range cs {
		loop := exec.Command("ip", "netns", "exec", c.NS, "ping", "-i", "0.05", "-W", "1", "-p", pattern, cs[1-i].IP.Addr().String())
		if err := loop.Start(); err != nil {
			t.Fatal(err)
		}
		loops = append(loops, loop)
	}
	t.Cleanup(func() {
		for _, l := range loops {
			_ = l.Process.Kill()
			_ = l.Wait()
		}
	})

	down := map[int]bool{} // hosts whose daemon is killed
	etcdFrozen := false
	var done []string
	for range 12 {
		h := rng.IntN(2)
		host := w.Hosts[h]
		var what string
		switch r := rng.IntN(100); {
		case r < 25 && !down[h]:
			host.Kill()
			down[h], what = true, "kill -9 the daemon"
		case r < 40 && down[h]:
			host.Restart()
			down[h], what = false, "start the daemon again"
		case r < 60:
			host.KillWireGuard()
			what = "kill the WireGuard device"
		case r < 75 && !down[h]:
			out, err := exec.Command(mhtest.Binary(t), "cluster", "rotate-key", "--socket", host.Socket()).CombinedOutput()
			what = fmt.Sprintf("rotate the key (%v)", strings.TrimSpace(string(out)))
			if err != nil && !strings.Contains(string(out), "unreachable") {
				t.Errorf("rotate-key on %s: %v\n%s", host.Name, err, out)
			}
		case r < 88 && !etcdFrozen:
			w.Etcd.Stop()
			etcdFrozen, what = true, "freeze etcd"
		case etcdFrozen:
			w.Etcd.Resume()
			etcdFrozen, what = false, "thaw etcd"
		default:
			what = "nothing"
		}
		done = append(done, host.Name+": "+what)
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
	}
	t.Logf("schedule:\n%s", strings.Join(done, "\n"))
	if etcdFrozen {
		w.Etcd.Resume()
	}
	for h, isDown := range down {
		if isDown {
			w.Hosts[h].Restart()
		}
	}
	mhtest.Eventually(t, "host1 -> host2 after the faults", func() error { return cs[0].Ping(cs[1].IP.Addr(), 0) })
	mhtest.Eventually(t, "host2 -> host1 after the faults", func() error { return cs[1].Ping(cs[0].IP.Addr(), 0) })
	for i, c := range caps {
		raw, lines := c.stop(t)
		if bytes.Contains(raw, []byte("mynet-sealed!!!!")) || strings.Contains(lines, ".4798:") {
			t.Errorf("clear packets of the encrypted network on host%d's link under the faults:\n%s", i+1, lines)
		}
		if !strings.Contains(lines, ".4800:") {
			t.Errorf("no WireGuard on host%d's link: the capture saw nothing of the load", i+1)
		}
	}
}
