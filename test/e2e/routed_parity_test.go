package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// routedView is what a host that routes a network's subnets to this host
// reaches of a container on it.
type routedView struct {
	Ping4, Port4, Ping6, Port6 bool
}

// A container whose default gateway is on a NAT network, connected to a
// second network in gateway mode routed with a port published: a host that
// routes the routed network's subnets (IPv4 and IPv6) here reaches the
// published port on the container's routed addresses, not only its ping
// (the answers leave through the gateway network).
func TestParityRoutedNetworkThatIsNotTheGateway(t *testing.T) {
	drivers := modeDrivers(t)
	makeOutside(t)
	ip(t, "addr", "add", "fd00:5200::1/64", "dev", outsideHost, "nodad")
	ip(t, "-n", outsideNS, "addr", "add", "fd00:5200::2/64", "dev", outsidePeer, "nodad")
	want := routedView{Ping4: true, Port4: true, Ping6: true, Port6: true}
	got := map[string]routedView{}
	for i, drv := range drivers {
		nat, routed := fmt.Sprintf("%srtg-%d-a", prefix, i), fmt.Sprintf("%srtg-%d-b", prefix, i)
		createNetwork(t, nat, "-d", drv, "--ipv6", "--subnet", fmt.Sprintf("10.242.%d.0/24", i), "--subnet", fmt.Sprintf("fd00:242:%d::/64", i))
		sub4, sub6 := fmt.Sprintf("10.243.%d.0/24", i), fmt.Sprintf("fd00:243:%d::/64", i)
		createNetwork(t, routed, "-d", drv, "--ipv6", "--subnet", sub4, "--subnet", sub6,
			"-o", "com.docker.network.bridge.gateway_mode_ipv4=routed", "-o", "com.docker.network.bridge.gateway_mode_ipv6=routed")
		ip(t, "-n", outsideNS, "route", "add", sub4, "via", "198.51.100.1")
		ip(t, "-n", outsideNS, "-6", "route", "add", sub6, "via", "fd00:5200::1")
		web := fmt.Sprintf("%srtg-%d", prefix, i)
		// The NAT network first: on a tie the first network stays the
		// container's gateway.
		docker(t, "run", "-d", "--name", web, "--network", nat, "-p", fmt.Sprintf("%d:80", 18500+i), image, "httpd", "-f", "-p", "80", "-h", "/var/www")
		t.Cleanup(func() { _, _ = tryDocker("rm", "-f", web) })
		addr4, addr6 := fmt.Sprintf("10.243.%d.10", i), fmt.Sprintf("fd00:243:%d::10", i)
		docker(t, "network", "connect", "--ip", addr4, "--ip6", addr6, routed, web)
		if out := docker(t, "exec", web, "ip", "route", "show", "default"); !strings.Contains(out, fmt.Sprintf("via 10.242.%d.1", i)) {
			t.Fatalf("%s: the container's default route is not the NAT network's: %q", drv, out)
		}
		ping := func(addr string) bool {
			// Retried: the routed bridge's IPv6 gateway address is
			// tentative (DAD) for a moment after it is made.
			return exec.Command("ip", "netns", "exec", outsideNS, "/bin/busybox", "sh", "-c",
				"for i in 1 2 3 4 5 6; do ping -c 1 -W 1 "+addr+" && exit 0; sleep 0.5; done; exit 1").Run() == nil
		}
		var v routedView
		v.Ping4, v.Ping6 = ping(addr4), ping(addr6)
		_, err := httpGetFrom(outsideNS, addr4+":80")
		v.Port4 = err == nil
		_, err = httpGetFrom(outsideNS, "["+addr6+"]:80")
		v.Port6 = err == nil
		got[drv] = v
	}
	t.Logf("a routed network that is not the gateway, from a host routing to it: %+v", got)
	if !agree(got, want) {
		t.Errorf("a routed network that is not the gateway, from a host routing to it: %+v, documented: %+v", got, want)
	}
}
