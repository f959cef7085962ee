package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The "outside world": a network namespace reached from the host through a
// veth, holding 198.51.100.2 (TEST-NET-2). It has no route to any container
// subnet, so it can only answer a container whose traffic was masqueraded to
// the host's 198.51.100.1. Its name is the machine's (/run/netns), so a
// suite run beside another one (make test runs the Engine 29 passes beside
// the host's) gives it a suffix of its own (MYNET_E2E_NETNS_SUFFIX).
var outsideNS = "mynet-e2e-outside" + os.Getenv("MYNET_E2E_NETNS_SUFFIX")

const (
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

// outsideIptables runs iptables inside the outside namespace.
func outsideIptables(t *testing.T, args ...string) {
	t.Helper()
	ip(t, append([]string{"netns", "exec", outsideNS, "iptables"}, args...)...)
}

// With com.docker.network.host_ipv4 the outside sees that address as the
// source: it answers only pings from it.
func TestHostIPv4IsTheSNATSource(t *testing.T) {
	makeOutside(t)
	ip(t, "addr", "add", "198.51.100.3/24", "dev", outsideHost)
	outsideIptables(t, "-A", "INPUT", "-p", "icmp", "-s", "198.51.100.3", "-j", "ACCEPT")
	outsideIptables(t, "-A", "INPUT", "-p", "icmp", "-j", "DROP")
	plain := prefix + "snat-off"
	snat := prefix + "snat-on"
	createNetwork(t, plain, "-d", driverName, "--subnet", "10.222.0.0/24")
	createNetwork(t, snat, "-d", driverName, "--subnet", "10.223.0.0/24", "-o", "com.docker.network.host_ipv4=198.51.100.3")
	if out, err := runOnce(snat, "ping", "-c", "2", "-W", "2", outsideIP); err != nil {
		t.Errorf("with host_ipv4: %v\n%s", err, out)
	}
	if out, err := runOnce(plain, "ping", "-c", "1", "-W", "1", outsideIP); err == nil {
		t.Errorf("masqueraded to the other host address, yet answered (the control failed):\n%s", out)
	}
}

// In routed gateway mode a host that routes to the subnet reaches published
// container ports directly (and ping), nothing else, and nothing is NATed.
func TestRoutedGatewayMode(t *testing.T) {
	makeOutside(t)
	n := prefix + "routed"
	createNetwork(t, n, "-d", driverName, "--subnet", "10.224.0.0/24", "-o", "com.docker.network.bridge.gateway_mode_ipv4=routed")
	ip(t, "-n", outsideNS, "route", "add", "10.224.0.0/24", "via", "198.51.100.1")
	web := prefix + "routed-web"
	docker(t, "run", "-d", "--name", web, "--network", n, "-p", "8080:80", image,
		"sh", "-c", "httpd -p 80 -h /var/www && httpd -f -p 81 -h /var/www")
	t.Cleanup(func() { _, _ = tryDocker("rm", "-f", web) })
	ctr := containerIP(t, web, n)
	eventually(t, "published container port, routed", func() error { _, err := httpGetFrom(outsideNS, ctr+":80"); return err })
	if out, err := httpGetFrom(outsideNS, ctr+":81"); err == nil {
		t.Errorf("an unpublished port is reachable in routed mode: %s", out)
	}
	if n := dnatRules(t, 8080); n != 0 {
		t.Errorf("routed mode created %d DNAT rules", n)
	}
	if out, err := exec.Command("ip", "netns", "exec", outsideNS, "/bin/busybox", "ping", "-c", "1", "-W", "2", ctr).CombinedOutput(); err != nil {
		t.Errorf("ping the container from the routing host: %v %s", err, out)
	}
	// The container reaches the outside with its own address (no NAT): the
	// outside has a route back.
	if out, err := runOnce(n, "ping", "-c", "1", "-W", "2", outsideIP); err != nil {
		t.Errorf("routed container to the outside: %v\n%s", err, out)
	}
}
