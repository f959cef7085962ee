package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func pingOK(from, to string) error {
	out, err := tryDocker("exec", from, "ping", "-c", "1", "-W", "1", to)
	if err != nil {
		return fmt.Errorf("%s -> %s: %v %s", from, to, err, out)
	}
	return nil
}

// A reboot, simulated: mynet dies, the bridge and every mynet chain are
// gone. Containers whose veth survived talk again as soon as mynet is back;
// a container whose veth is gone too gets it back when Docker restarts it.
func TestRebootSimulation(t *testing.T) {
	makeOutside(t)
	n := prefix + "reboot"
	id := createNetwork(t, n, "-d", driverName, "--subnet", "10.225.0.0/24")
	runContainer(t, prefix+"rb1", n, "sleep", "600")
	runContainer(t, prefix+"rb2", n, "sleep", "600")
	runContainer(t, prefix+"rb3", n, "sleep", "600")
	ip2 := containerIP(t, prefix+"rb2", n)
	veth3 := "mnh" + docker(t, "inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).EndpointID}}", n), prefix+"rb3")[:12]

	if err := daemon.kill9(); err != nil {
		t.Fatal(err)
	}
	ip(t, "link", "del", "mn-"+id[:12])
	ip(t, "link", "del", veth3) // rb3 loses its interface altogether
	for _, c := range []string{"MYNET-BRIDGES", "MYNET-INGRESS", "MYNET-EGRESS", "MYNET-ISOLATION", "MYNET-FORWARD"} {
		_ = exec.Command("iptables", "-F", c).Run()
	}
	_ = exec.Command("iptables", "-D", "FORWARD", "-j", "MYNET-FORWARD").Run()
	_ = exec.Command("iptables", "-t", "nat", "-F", "MYNET-POSTROUTING").Run()
	if err := pingOK(prefix+"rb1", ip2); err == nil {
		t.Fatal("the simulated reboot did not cut the network")
	}

	if err := daemon.start(); err != nil {
		t.Fatal(err)
	}
	if err := pingOK(prefix+"rb1", ip2); err != nil {
		t.Errorf("surviving veths not reattached: %v", err)
	}
	if err := pingOK(prefix+"rb1", outsideIP); err != nil {
		t.Errorf("no way out after the restore: %v", err)
	}
	docker(t, "restart", "-t", "0", prefix+"rb3")
	eventually(t, "restarted container talks again", func() error { return pingOK(prefix+"rb1", containerIP(t, prefix+"rb3", n)) })
}

// iptables damage while mynet runs is repaired by the periodic reconcile,
// and at once on SIGHUP.
func TestRulesRepairedWhileRunning(t *testing.T) {
	makeOutside(t)
	n := prefix + "repair"
	createNetwork(t, n, "-d", driverName, "--subnet", "10.226.0.0/24")
	runContainer(t, prefix+"rp1", n, "sleep", "600")
	for round, repair := range []func() error{
		func() error { return nil }, // wait for the periodic reconcile
		daemon.hup,                  // or ask for one

	} {
		for _, c := range []string{"MYNET-BRIDGES", "MYNET-INGRESS"} {
			if out, err := exec.Command("iptables", "-F", c).CombinedOutput(); err != nil {
				t.Fatalf("iptables -F %s: %v %s", c, err, out)
			}
		}
		_ = exec.Command("iptables", "-t", "nat", "-F", "MYNET-POSTROUTING").Run()
		_ = exec.Command("iptables", "-D", "DOCKER-USER", "-j", "MYNET-ISOLATION").Run()
		if err := repair(); err != nil {
			t.Fatal(err)
		}
		// Both must come back. (A reconcile that read the rules between
		// the flushes and the deletion above repairs the chains at once
		// and the guard only at the next one.)
		start := time.Now()
		eventually(t, fmt.Sprintf("round %d: outside reachable again, the guard back in DOCKER-USER", round), func() error {
			if err := pingOK(prefix+"rp1", outsideIP); err != nil {
				return err
			}
			out, _ := exec.Command("iptables", "-S", "DOCKER-USER").Output()
			if !strings.Contains(string(out), "-A DOCKER-USER -j MYNET-ISOLATION") {
				return fmt.Errorf("guard not back in DOCKER-USER:\n%s", out)
			}
			return nil
		})
		if round == 0 && time.Since(start) > 2*reconcileInterval+5*time.Second {
			t.Errorf("periodic repair took %v", time.Since(start))
		}
	}
}

