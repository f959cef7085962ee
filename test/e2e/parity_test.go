package e2e

import (
	"fmt"
	"strings"
	"testing"
)

func canPing(from, to string) bool {
	_, err := tryDocker("exec", from, "ping", "-c", "1", "-W", "1", to)
	return err == nil
}

// Containers on different mynet networks, and on Docker's own bridge
// networks, cannot reach each other in either direction; a container on two
// mynet networks talks on each.
func TestIsolation(t *testing.T) {
	a, b, d := prefix+"iso-a", prefix+"iso-b", prefix+"iso-d"
	createNetwork(t, a, "-d", driverName, "--subnet", "10.213.0.0/24")
	createNetwork(t, b, "-d", driverName, "--subnet", "10.214.0.0/24")
	createNetwork(t, d, "-d", "bridge", "--subnet", "10.215.0.0/24")
	runContainer(t, prefix+"a1", a, "sleep", "600")
	runContainer(t, prefix+"b1", b, "sleep", "600")
	runContainer(t, prefix+"d1", d, "sleep", "600")
	runContainer(t, prefix+"ab", a, "sleep", "600")
	docker(t, "network", "connect", b, prefix+"ab")
	ipA := containerIP(t, prefix+"a1", a)
	ipB := containerIP(t, prefix+"b1", b)
	ipD := containerIP(t, prefix+"d1", d)
	for _, c := range []struct{ from, to string }{
		{prefix + "a1", ipB}, {prefix + "b1", ipA}, {prefix + "d1", ipA}, {prefix + "a1", ipD},
	} {
		if canPing(c.from, c.to) {
			t.Errorf("%s reached %s across networks", c.from, c.to)
		}
	}
	for _, to := range []string{ipA, ipB} {
		if !canPing(prefix+"ab", to) {
			t.Errorf("the container on both networks cannot reach %s", to)
		}
	}
}

func TestICCOff(t *testing.T) {
	n := prefix + "noicc"
	createNetwork(t, n, "-d", driverName, "--subnet", "10.216.0.0/24", "-o", "com.docker.network.bridge.enable_icc=false")
	runContainer(t, prefix+"icc1", n, "sleep", "600")
	runContainer(t, prefix+"icc2", n, "sleep", "600")
	if canPing(prefix+"icc2", containerIP(t, prefix+"icc1", n)) {
		t.Error("containers talk with enable_icc=false")
	}
	if !canPing(prefix+"icc2", "10.216.0.1") {
		t.Error("a container cannot reach its gateway with enable_icc=false")
	}
}

func TestInternalNetwork(t *testing.T) {
	makeOutside(t)
	n := prefix + "internal"
	createNetwork(t, n, "-d", driverName, "--internal", "--subnet", "10.217.0.0/24")
	runContainer(t, prefix+"in1", n, "sleep", "600")
	runContainer(t, prefix+"in2", n, "sleep", "600")
	if !canPing(prefix+"in2", containerIP(t, prefix+"in1", n)) {
		t.Error("containers on an internal network cannot talk")
	}
	if canPing(prefix+"in1", outsideIP) {
		t.Error("a container on an internal network reached the outside")
	}
	if out, _ := tryDocker("exec", prefix+"in1", "ip", "route"); strings.Contains(out, "default") {
		t.Errorf("internal network gave a default route:\n%s", out)
	}
	if out, err := tryDocker("run", "--rm", "--network", n, "-p", "18097:80", image, "true"); err != nil {
		t.Errorf("-p on an internal network: %v %s", err, out)
	}
	if n := dnatRules(t, 18097); n != 0 {
		t.Errorf("an internal network got %d DNAT rules", n)
	}
}

func TestMTUInsideTheContainer(t *testing.T) {
	n := prefix + "mtu"
	id := createNetwork(t, n, "-d", driverName, "--subnet", "10.218.0.0/24", "-o", "com.docker.network.driver.mtu=1400")
	out, err := runOnce(n, "cat", "/sys/class/net/eth0/mtu")
	if err != nil || out != "1400" {
		t.Errorf("container MTU = %q (%v), want 1400", out, err)
	}
	if got := ip(t, "-o", "link", "show", "mn-"+id[:12]); !strings.Contains(got, "mtu 1400") {
		t.Errorf("bridge: %s", got)
	}
}

