package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
)

// httpGet fetches / from addr with busybox nc, from the host or from inside
// a network namespace, and returns the body's last line.
func httpGetFrom(netns, addr string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"/bin/busybox", "sh", "-c", fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | /bin/busybox nc -w 3 %s %s`, host, port)}
	if netns != "" {
		args = append([]string{"ip", "netns", "exec", netns}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), err
	}
	if !strings.Contains(string(out), "hello from mynet") {
		return string(out), fmt.Errorf("no page from %s (netns %q): %q", addr, netns, out)
	}
	return string(out), nil
}

func httpGetInContainer(network, addr string) error {
	host, port, _ := net.SplitHostPort(addr)
	out, err := runOnce(network, "sh", "-c", fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 %s %s`, host, port))
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	if !strings.Contains(out, "hello from mynet") {
		return fmt.Errorf("no page from %s on %s: %q", addr, network, out)
	}
	return nil
}

// A published port is reachable from the host (127.0.0.1 and the bridge's
// address), from another host (the outside namespace), from a container on
// the same network (hairpin, also to itself) and from another mynet network
// through the host; -p CONTAINERPORT gets a port mynet picks and reports;
// a 127.0.0.1 binding is not reachable from outside; container removal
// removes every rule.
func TestPublishedPorts(t *testing.T) {
	makeOutside(t)
	pub := prefix + "pub"
	other := prefix + "pub-other"
	createNetwork(t, pub, "-d", driverName, "--subnet", "10.208.0.0/24")
	createNetwork(t, other, "-d", driverName, "--subnet", "10.209.0.0/24")
	web := prefix + "web"
	docker(t, "run", "-d", "--name", web, "--network", pub,
		"-p", "18080:80", "-p", "80", "-p", "127.0.0.1:18082:80", "-p", "18083-18084:80",
		image, "httpd", "-f", "-p", "80", "-h", "/var/www")
	t.Cleanup(func() { _, _ = tryDocker("rm", "-f", web) })

	ports := mynetPorts(t, web, pub)
	ephemeral := 0
	for _, p := range ports {
		if p.ContainerPort == 80 && p.HostPort != 18080 && p.HostPort != 18082 && p.HostPort != 18083 {
			ephemeral = p.HostPort
		}
	}
	if len(ports) != 4 || ephemeral == 0 {
		t.Fatalf("mynet status ports = %+v, want 4 with one ephemeral", ports)
	}

	for _, c := range []struct{ what, netns, addr string }{
		{"host 127.0.0.1", "", "127.0.0.1:18080"},
		{"host bridge address", "", "10.208.0.1:18080"},
		{"ephemeral port", "", fmt.Sprintf("127.0.0.1:%d", ephemeral)},
		{"127.0.0.1-only binding from the host", "", "127.0.0.1:18082"},
		{"first port of a range", "", "127.0.0.1:18083"},
		{"another host", outsideNS, "198.51.100.1:18080"},
	} {
		eventually(t, c.what, func() error { _, err := httpGetFrom(c.netns, c.addr); return err })
	}
	if out, err := httpGetFrom(outsideNS, "198.51.100.1:18082"); err == nil {
		t.Errorf("127.0.0.1-only binding reached from another host: %s", out)
	}
	eventually(t, "hairpin from the same network", func() error { return httpGetInContainer(pub, "10.208.0.1:18080") })
	eventually(t, "from another mynet network through the host", func() error { return httpGetInContainer(other, "10.209.0.1:18080") })
	eventually(t, "the container to its own published port", func() error {
		out, err := tryDocker("exec", web, "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 10.208.0.1 18080`)
		if err != nil || !strings.Contains(out, "hello from mynet") {
			return fmt.Errorf("%v: %q", err, out)
		}
		return nil
	})

	docker(t, "rm", "-f", web)
	for _, port := range []int{18080, 18082, 18083, ephemeral} {
		if n := dnatRules(t, port); n != 0 {
			t.Errorf("%d DNAT rules for port %d left after the container was removed", n, port)
		}
	}
	// The host port is free again.
	l, err := net.Listen("tcp4", "127.0.0.1:18080")
	if err != nil {
		t.Errorf("host port 18080 still held: %v", err)
	} else {
		l.Close()
	}
}

func TestPublishedUDPAndPublishAll(t *testing.T) {
	net1 := prefix + "udp"
	createNetwork(t, net1, "-d", driverName, "--subnet", "10.211.0.0/24")
	srv := prefix + "udpsrv"
	docker(t, "run", "-d", "--name", srv, "--network", net1, "-p", "18090:90/udp", "--expose", "7000", "-P",
		image, "udpecho", "90")
	t.Cleanup(func() { _, _ = tryDocker("rm", "-f", srv) })
	eventually(t, "UDP datagram through the published port", func() error {
		// bash's /dev/udp sends one datagram from the host.
		if out, err := exec.Command("bash", "-c", "echo mynet-udp > /dev/udp/127.0.0.1/18090").CombinedOutput(); err != nil {
			return fmt.Errorf("send: %v %s", err, out)
		}
		out, err := tryDocker("logs", srv)
		if err != nil || !strings.Contains(out, "mynet-udp") {
			return fmt.Errorf("server got %q (%v)", out, err)
		}
		return nil
	})
	var exposed bool
	for _, p := range mynetPorts(t, srv, net1) {
		if p.ContainerPort == 7000 && p.Proto == "tcp" && p.HostPort != 0 {
			exposed = true
		}
	}
	if !exposed {
		t.Errorf("-P did not publish the exposed port 7000: %+v", mynetPorts(t, srv, net1))
	}
}

// A host port that a process holds is a clear error, and the failed run
// leaves no rule, veth or reservation behind.
func TestPortConflictIsClearAndClean(t *testing.T) {
	net1 := prefix + "conflict"
	createNetwork(t, net1, "-d", driverName, "--subnet", "10.212.0.0/24")
	l, err := net.Listen("tcp4", "0.0.0.0:18099")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before := vethCount(t)
	_, err = tryDocker("run", "--rm", "--name", prefix+"conflict-c", "--network", net1, "-p", "18099:80", "-p", "18098:81", image, "true")
	if err == nil {
		t.Fatal("publishing a taken port succeeded")
	}
	if !strings.Contains(err.Error(), "18099") || !strings.Contains(err.Error(), "in use") {
		t.Errorf("error does not say which port is in use: %v", err)
	}
	if n := dnatRules(t, 18098) + dnatRules(t, 18099); n != 0 {
		t.Errorf("%d DNAT rules left", n)
	}
	if !vethCountSettles(t, before) {
		t.Errorf("veths: %d before, %d after", before, vethCount(t))
	}
	l2, err := net.Listen("tcp4", "0.0.0.0:18098")
	if err != nil {
		t.Errorf("port 18098 still reserved after the failed run: %v", err)
	} else {
		l2.Close()
	}
}