// 50 containers started at once on one network all get distinct addresses
// and talk to each other.
func TestFiftyParallelContainers(t *testing.T) {
	n := prefix + "fifty"
	createNetwork(t, n, "-d", driverName, "--ipam-driver", driverName, "--subnet", "10.227.0.0/24")
	const count = 50
	var wg sync.WaitGroup
	errs := make(chan error, count)
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%sp%02d", prefix, i)
			if out, err := tryDocker("run", "-d", "--name", name, "--network", n, image, "sleep", "600"); err != nil {
				errs <- fmt.Errorf("%s: %v %s", name, err, out)
			}
		}()
	}
	t.Cleanup(func() {
		for i := range count {
			_, _ = tryDocker("rm", "-f", fmt.Sprintf("%sp%02d", prefix, i))
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]string{}
	for i := range count {
		name := fmt.Sprintf("%sp%02d", prefix, i)
		addr := containerIP(t, name, n)
		if other, dup := seen[addr]; dup {
			t.Errorf("%s and %s both have %s", name, other, addr)
		}
		seen[addr] = name
	}
	// Each container reaches the first, in parallel.
	first := containerIP(t, prefix+"p00", n)
	var pw sync.WaitGroup
	perr := make(chan error, count)
	for i := 1; i < count; i++ {
		pw.Add(1)
		go func() {
			defer pw.Done()
			if err := pingOK(fmt.Sprintf("%sp%02d", prefix, i), first); err != nil {
				perr <- err
			}
		}()
	}
	pw.Wait()
	close(perr)
	for err := range perr {
		t.Error(err)
	}
}

// Networks created and removed in parallel leave nothing behind.
func TestParallelNetworkCreateRemove(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%spar%d", prefix, i)
			for round := range 3 {
				id, err := tryDocker("network", "create", "-d", driverName, "--subnet", fmt.Sprintf("10.228.%d.0/24", i*10+round), name)
				if err != nil {
					errs <- err
					return
				}
				if _, err := tryDocker("network", "rm", name); err != nil {
					errs <- err
					return
				}
				if left := kernelLeftovers(t, id); len(left) > 0 {
					errs <- fmt.Errorf("%s left %v", name, left)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// dockerd restarts; a --restart always container on a mynet network comes
// back with its network working, and mynet's guard stays first in
// DOCKER-USER.
func TestDockerdRestartKeepsRestartAlwaysContainer(t *testing.T) {
	makeOutside(t)
	n := prefix + "dockerd"
	createNetwork(t, n, "-d", driverName, "--subnet", "10.229.0.0/24")
	name := prefix + "always"
	docker(t, "run", "-d", "--name", name, "--restart", "always", "--network", n, image, "sleep", "600")
	t.Cleanup(func() { _, _ = tryDocker("rm", "-f", name) })
	if err := pingOK(name, outsideIP); err != nil {
		t.Fatal(err)
	}
	restartDockerd(t)
	eventually(t, "the container runs again", func() error {
		out, err := tryDocker("inspect", "-f", "{{.State.Running}}", name)
		if err != nil || out != "true" {
			return fmt.Errorf("running=%q %v", out, err)
		}
		return nil
	})
	eventually(t, "its network works again", func() error { return pingOK(name, outsideIP) })
	if err := pingOK(name, "10.229.0.1"); err != nil {
		t.Error(err)
	}
	out, _ := exec.Command("iptables", "-S", "DOCKER-USER").Output()
	if !strings.HasPrefix(strings.SplitN(string(out), "\n", 3)[1], "-A DOCKER-USER -j MYNET-ISOLATION") {
		t.Errorf("guard not first in DOCKER-USER after the dockerd restart:\n%s", out)
	}
}