// Dual stack through Docker's IPAM and through mynet's: containers ping
// each other over IPv6, and get the gateway as their IPv6 default route.
func TestIPv6(t *testing.T) {
	for i, ipamArgs := range [][]string{nil, {"--ipam-driver", driverName}} {
		n := fmt.Sprintf("%sv6-%d", prefix, i)
		sub6 := fmt.Sprintf("fd00:db8:%d::/64", i+1)
		args := append([]string{"-d", driverName, "--ipv6", "--subnet", fmt.Sprintf("10.%d.0.0/24", 219+i), "--subnet", sub6}, ipamArgs...)
		createNetwork(t, n, args...)
		c1, c2 := fmt.Sprintf("%sv6a-%d", prefix, i), fmt.Sprintf("%sv6b-%d", prefix, i)
		runContainer(t, c1, n, "sleep", "600")
		runContainer(t, c2, n, "sleep", "600")
		ip6 := docker(t, "inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).GlobalIPv6Address}}", n), c1)
		if !strings.HasPrefix(ip6, fmt.Sprintf("fd00:db8:%d::", i+1)) {
			t.Errorf("%s: IPv6 address %q", n, ip6)
			continue
		}
		out, err := tryDocker("exec", c2, "ping", "-6", "-c", "2", "-W", "2", ip6)
		if err != nil {
			t.Errorf("%s: ping6 %s: %v\n%s", n, ip6, err, out)
		}
		if out, _ := tryDocker("exec", c2, "ip", "-6", "route", "show", "default"); !strings.Contains(out, fmt.Sprintf("via fd00:db8:%d::1", i+1)) {
			t.Errorf("%s: IPv6 default route %q", n, out)
		}
	}
}

// Static addresses, aux addresses and gateways through mynet's IPAM.
func TestStaticAndAuxAddresses(t *testing.T) {
	n := prefix + "static"
	createNetwork(t, n, "-d", driverName, "--ipam-driver", driverName, "--ipv6",
		"--subnet", "10.221.0.0/24", "--gateway", "10.221.0.254", "--aux-address", "printer=10.221.0.1", "--aux-address", "nas=10.221.0.2",
		"--subnet", "fd00:db8:9::/64")
	runContainer(t, prefix+"dyn", n, "sleep", "600")
	if got := containerIP(t, prefix+"dyn", n); got != "10.221.0.3" {
		t.Errorf("first dynamic address = %s, want 10.221.0.3 (gateway .254, aux .1 and .2 reserved)", got)
	}
	docker(t, "run", "-d", "--name", prefix+"fixed", "--network", n, "--ip", "10.221.0.77", "--ip6", "fd00:db8:9::77", image, "sleep", "600")
	t.Cleanup(func() { _, _ = tryDocker("rm", "-f", prefix+"fixed") })
	if got := containerIP(t, prefix+"fixed", n); got != "10.221.0.77" {
		t.Errorf("--ip gave %s", got)
	}
	if got := docker(t, "inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).GlobalIPv6Address}}", n), prefix+"fixed"); got != "fd00:db8:9::77" {
		t.Errorf("--ip6 gave %s", got)
	}
	if out, err := runOnce(n, "ip", "route", "show", "default"); err != nil || !strings.Contains(out, "via 10.221.0.254") {
		t.Errorf("default route %q (%v), want via --gateway 10.221.0.254", out, err)
	}
	if _, err := tryDocker("run", "--rm", "--network", n, "--ip", "10.221.0.2", image, "true"); err == nil {
		t.Error("an aux address was handed to a container")
	}
}

// A Docker bridge network whose bridge has a name of its user's choosing is
// recognised as Docker's from dockerd's own rules (iptables or nftables),
// and isolated from mynet's networks both ways, like docker0 and br-*.
func TestIsolationFromCustomNamedDockerBridge(t *testing.T) {
	a, d := prefix+"iso-custom-m", prefix+"iso-custom-d"
	createNetwork(t, a, "-d", driverName, "--subnet", "10.237.0.0/24")
	createNetwork(t, d, "-d", "bridge", "--subnet", "10.237.1.0/24", "-o", "com.docker.network.bridge.name=me2ecustom0")
	runContainer(t, prefix+"cm1", a, "sleep", "600")
	runContainer(t, prefix+"cd1", d, "sleep", "600")
	ipM, ipD := containerIP(t, prefix+"cm1", a), containerIP(t, prefix+"cd1", d)
	if err := daemon.reconcile(); err != nil { // learn it now, not at the next tick
		t.Fatal(err)
	}
	if canPing(prefix+"cm1", ipD) {
		t.Errorf("a mynet container reached %s on the Docker bridge me2ecustom0", ipD)
	}
	if canPing(prefix+"cd1", ipM) {
		t.Errorf("a container on the Docker bridge me2ecustom0 reached %s on mynet", ipM)
	}
	if !canPing(prefix+"cd1", "10.237.1.1") || !canPing(prefix+"cm1", "10.237.0.1") {
		t.Error("a container cannot reach its own gateway (the control)")
	}
}
