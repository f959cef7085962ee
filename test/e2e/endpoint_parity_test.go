package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// containerIfaces lists the interfaces in a container, sorted.
func containerIfaces(t *testing.T, ctr string) string {
	t.Helper()
	names := strings.Fields(docker(t, "exec", ctr, "ls", "/sys/class/net"))
	sort.Strings(names)
	return strings.Join(names, " ")
}

// ifnameView is what `docker network connect` with the endpoint.ifname
// option gives a container.
type ifnameView struct {
	Ifaces     string // the container's interfaces after the connect
	BadRefused bool   // a name the kernel cannot take is refused
}

// com.docker.network.endpoint.ifname names the container's interface
// exactly on Engine 28 and later (20.10 names it from the prefix); a bad
// name is refused, and on mynet it leaves the container as it was (Engine
// 29's bridge leaves its veth inside: seen, not required).
func TestParityEndpointIfname(t *testing.T) {
	drivers := modeDrivers(t)
	want := ifnameView{Ifaces: "eth0 eth2 lo", BadRefused: true}
	if engineMajor(t) < 28 {
		want.Ifaces = "eth0 eth1 lo"
	}
	got := map[string]ifnameView{}
	for i, drv := range drivers {
		first := fmt.Sprintf("%sifn-%d-a", prefix, i)
		second := fmt.Sprintf("%sifn-%d-b", prefix, i)
		third := fmt.Sprintf("%sifn-%d-c", prefix, i)
		createNetwork(t, first, "-d", drv, "--subnet", fmt.Sprintf("10.239.%d.0/24", 3*i))
		createNetwork(t, second, "-d", drv, "--subnet", fmt.Sprintf("10.239.%d.0/24", 3*i+1))
		createNetwork(t, third, "-d", drv, "--subnet", fmt.Sprintf("10.239.%d.0/24", 3*i+2))
		ctr := fmt.Sprintf("%sifn-%d", prefix, i)
		runContainer(t, ctr, first, "sleep", "600")
		docker(t, "network", "connect", "--driver-opt", "com.docker.network.endpoint.ifname=eth2", second, ctr)
		var v ifnameView
		v.Ifaces = containerIfaces(t, ctr)
		_, err := tryDocker("network", "connect", "--driver-opt", "com.docker.network.endpoint.ifname=bad/name", third, ctr)
		v.BadRefused = err != nil
		got[drv] = v
		if err != nil {
			t.Logf("%s refused the bad name: %v", drv, err)
		}
		if left := containerIfaces(t, ctr); drv == driverName && left != v.Ifaces {
			t.Errorf("mynet's refused connect changed the container's interfaces: %q, was %q", left, v.Ifaces)
		} else if left != v.Ifaces {
			t.Logf("%s's refused connect left the container with %q", drv, left)
		}
	}
	t.Logf("endpoint.ifname: %+v", got)
	if !agree(got, want) {
		t.Errorf("endpoint.ifname: %+v, documented: %+v", got, want)
	}
}

// macView is what a container gets for its MAC when it is run twice on the
// same address, and once with a MAC of the user's.
type macView struct {
	NewMACOnRestart bool // the second run has another MAC than the first
	UsersMACKept    bool // --mac-address is what the container has
}

// A container run again on the same address gets a new random MAC on
// Engine 28 and later (its peers learn it from the engine's
// advertisements), the same address-derived one on 20.10; a MAC the user
// gives is kept.
func TestParityMACOfARestartedContainer(t *testing.T) {
	drivers := modeDrivers(t)
	want := macView{NewMACOnRestart: engineMajor(t) >= 28, UsersMACKept: true}
	got := map[string]macView{}
	for i, drv := range drivers {
		n := fmt.Sprintf("%smac-%d", prefix, i)
		createNetwork(t, n, "-d", drv, "--subnet", fmt.Sprintf("10.240.%d.0/24", i))
		addr := fmt.Sprintf("10.240.%d.10", i)
		ctr := n + "-c"
		mac := func(extra ...string) string {
			args := append([]string{"run", "-d", "--name", ctr, "--network", n, "--ip", addr}, extra...)
			docker(t, append(args, image, "sleep", "600")...)
			defer func() { _, _ = tryDocker("rm", "-f", ctr) }()
			return docker(t, "exec", ctr, "cat", "/sys/class/net/eth0/address")
		}
		first, second := mac(), mac()
		users := fmt.Sprintf("02:00:00:f0:%02x:01", i)
		got[drv] = macView{NewMACOnRestart: first != second, UsersMACKept: mac("--mac-address", users) == users}
		t.Logf("%s: MACs %s, then %s", drv, first, second)
	}
	t.Logf("MACs: %+v", got)
	if !agree(got, want) {
		t.Errorf("MACs: %+v, documented for %s: %+v", got, engine.name, want)
	}
}
