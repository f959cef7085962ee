package multihost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/wgtunnel"
	"github.com/mynet/mynet/test/mhtest"
)

// hostStatus is the part of mynet status --json this file reads.
type hostStatus struct {
	Cluster struct {
		WireGuard *struct {
			PublicKey string `json:"public_key"`
			Peers     []struct {
				Node          string    `json:"node"`
				LastHandshake time.Time `json:"last_handshake"`
				Received      int64     `json:"received_bytes"`
			} `json:"peers"`
		} `json:"wireguard"`
	} `json:"cluster"`
}

func statusOf(t *testing.T, h *mhtest.Host) hostStatus {
	t.Helper()
	var s hostStatus
	readJSONStatus(t, h, &s)
	return s
}

// readJSONStatus reads the host's mynet status --json into v.
func readJSONStatus(t testing.TB, h *mhtest.Host, v any) {
	t.Helper()
	out, err := exec.Command(mhtest.Binary(t), "status", "--json", "--socket", h.Socket()).Output()
	if err != nil {
		t.Fatalf("%s: mynet status: %v\n%s", h.Name, err, out)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("%s: mynet status --json: %v\n%s", h.Name, err, out)
	}
}

var received = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// Three hosts on an encrypted network, with a pre-shared key on every
// host (--cluster-psk-file): every pair reaches the others; each
// host's status shows the other two with a handshake; a key rotated under
// a ping loop costs less than a second of it; and a host restarted with
// etcd down (its device gone too) has its encrypted traffic back from what
// it saved.
func TestEncryptedThreeHosts(t *testing.T) {
	// A pre-shared key: any 32 random bytes in base64, mode 600.
	psk := filepath.Join(t.TempDir(), "psk")
	if _, err := wgtunnel.RotateKey(psk); err != nil {
		t.Fatal(err)
	}
	args := []string{"--cluster-ttl", "30s", "--cluster-psk-file", psk}
	w := mhtest.NewWorld(t, 3, args...)
	logTunnelsOnFailure(t, w)
	enc := map[string]string{"encrypted": ""}
	var cs []*mhtest.Container
	for i, h := range w.Hosts {
		subnet := ""
		if i == 0 {
			subnet = "10.52.0.0/24"
		}
		cs = append(cs, h.CreateNetworkWith("sealed3", subnet, enc).Run(""))
	}
	for _, a := range cs {
		for _, b := range cs {
			if a != b {
				mhtest.Eventually(t, fmt.Sprintf("%s -> %s", a.IP, b.IP), func() error { return a.Ping(b.IP.Addr(), 0) })
			}
		}
	}
	h1, h2 := w.Hosts[0], w.Hosts[1]
	s := statusOf(t, h1)
	if s.Cluster.WireGuard == nil || len(s.Cluster.WireGuard.Peers) != 2 {
		t.Fatalf("host1's status: %+v, want its WireGuard tunnel with two peers", s.Cluster.WireGuard)
	}
	for _, p := range s.Cluster.WireGuard.Peers {
		if p.LastHandshake.IsZero() || p.Received == 0 {
			t.Errorf("host1's status: peer %s has no handshake or no bytes: %+v", p.Node, p)
		}
	}
	out, _ := exec.Command(mhtest.Binary(t), "status", "--socket", h1.Socket()).CombinedOutput()
	if !strings.Contains(string(out), "WIREGUARD (device") || !strings.Contains(string(out), "host3") {
		t.Errorf("mynet status lacks the WireGuard section:\n%s", out)
	}

	// host2's key rotated while host1 pings it ten times a second.
	old := statusOf(t, h2).Cluster.WireGuard.PublicKey
	// Nothing in clear on host2's link meanwhile.
	capture := startCapture(t, w, "h2")
	loop := exec.Command("ip", "netns", "exec", cs[0].NS, "ping", "-c", "60", "-i", "0.1", "-W", "1", "-p", pattern, cs[1].IP.Addr().String())
	var pings strings.Builder
	loop.Stdout = &pings
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the loop is under way
	rot, err := exec.Command(mhtest.Binary(t), "cluster", "rotate-key", "--socket", h2.Socket()).CombinedOutput()
	if err != nil {
		t.Fatalf("mynet cluster rotate-key: %v\n%s", err, rot)
	}
	_ = loop.Wait()
	if raw, lines := capture.stop(t); bytes.Contains(raw, []byte("mynet-sealed!!!!")) || strings.Contains(lines, ".4798:") {
		t.Errorf("clear packets on host2's link during the rotation:\n%s", lines)
	}
	m := received.FindStringSubmatch(pings.String())
	if m == nil {
		t.Fatalf("ping printed:\n%s", pings.String())
	}
	sent, got := atoi(m[1]), atoi(m[2])
	t.Logf("rotation under a ping loop every 100 ms: %d of %d answered", got, sent)
	if sent-got >= 10 {
		t.Errorf("the key rotation cost %d pings of 100 ms: a second or more of traffic", sent-got)
	}
	if now := statusOf(t, h2).Cluster.WireGuard.PublicKey; now == old || !strings.Contains(string(rot), now) {
		t.Errorf("host2's key %s after the rotation (was %s); rotate-key said %s", now, old, rot)
	}

	// etcd down; host1's daemon and its device killed, the daemon started
	// again: the device comes back from the store, with its peers.
	w.Etcd.Kill()
	h1.Kill()
	h1.KillWireGuard()
	h1.Restart(args...) // the same flags: without the pre-shared key, no host would take it

	mhtest.Eventually(t, "host1 -> host2 with etcd down after a restart", func() error { return cs[0].Ping(cs[1].IP.Addr(), 0) })
	mhtest.Eventually(t, "host3 -> host1 with etcd down after a restart", func() error { return cs[2].Ping(cs[0].IP.Addr(), 0) })
	w.Etcd.Restart()
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
