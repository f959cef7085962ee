//go:build !e2eplugin

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/poll"
	"github.com/mynet/mynet/plugin"
	"github.com/mynet/mynet/test/mhtest"
)

// The machine's own dockerd is one host of a cluster, a namespace with its
// own mynet the other: a real container on a cluster network and the other
// host's container reach each other over VXLAN. One mynet runs per network
// namespace (each cleans up links named like its own that it has no record
// of), so the suite's daemon steps aside meanwhile. (Built into the plain
// pass only.)
func TestDockerdIsOneOfTheHosts(t *testing.T) {
	if err := daemon.stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := daemon.start(); err != nil {
			t.Errorf("restart the suite's mynet: %v", err)
		}
	})
	// Under make test this runs beside other suites on a loaded machine:
	// the waits across hosts are given room, and a failure says which step
	// it came from after the logs it prints (the last lines are what a CI
	// summary shows).
	start, step := time.Now(), "the world"
	at := func(s string) {
		step = s
		t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), s)
	}
	across := func(what string, fn func() error) {
		t.Helper()
		poll.Eventually(t, what, 30*time.Second, fn)
	}
	w := mhtest.NewWorld(t, 1)
	const rootAddr = "198.18.0.100"
	w.AttachHost(rootAddr)
	sock := "/run/docker/plugins/mynet-e2e-mh.sock"
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mynet.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(mynetBin, "--socket", sock, "--state-dir", filepath.Join(dir, "state"), "--log-level", "debug",
		"--cluster-store", "etcd://198.18.0.1:2379", "--cluster-advertise", rootAddr, "--node-name", "e2e-dockerd", "--cluster-ttl", "3s",
		"--docker-host", dockerHost())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = os.Remove(sock)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("mynet (cluster) log:\n%s", tail(b, 4000))
			t.Logf("failed at step %q, %v into the test", step, time.Since(start).Round(time.Millisecond))
		}
	})
	at("the cluster daemon starts")
	eventually(t, "the cluster daemon listens", func() error {
		_, err := os.Stat(sock)
		return err
	})
	n := prefix + "mh"
	drv := "mynet-e2e-mh"
	at("the docker network and container")
	createNetwork(t, n, "-d", drv, "--ipam-driver", drv, "--ipam-opt", "mynet.cluster=e2e", "--subnet", "10.46.0.0/16")
	runContainer(t, prefix+"mh1", n, "sleep", "600")
	dockerIP := containerIP(t, prefix+"mh1", n)

	at("the other host's network and container")
	other := w.Hosts[0].CreateNetwork("e2e", "")
	c := other.Run("")
	// Before the network's removal (cleanups run last first): the other
	// host's container goes, and this host's mynet sees it go. Else the
	// Docker sync rightly undoes the removal of a network another host
	// uses, and the network outlives the test.
	t.Cleanup(func() {
		at("the other host's container removed")
		c.Remove()
		across("the other host's container gone from this host's mynet", func() error {
			var st struct {
				Cluster *struct {
					Peers map[string][]json.RawMessage `json:"remote_endpoints"`
				} `json:"cluster"`
			}
			if err := plugin.NewClient(sock, 5*time.Second).Call("/mynet.Status", struct{}{}, &st); err != nil {
				return err
			}
			if st.Cluster != nil {
				for id, peers := range st.Cluster.Peers {
					if len(peers) > 0 {
						return fmt.Errorf("network %s still has %d peers", id, len(peers))
					}
				}
			}
			return nil
		})
	})
	at("ping across")
	across("the docker container reaches the other host's", func() error {
		out, err := tryDocker("exec", prefix+"mh1", "ping", "-c", "1", "-W", "2", c.IP.Addr().String())
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if err := c.Ping(mustAddr(t, dockerIP), 0); err != nil {
		t.Errorf("the other host's container does not reach the docker container: %v", err)
	}
	at("MTU")
	if mtu := docker(t, "exec", prefix+"mh1", "cat", "/sys/class/net/eth0/mtu"); strings.TrimSpace(mtu) != "1450" {
		t.Errorf("MTU in the docker container %s, want 1450 (the underlay's 1500 minus VXLAN's 50)", mtu)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("container address %q: %v", s, err)
	}
	return a
}

// dockerHost is the Docker the suite drives, as mynet's --docker-host.
func dockerHost() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return "unix:///run/docker.sock"
}
