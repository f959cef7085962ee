package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Two containers on a mynet network (Docker's default IPAM) talk by address
// and by name, route through the gateway, and network rm leaves nothing.
func TestContainersTalkOnDefaultIPAMNetwork(t *testing.T) {
	net := prefix + "dipam"
	id := createNetwork(t, net, "-d", driverName, "--subnet", "10.201.0.0/24", "--gateway", "10.201.0.1")
	runContainer(t, prefix+"alpha", net, "sleep", "600")
	alphaIP := containerIP(t, prefix+"alpha", net)
	if !strings.HasPrefix(alphaIP, "10.201.0.") {
		t.Fatalf("alpha's address %q is not in the subnet", alphaIP)
	}
	out, err := runOnce(net, "sh", "-c", fmt.Sprintf("ip route show default && ping -c 2 -W 2 %s && ping -c 2 -W 2 %s", alphaIP, prefix+"alpha"))
	if err != nil {
		t.Fatalf("ping from beta: %v\n%s", err, out)
	}
	if !strings.Contains(out, "default via 10.201.0.1 dev eth0") {
		t.Errorf("default route is not the gateway:\n%s", out)
	}
	if strings.Count(out, " 0% packet loss") != 2 {
		t.Errorf("pings lost packets:\n%s", out)
	}
	// The bridge carries the gateway; the container end is eth0, with the
	// MAC mynet derived from the address on 20.10 (as its bridge does; from
	// Engine 28 on it is random: TestParityMACOfARestartedContainer).
	if got := ip(t, "-o", "-4", "addr", "show", "dev", "mn-"+id[:12]); !strings.Contains(got, "10.201.0.1/24") {
		t.Errorf("bridge address: %s", got)
	}
	mac := docker(t, "exec", prefix+"alpha", "cat", "/sys/class/net/eth0/address")
	if want := macOf(alphaIP); engineMajor(t) < 28 && mac != want {
		t.Errorf("alpha's MAC %s, want %s", mac, want)
	}

	docker(t, "rm", "-f", prefix+"alpha")
	docker(t, "network", "rm", net)
	if left := kernelLeftovers(t, id); len(left) > 0 {
		t.Errorf("network rm left:\n%s", strings.Join(left, "\n"))
	}
}

func macOf(ip string) string {
	var a, b, c, d int
	fmt.Sscanf(ip, "%d.%d.%d.%d", &a, &b, &c, &d)
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", a, b, c, d)
}

// With --ipam-driver mynet-e2e the same socket serves IPAM: explicit subnets,
// static addresses and default pools.
func TestMynetIPAM(t *testing.T) {
	net := prefix + "mipam"
	createNetwork(t, net, "-d", driverName, "--ipam-driver", driverName, "--subnet", "10.202.0.0/24", "--ip-range", "10.202.0.128/25")
	runContainer(t, prefix+"ip1", net, "sleep", "600")
	// As with Docker's own IPAM, the gateway (not given) is the range's first
	// address and containers follow it.
	if got := containerIP(t, prefix+"ip1", net); got != "10.202.0.129" {
		t.Errorf("first container address from the range = %s, want 10.202.0.129", got)
	}
	if out, _ := runOnce(net, "ip", "route", "show", "default"); !strings.Contains(out, "via 10.202.0.128") {
		t.Errorf("default route = %q, want via the gateway 10.202.0.128", out)
	}
	docker(t, "run", "-d", "--name", prefix+"ip2", "--network", net, "--ip", "10.202.0.7", image, "sleep", "600")
	t.Cleanup(func() { _, _ = tryDocker("rm", "-f", prefix+"ip2") })
	if got := containerIP(t, prefix+"ip2", net); got != "10.202.0.7" {
		t.Errorf("static address = %s", got)
	}
	// The same static address twice is refused with IPAM's message.
	_, err := tryDocker("run", "--rm", "--network", net, "--ip", "10.202.0.7", image, "true")
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("duplicate --ip: %v", err)
	}
	out, err := runOnce(net, "ping", "-c", "1", "-W", "2", "10.202.0.7")
	if err != nil {
		t.Errorf("ping static address: %v\n%s", err, out)
	}

	// Without --subnet, networks get distinct pools that skip docker0's.
	a := prefix + "pool-a"
	b := prefix + "pool-b"
	createNetwork(t, a, "-d", driverName, "--ipam-driver", driverName)
	createNetwork(t, b, "-d", driverName, "--ipam-driver", driverName)
	sa := docker(t, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", a)
	sb := docker(t, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", b)
	if sa == sb || sa == "172.17.0.0/16" || sb == "172.17.0.0/16" || sa == "" {
		t.Errorf("default pools: %q and %q", sa, sb)
	}
}

// A bad option fails docker network create with a message naming the option
// and leaves no bridge or rule behind.
func TestBadOptionsAreRejected(t *testing.T) {
	before := vethCount(t)
	tests := []struct {
		opt, mention string
	}{
		{"com.docker.network.driver.mtu=abc", "com.docker.network.driver.mtu"},
		{"com.docker.network.bridge.name=sixteen-bytes-xx", "com.docker.network.bridge.name"},
		{"com.docker.network.bridge.enable_icc=maybe", "com.docker.network.bridge.enable_icc"},
		{"com.docker.network.bridge.gateway_mode_ipv4=bogus", "com.docker.network.bridge.gateway_mode_ipv4"},
		{"com.docker.network.host_ipv4=fd00::1", "com.docker.network.host_ipv4"},
		{"com.docker.network.bridge.host_binding_ipv4=nowhere", "com.docker.network.bridge.host_binding_ipv4"},
	}
	for _, tt := range tests {
		name := prefix + "bad"
		_, err := tryDocker("network", "create", "-d", driverName, "--subnet", "10.203.0.0/24", "-o", tt.opt, name)
		if err == nil {
			_, _ = tryDocker("network", "rm", name)
			t.Errorf("%s accepted", tt.opt)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%s: error does not name the option: %v", tt.opt, err)
		}
	}
	if out, _ := tryDocker("network", "ls", "-q", "--filter", "name="+prefix+"bad"); out != "" {
		t.Errorf("a rejected network exists: %s", out)
	}
	links := ip(t, "-o", "link", "show")
	if strings.Contains(links, "sixteen-bytes") || !vethCountSettles(t, before) {
		t.Errorf("rejected creates left links:\n%s", links)
	}
	// Overlapping subnets between mynet networks are refused.
	createNetwork(t, prefix+"ov1", "-d", driverName, "--subnet", "10.204.0.0/16")
	_, err := tryDocker("network", "create", "-d", driverName, "--subnet", "10.204.7.0/24", prefix+"ov2")
	if err == nil {
		_, _ = tryDocker("network", "rm", prefix+"ov2")
		t.Error("overlapping subnet accepted")
	} else if !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlap error: %v", err)
	}
}

// After kill -9 and a restart the daemon serves the old network: a new
// container gets a fresh address and talks to the old one.
func TestKill9RestartKeepsNetworks(t *testing.T) {
	net := prefix + "crash"
	createNetwork(t, net, "-d", driverName, "--ipam-driver", driverName, "--subnet", "10.205.0.0/24")
	runContainer(t, prefix+"old", net, "sleep", "600")
	oldIP := containerIP(t, prefix+"old", net)

	if err := daemon.kill9(); err != nil {
		t.Fatal(err)
	}
	if err := daemon.start(); err != nil {
		t.Fatal(err)
	}
	runContainer(t, prefix+"new", net, "sleep", "600")
	newIP := containerIP(t, prefix+"new", net)
	if newIP == oldIP || newIP == "10.205.0.1" || newIP == "" {
		t.Fatalf("address after restart = %q (old container has %s, gateway 10.205.0.1)", newIP, oldIP)
	}
	out, err := tryDocker("exec", prefix+"new", "ping", "-c", "2", "-W", "2", oldIP)
	if err != nil {
		t.Errorf("new container cannot reach the old one: %v\n%s", err, out)
	}
	out, err = tryDocker("exec", prefix+"old", "ping", "-c", "2", "-W", "2", prefix+"new")
	if err != nil {
		t.Errorf("old container cannot reach the new one by name: %v\n%s", err, out)
	}
	// Detach and reattach through the restarted daemon too.
	docker(t, "network", "disconnect", net, prefix+"new")
	docker(t, "network", "connect", net, prefix+"new")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := tryDocker("exec", prefix+"new", "ping", "-c", "1", "-W", "1", oldIP); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no connectivity after reconnect")
			break
		}
	}
}
