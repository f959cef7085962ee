package status

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/driver"
	"github.com/mynet/mynet/internal/dockersync"
	"github.com/mynet/mynet/internal/firewall"
	"github.com/mynet/mynet/ipam"
)

func TestPrint(t *testing.T) {
	t.Parallel()
	r := Report{
		Source: "daemon", Socket: "/run/docker/plugins/abc/mynet.sock",
		Health: &Health{
			Status: "unhealthy", Problems: []string{"last reconcile (api) failed: network 0123456789ab: boom"}, Version: "v1",
			Started:   time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
			StateFile: StateFileHealth{Path: "/var/lib/mynet/mynet.db", Writable: true},
			IPTables:  IPTablesHealth{Health: firewall.Health{Backend: "nft", Version: "1.8.9", BaseInstalled: true}, Reachable: true},
			Reconcile: ReconcileHealth{Time: time.Date(2026, 12, 1, 10, 5, 0, 0, time.UTC), Trigger: "api", Error: "boom"},
			Networks:  1, Endpoints: 1,
		},
		Networks: []Network{networkOf(driver.NetworkConfig{
			ID: "0123456789abcdef", BridgeName: "mn-0123456789ab", Subnet: netip.MustParsePrefix("10.1.0.0/24"),
			Gateway: netip.MustParsePrefix("10.1.0.1/24"), Masquerade: true, MTU: 1400,
		}, 1)},
		Endpoints: []Endpoint{endpointOf(driver.Endpoint{ID: "eeeeeeeeeeee1111", NetworkID: "0123456789abcdef", HostVeth: "mnheeeeeeeeeeee",
			Address: netip.MustParsePrefix("10.1.0.2/24"), MAC: "02:42:0a:01:00:02", Ports: []driver.PortMapping{{Proto: "tcp",
				HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 80, ContainerIP: netip.MustParseAddr("10.1.0.2"), ContainerPort: 80}}})},
		Pools: []ipam.PoolInfo{{ID: "LocalDefault/10.1.0.0/24", Allocated: 2, Size: 254}},
		Cluster: &Cluster{Node: "host2", Advertise: "198.18.0.12", Store: []string{"etcd://198.18.0.1:2379"}, Reachable: true,
			Peers: map[string][]Peer{"0123456789abcdef": {{Node: "host1", IP: netip.MustParseAddr("10.0.0.2"), Name: "bbox1",
				MAC: "02:42:0a:00:00:02", VTEP: netip.MustParseAddr("198.18.0.11")}}},
			DockerSync: &dockersync.Status{DockerHost: "unix:///run/docker.sock", On: true, Driver: "mynet",
				Networks: []dockersync.NetworkStatus{{Cluster: "ov_net1", Name: "ov_net1", State: "removal-pending", Detail: "2 container(s) here still use it"}}}},
	}
	r.Health.DockerSync = "on (unix:///run/docker.sock)"
	var b bytes.Buffer
	Print(&b, r)
	out := b.String()
	for _, want := range []string{
		"source: daemon on /run/docker/plugins/abc/mynet.sock",
		"health: unhealthy (mynet v1, up since 2026-12-01T10:00:00Z)",
		"problem: last reconcile (api) failed",
		"/var/lib/mynet/mynet.db  writable",
		"nft 1.8.9, mynet's chains installed",
		"2026-12-01T10:05:00Z (api): FAILED: boom",
		"1 networks, 1 endpoints",
		"0123456789ab  mn-0123456789ab  10.1.0.0/24  10.1.0.1",
		"icc=off,mtu=1400",
		"eeeeeeeeeeee  0123456789ab  mnheeeeeeeeeeee  10.1.0.2/24",
		"0.0.0.0:80->80/tcp",
		"LocalDefault/10.1.0.0/24  2          254",
		"docker sync     on (unix:///run/docker.sock)",
		"0123456789ab  10.0.0.2  bbox1  02:42:0a:00:00:02  host1  198.18.0.11",
		"DOCKER SYNC (unix:///run/docker.sock, driver mynet): on",
		"ov_net1          ov_net1      removal-pending  2 container(s) here still use it",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

// Without a daemon, the command reads the state file; with neither, it
// says both what it tried and why the file failed.
func TestCommandWithoutDaemon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	c := Command{Getenv: func(string) string { return "" }, Stdout: &stdout, Stderr: &stderr, PluginsDir: dir}
	err := c.Run([]string{"--state-dir", dir})
	if err == nil || !strings.Contains(err.Error(), "no mynet daemon answers") || !strings.Contains(err.Error(), "state file") {
		t.Errorf("no daemon, no state: %v", err)
	}
}

// Without --socket the command finds a managed plugin's socket under
// /run/docker/plugins/<id>/ by itself.
func TestCommandFindsPluginSocket(t *testing.T) {
	t.Parallel()
	// A short directory: a socket path must fit in 108 bytes, and a
	// plugin's ID is 64.
	dir, err := os.MkdirTemp("/tmp", "st")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	id := "6f1c0ffee0000000000000000000000000000000000000000000000000000000"
	if err := os.MkdirAll(filepath.Join(dir, id), 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, id, "mynet.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mynet.Status" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(Report{Source: "daemon", Health: &Health{Status: "ok", Version: "v7"}})
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	var stdout, stderr bytes.Buffer
	c := Command{Getenv: func(string) string { return "" }, Stdout: &stdout, Stderr: &stderr, PluginsDir: dir}
	if err := c.Run([]string{"--json"}); err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Socket != sock || r.Health == nil || r.Health.Version != "v7" {
		t.Errorf("report %+v, want the plugin's, from %s", r, sock)
	}
}

func TestPrintTunnel(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	printCluster(&b, &Cluster{Node: "host1", Reachable: true, Tunnel: &Tunnel{Device: "mynet-wg", Kind: "userspace",
		Address: netip.MustParsePrefix("10.0.4.1/22"), Port: 4800, PublicKey: "KEY=",
		Peers: []TunnelPeer{
			{Node: "host2", Endpoint: netip.MustParseAddrPort("198.18.0.12:4800"), Tunnel: netip.MustParseAddr("10.0.4.2"),
				LastHandshake: time.Now().Add(-3 * time.Second), Received: 1234, Sent: 5678},
			{Node: "host3", Endpoint: netip.MustParseAddrPort("198.18.0.13:4800"), Tunnel: netip.MustParseAddr("10.0.4.3")},
		}}})
	out := b.String()
	for _, want := range []string{"WIREGUARD (device mynet-wg, userspace, 10.0.4.1/22, port 4800, key KEY=)",
		"host2  198.18.0.12:4800  10.0.4.2  3s ago", "1234", "5678", "host3  198.18.0.13:4800  10.0.4.3  never"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
