package e2e

import (
	"fmt"
	"testing"
)

// routeLoopbackHere makes the outside namespace a host on the same segment
// that sends packets for addr (in 127.0.0.0/8) to this host: its own
// loopback route goes, a route via the host comes, and it accepts answers
// with a loopback source (route_localnet), as an attacker's host would.
func routeLoopbackHere(t *testing.T, addr string) {
	t.Helper()
	ip(t, "-n", outsideNS, "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
	ip(t, "-n", outsideNS, "route", "add", addr+"/32", "via", "198.51.100.1")
	ip(t, "netns", "exec", outsideNS, "/bin/busybox", "sh", "-c",
		"echo 1 >/proc/sys/net/ipv4/conf/"+outsidePeer+"/route_localnet")
}

// loopbackView is who reaches a container's port published on a loopback
// address, and, as the control that the path from the other host works,
// the same port published on every address.
type loopbackView struct {
	Host, OtherHost, OtherHostOnAllAddresses bool
}

// A port published on a loopback address (-p 127.0.0.2:PORT:80) answers
// the host and not another host that routes that address to this one;
// Docker's bridge drops such packets in raw PREROUTING (since Engine 28).
func TestParityLoopbackPublishedPortIsTheHostsAlone(t *testing.T) {
	drivers := modeDrivers(t)
	makeOutside(t)
	const loopback = "127.0.0.2"
	routeLoopbackHere(t, loopback)
	want := loopbackView{Host: true, OtherHostOnAllAddresses: true}
	got := map[string]loopbackView{}
	for i, drv := range drivers {
		n := fmt.Sprintf("%slo-%d", prefix, i)
		createNetwork(t, n, "-d", drv, "--subnet", fmt.Sprintf("10.238.%d.0/24", i))
		web := n + "-web"
		lo, all := 18400+2*i, 18401+2*i
		docker(t, "run", "-d", "--name", web, "--network", n,
			"-p", fmt.Sprintf("%s:%d:80", loopback, lo), "-p", fmt.Sprintf("%d:80", all),
			image, "httpd", "-f", "-p", "80", "-h", "/var/www")
		t.Cleanup(func() { _, _ = tryDocker("rm", "-f", web) })
		// The controls first, so that a miss below is the firewall's and
		// not a server still starting.
		var v loopbackView
		eventually(t, "the host reaches "+web+" on "+loopback, func() error {
			_, err := httpGetFrom("", fmt.Sprintf("%s:%d", loopback, lo))
			v.Host = err == nil
			return err
		})
		_, err := httpGetFrom(outsideNS, fmt.Sprintf("198.51.100.1:%d", all))
		v.OtherHostOnAllAddresses = err == nil
		_, err = httpGetFrom(outsideNS, fmt.Sprintf("%s:%d", loopback, lo))
		v.OtherHost = err == nil
		got[drv] = v
	}
	t.Logf("a port published on %s: %+v", loopback, got)
	if !agree(got, want) {
		t.Errorf("a port published on %s: %+v, documented: %+v", loopback, got, want)
	}
}
