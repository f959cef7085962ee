package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mynet/mynet/plugin"
)

// What an operator runs next to the daemon: metrics, systemd's readiness
// and socket activation, health that fails when something is wrong, and
// repairs triggered by link events.

const (
	opsNet = "0b5e000000aa0000000000000000000000000000000000000000000000000001"
	opsEp  = "0b5e000000ee0000000000000000000000000000000000000000000000000001"
)

// createOpsNetwork plays dockerd's calls for a network with one endpoint.
func createOpsNetwork(d *daemon, subnet string) (poolID string) {
	pool := d.call("/IpamDriver.RequestPool", map[string]any{"AddressSpace": "LocalDefault", "Pool": subnet})
	poolID = pool["PoolID"].(string)
	gw := d.call("/IpamDriver.RequestAddress", map[string]any{"PoolID": poolID,
		"Options": map[string]string{"RequestAddressType": "com.docker.network.gateway"}})["Address"].(string)
	d.call("/NetworkDriver.CreateNetwork", map[string]any{"NetworkID": opsNet, "Options": map[string]any{},
		"IPv4Data": []map[string]any{{"AddressSpace": "LocalDefault", "Pool": subnet, "Gateway": gw}}})
	addr := d.call("/IpamDriver.RequestAddress", map[string]any{"PoolID": poolID,
		"Options": map[string]string{"com.docker.network.endpoint.macaddress": "02:00:00:00:0b:01"}})["Address"].(string)
	d.call("/NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": opsNet, "EndpointID": opsEp,
		"Interface": map[string]string{"Address": addr, "MacAddress": "02:00:00:00:0b:01"}})
	d.call("/NetworkDriver.Join", map[string]any{"NetworkID": opsNet, "EndpointID": opsEp, "SandboxKey": "/x"})
	return poolID
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// metricValue finds one sample in an exposition; -1 when absent.
func metricValue(t *testing.T, text, name string, labels ...string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		return v
	}
	return -1
}

