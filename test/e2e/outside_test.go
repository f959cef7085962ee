package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// The "outside world": a network namespace reached from the host through a
// veth, holding 198.51.100.2 (TEST-NET-2). It has no route to any container
// subnet, so it can only answer a container whose traffic was masqueraded to
// the host's 198.51.100.1.
const (
	outsideNS   = "mynet-e2e-outside"
	outsideHost = "mne2e-out0"
	outsidePeer = "mne2e-out1"
	outsideIP   = "198.51.100.2"
)

func makeOutside(t *testing.T) {
	t.Helper()
	cleanup := func() {
		_ = exec.Command("ip", "link", "del", outsideHost).Run()
		_ = exec.Command("ip", "netns", "del", outsideNS).Run()
	}
	cleanup()
	t.Cleanup(cleanup)
	ip(t, "netns", "add", outsideNS)
	ip(t, "link", "add", outsideHost, "type", "veth", "peer", "name", outsidePeer)
	ip(t, "link", "set", outsidePeer, "netns", outsideNS)
	ip(t, "addr", "add", "198.51.100.1/24", "dev", outsideHost)
	ip(t, "link", "set", outsideHost, "up")
	ip(t, "-n", outsideNS, "addr", "add", outsideIP+"/24", "dev", outsidePeer)
	ip(t, "-n", outsideNS, "link", "set", outsidePeer, "up")
	ip(t, "-n", outsideNS, "link", "set", "lo", "up")
	if routes := ip(t, "-n", outsideNS, "route", "show"); strings.Contains(routes, "default") || strings.Contains(routes, "10.") {
		t.Fatalf("the outside namespace has a route back: %s", routes)
	}
}

func TestOutsideIsReachedOnlyThroughMasquerade(t *testing.T) {
	makeOutside(t)
	nat := prefix + "nat"
	createNetwork(t, nat, "-d", driverName, "--subnet", "10.206.0.0/24")
	out, err := runOnce(nat, "ping", "-c", "2", "-W", "2", outsideIP)
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Errorf("container cannot reach the outside host: %v\n%s", err, out)
	}
	// An HTTP answer from outside, served by busybox httpd in the namespace.
	srv := exec.Command("ip", "netns", "exec", outsideNS, "/bin/busybox", "httpd", "-f", "-p", outsideIP+":8080", "-h", "/etc")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	out, err = runOnce(nat, "sh", "-c", "for i in 1 2 3 4 5; do printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 2 "+outsideIP+" 8080 && exit 0; sleep 0.3; done; exit 1")
	if err != nil || !strings.Contains(out, "200 OK") {
		t.Errorf("HTTP to the outside host: %v\n%s", err, out)
	}

	// Control: the same with masquerade off gets no answer, which shows the
	// answers above came back only because of mynet's NAT.
	plain := prefix + "nonat"
	createNetwork(t, plain, "-d", driverName, "--subnet", "10.207.0.0/24", "-o", "com.docker.network.bridge.enable_ip_masquerade=false")
	out, err = runOnce(plain, "ping", "-c", "2", "-W", "1", outsideIP)
	if err == nil {
		t.Errorf("reached the outside without masquerade:\n%s", out)
	}
}
