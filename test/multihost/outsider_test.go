package multihost

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/wgtunnel"
	"github.com/mynet/mynet/test/mhtest"
)

// A machine on the underlay that is no host of the cluster, with a
// WireGuard device and a key of its own that names a host as its peer and
// one of the pool's addresses as its own: the host takes nothing from it
// (no handshake, no reply), and does not list it among its peers.
func TestEncryptedNonMemberGetsNothing(t *testing.T) {
	w := mhtest.NewWorld(t, 2)
	logTunnelsOnFailure(t, w)
	h1, h2 := w.Hosts[0], w.Hosts[1]
	enc := map[string]string{"encrypted": ""}
	c1, c2 := h1.CreateNetworkWith("sealed", "10.55.0.0/24", enc).Run(""), h2.CreateNetworkWith("sealed", "", enc).Run("")
	mhtest.Eventually(t, "encrypted ping across", func() error { return c1.Ping(c2.IP.Addr(), 0) })

	var host1 struct {
		Cluster struct {
			WireGuard struct {
				Address   netip.Prefix `json:"address"`
				PublicKey string       `json:"public_key"`
				Port      int          `json:"port"`
			} `json:"wireguard"`
		} `json:"cluster"`
	}
	readJSONStatus(t, h1, &host1)
	tun := host1.Cluster.WireGuard
	key, err := wgtunnel.ParseKey(tun.PublicKey)
	if err != nil {
		t.Fatalf("host1's public key %q: %v", tun.PublicKey, err)
	}

	// The outsider: its own userspace device, in a namespace on the
	// underlay, with an address of the pool no host has.
	ns := w.AttachNS("x", "198.18.0.50")
	dev := w.WireGuardDevice(ns)
	dir := t.TempDir()
	cmd := exec.Command("ip", "netns", "exec", ns, mhtest.Binary(t), "wg-device", "--name", dev, "--pid-file", filepath.Join(dir, "wg-device.pid"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = os.Remove(filepath.Join(wgtunnel.SocketDir, dev+".sock"))
	})
	wg, err := wgtunnel.New(wgtunnel.Config{Name: dev, Port: 4800, Mode: wgtunnel.ModeUserspace, Dir: dir}, nil, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	defer wg.Close()
	if !mhtest.WaitFor(5*time.Second, func() bool { _, err := os.Stat(filepath.Join(dir, "wg-device.pid")); return err == nil }) {
		t.Fatal("the outsider's WireGuard device did not come up")
	}
	own, err := wgtunnel.RotateKey(filepath.Join(dir, wgtunnel.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := wg.Ensure(own); err != nil {
		t.Fatal(err)
	}
	if err := wg.SetPeers([]wgtunnel.Peer{{Node: "host1", Key: key, Endpoint: netip.AddrPortFrom(netip.MustParseAddr(h1.Addr), uint16(tun.Port)),
		Tunnel: tun.Address.Addr()}}, nil); err != nil {
		t.Fatal(err)
	}
	mine := tun.Address.Masked().Addr().Next().Next().Next()
	for mine == tun.Address.Addr() {
		mine = mine.Next()
	}
	mhtest.Run(t, "ip", "-n", ns, "addr", "add", netip.PrefixFrom(mine, tun.Address.Bits()).String(), "dev", dev)
	mhtest.Run(t, "ip", "-n", ns, "link", "set", dev, "up")

	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.3", "-W", "1", tun.Address.Addr().String()).CombinedOutput()
	if err == nil {
		t.Errorf("the outsider reached host1's tunnel address:\n%s", out)
	}
	peers, err := wg.Peers()
	if err != nil || len(peers) != 1 {
		t.Fatalf("the outsider's peers: %+v, %v", peers, err)
	}
	if !peers[0].LastHandshake.IsZero() || peers[0].Received != 0 {
		t.Errorf("host1 answered the outsider: %+v", peers[0])
	}
	var host1Peers struct {
		Cluster struct {
			WireGuard struct {
				Peers []struct {
					Node string `json:"node"`
				} `json:"peers"`
			} `json:"wireguard"`
		} `json:"cluster"`
	}
	readJSONStatus(t, h1, &host1Peers)
	if ps := host1Peers.Cluster.WireGuard.Peers; len(ps) != 1 || ps[0].Node != "host2" {
		t.Errorf("host1's WireGuard peers: %+v, want host2 alone", ps)
	}
	// The cluster's own traffic was not disturbed.
	if err := c1.Ping(c2.IP.Addr(), 0); err != nil {
		t.Errorf("encrypted ping across after the outsider: %v", err)
	}

	// host1's encrypted network goes: within the tunnel's idle time (35 s)
	// its device, its process and the blackhole go too, and its rules.
	c1.Remove()
	n1 := c1.Net
	h1.Call("/NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": n1.ID})
	h1.Call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": n1.PoolID, "Address": strings.Split(n1.GW, "/")[0]})
	h1.Call("/IpamDriver.ReleasePool", map[string]any{"PoolID": n1.PoolID})
	gone := func() bool {
		links, _ := exec.Command("ip", "-n", h1.NS, "-o", "link").Output()
		routes, _ := exec.Command("ip", "-n", h1.NS, "route", "show", "type", "blackhole").Output()
		rules, _ := exec.Command("ip", "netns", "exec", h1.NS, "iptables-save").Output()
		return !strings.Contains(string(links), w.WireGuardDevice(h1.NS)) && len(routes) == 0 &&
			!strings.Contains(string(rules), "4798") && h1.WireGuardPid() == 0
	}
	if !mhtest.WaitFor(45*time.Second, gone) {
		links, _ := exec.Command("ip", "-n", h1.NS, "-o", "link").Output()
		t.Errorf("host1 without an encrypted network still has its tunnel (pid %d):\n%s", h1.WireGuardPid(), links)
	}
}

// A host that cannot make a WireGuard device refuses an encrypted network,
// saying why, and leaves nothing of it; its plain networks are not
// concerned. (Here with --cluster-wireguard kernel on a kernel without
// WireGuard; on a kernel with it, the device is the kernel's.)
func TestHostThatCannotEncryptRefuses(t *testing.T) {
	w := mhtest.NewWorld(t, 1, "--cluster-wireguard", "kernel")
	h := w.Hosts[0]
	probe := w.AttachNS("probe", "198.18.0.60")
	kernelHasWireGuard := exec.Command("ip", "-n", probe, "link", "add", "wgprobe0", "type", "wireguard").Run() == nil
	n, err := h.TryCreateNetworkWith("sealed", "10.56.0.0/24", map[string]string{"encrypted": ""})
	if kernelHasWireGuard {
		if err != nil {
			t.Fatalf("a kernel with WireGuard: %v", err)
		}
		var s struct {
			Cluster struct {
				WireGuard struct{ Kind string } `json:"wireguard"`
			} `json:"cluster"`
		}
		readJSONStatus(t, h, &s)
		if s.Cluster.WireGuard.Kind != wgtunnel.KindKernel {
			t.Errorf("device kind %q, want the kernel's", s.Cluster.WireGuard.Kind)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "this host cannot encrypt") || !strings.Contains(err.Error(), "the kernel has no WireGuard") {
		t.Fatalf("an encrypted network on a host that cannot encrypt: %v (network %v), want a refusal that says why", err, n)
	}
	out, _ := exec.Command("ip", "-n", h.NS, "-o", "link").Output()
	if strings.Contains(string(out), "mn-") || strings.Contains(string(out), "mnv") || strings.Contains(string(out), w.WireGuardDevice(h.NS)) {
		t.Errorf("links left by the refused network:\n%s", out)
	}
	if out, _ := exec.Command("ip", "-n", h.NS, "route", "show", "type", "blackhole").Output(); len(out) != 0 {
		t.Errorf("routes left by the refused network:\n%s", out)
	}
	plain := h.CreateNetwork("plain", "10.57.0.0/24")
	if c := plain.Run(""); !c.IP.IsValid() {
		t.Errorf("a plain network after the refusal: %+v", c)
	}
}