// TestMetricsScrape: with --metrics-addr, /metrics counts every call by
// status and error kind, times them, and shows the state as gauges.
func TestMetricsScrape(t *testing.T) {
	d := newDaemon(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d.args = []string{"--metrics-addr", addr}
	d.start()
	poolID := createOpsNetwork(d, "10.61.0.0/24")
	if code, _, _ := d.raw("/NetworkDriver.CreateEndpoint", []byte(`{"NetworkID":"nope","EndpointID":"x"}`)); code < 400 {
		t.Fatalf("a call for an unknown network answered %d", code)
	}
	d.call("/mynet.Reconcile", map[string]any{})

	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	text := string(b)
	checks := []struct {
		name   string
		labels []string
		want   func(float64) bool
		what   string
	}{
		{"mynet_calls_total", []string{`call="NetworkDriver.CreateNetwork"`, `code="200"`}, eq(1), "1"},
		{"mynet_calls_total", []string{`call="IpamDriver.RequestAddress"`, `code="200"`}, eq(2), "2"},
		{"mynet_call_errors_total", []string{`call="NetworkDriver.CreateEndpoint"`}, eq(1), "1"},
		{"mynet_call_duration_seconds_count", []string{`call="NetworkDriver.Join"`}, eq(1), "1"},
		{"mynet_reconcile_runs_total", []string{`trigger="start"`, `result="ok"`}, eq(1), "1"},
		{"mynet_reconcile_runs_total", []string{`trigger="api"`, `result="ok"`}, eq(1), "1"},
		{"mynet_iptables_batch_duration_seconds_count", []string{`family="IPv4"`, `op="restore"`}, gt(0), "> 0"},
		{"mynet_networks", nil, eq(1), "1"},
		{"mynet_endpoints", nil, eq(1), "1"},
		{"mynet_published_ports", nil, eq(0), "0"},
		{"mynet_ipam_pool_allocated_addresses", []string{`pool="` + poolID + `"`}, eq(2), "2"},
		{"mynet_ipam_pool_size_addresses", []string{`pool="` + poolID + `"`}, eq(254), "254"},
		{"mynet_build_info", nil, eq(1), "1"},
	}
	for _, c := range checks {
		if v := metricValue(t, text, c.name, c.labels...); !c.want(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.what)
		}
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", text)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func gt(min float64) func(float64) bool  { return func(v float64) bool { return v > min } }

// notifySocket listens where a daemon run with NOTIFY_SOCKET reports to
// systemd.
func notifySocket(t *testing.T) (path string, next func() string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return path, func() string {
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			return "read: " + err.Error()
		}
		return string(buf[:n])
	}
}

// TestSystemdReadiness: READY=1 comes once the state is restored and the
// socket is served (Type=notify), STOPPING=1 when it stops.
func TestSystemdReadiness(t *testing.T) {
	d := newDaemon(t)
	d.start()
	createOpsNetwork(d, "10.62.0.0/24")
	d.stop()

	path, next := notifySocket(t)
	d.env = []string{"NOTIFY_SOCKET=" + path}
	d.start()
	if msg := next(); msg != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	// By READY the network is back and the API answers.
	st := d.call("/mynet.Status", map[string]any{})
	if n := len(list(st["networks"])); n != 1 {
		t.Errorf("status at READY shows %d networks, want 1", n)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := next(); msg != "STOPPING=1" {
		t.Errorf("notification at SIGTERM %q, want STOPPING=1", msg)
	}
}

// TestSocketActivation: a socket passed by systemd (LISTEN_FDS) is served
// instead of --socket, and left in place when the daemon stops.
func TestSocketActivation(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "activated.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	t.Cleanup(func() { f.Close() })
	ignored := filepath.Join(dir, "ignored.sock")
	// systemd sets LISTEN_PID to the service's PID: the shell's $$ is the
	// PID mynet gets from exec.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, mynetBinary(t),
		"--socket", ignored, "--state-dir", dir, "--reconcile-interval", "0")
	cmd.ExtraFiles = []*os.File{f} // fd 3, as systemd passes it
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	client := plugin.NewClient(sock, 5*time.Second)
	var code int
	for range 100 {
		if code, _, err = client.Post("/Plugin.Activate", []byte("{}")); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || code != 200 {
		t.Fatalf("the passed socket is not served: %d %v\n%s", code, err, log.String())
	}
	if _, err := os.Stat(ignored); !os.IsNotExist(err) {
		t.Errorf("--socket %s was created although systemd passed one (stat: %v)", ignored, err)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("the daemon removed systemd's socket when it stopped: %v", err)
	}
}

// health asks /mynet.Health and returns its status code and report.
func health(t *testing.T, d *daemon) (int, map[string]any) {
	t.Helper()
	code, out, err := d.raw("/mynet.Health", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	return code, out
}

func lastReconcile(out map[string]any) map[string]any {
	r, _ := out["last_reconcile"].(map[string]any)
	return r
}

// TestHealthFailsAndEventsRepair: a bridge replaced by a link that is no
// bridge cannot be repaired, and health says so with 503 and which network;
// once the impostor is deleted, the link event alone (no timer runs here)
// brings the bridge back and health is ok again.
func TestHealthFailsAndEventsRepair(t *testing.T) {
	d := newDaemon(t)
	d.start()
	createOpsNetwork(d, "10.63.0.0/24")
	bridge := "mn-" + opsNet[:12]
	code, out := health(t, d)
	if code != 200 || out["status"] != "ok" {
		t.Fatalf("fresh daemon: health %d %v", code, out)
	}
	for _, k := range []string{"version", "state_file", "iptables", "networks", "endpoints"} {
		if _, ok := out[k]; !ok {
			t.Errorf("health has no %q: %v", k, out)
		}
	}
	if out["networks"] != 1.0 || out["endpoints"] != 1.0 {
		t.Errorf("health counts networks %v, endpoints %v; want 1 and 1", out["networks"], out["endpoints"])
	}

	// Renames send no deletion event: the daemon learns of this at the
	// next reconcile, which is asked for explicitly.
	impostor := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "tdummy0"}, PeerName: "tdummy1"}
	if err := netlink.LinkAdd(impostor); err != nil {
		t.Fatal(err)
	}
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(br); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetName(br, "tbrold0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range []string{"tbrold0", "tdummy0"} {
			if l, err := netlink.LinkByName(n); err == nil {
				_ = netlink.LinkDel(l)
			}
		}
	})
	if err := netlink.LinkSetName(impostor, bridge); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := d.raw("/mynet.Reconcile", []byte("{}")); code == 200 {
		t.Error("reconcile succeeded with a dummy where the bridge should be")
	}
	code, out = health(t, d)
	errText, _ := out["Err"].(string)
	if code != 503 || out["status"] != "unhealthy" || !strings.Contains(errText, opsNet[:12]) {
		t.Errorf("with the bridge replaced: health %d %v; want 503 naming network %s", code, out, opsNet[:12])
	}
	if r := lastReconcile(out); r["ok"] != false || r["trigger"] != "api" {
		t.Errorf("last reconcile %v, want the failed api run", r)
	}

	// Deleting the impostor is a deletion of a link named like ours.
	dummy, err := netlink.LinkByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(dummy); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, out = health(t, d)
		if code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("5 s after the impostor went: health %d %v", code, out)
	}
	if r := lastReconcile(out); r["trigger"] != "link_event" || r["ok"] != true {
		t.Errorf("last reconcile %v, want a successful link_event run", r)
	}
	l, err := netlink.LinkByName(bridge)
	if err != nil || l.Type() != "bridge" {
		t.Fatalf("bridge %s after the repair: %v %v", bridge, l, err)
	}
	veth, err := netlink.LinkByName("mnh" + opsEp[:12])
	if err != nil || veth.Attrs().MasterIndex != l.Attrs().Index {
		t.Errorf("the endpoint's veth is not back on the bridge: %v", err)
	}
	if !regexp.MustCompile(`a link of ours was deleted`).MatchString(d.log.String()) {
		t.Error("the daemon did not log the link event")
	}
}
