package twohosts

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/poll"
	"github.com/mynet/mynet/test/testbin"
)

// syncState is what `mynet status --json` on a host says of a cluster
// network's sync.
func (h *host) syncState(clusterName string) (state, detail string, err error) {
	sock := filepath.Join(filepath.Dir(h.sock), "plugins", "mynet.sock")
	out, err := exec.Command(testbin.Mynet(h.c.t), "status", "--json", "--socket", sock).CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("mynet status: %v: %s", err, out)
	}
	var r struct {
		Cluster struct {
			DockerSync struct {
				On       bool   `json:"on"`
				Reason   string `json:"reason"`
				Networks []struct {
					Cluster, State, Detail string
				} `json:"networks"`
			} `json:"docker_sync"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return "", "", fmt.Errorf("mynet status --json: %v: %s", err, out)
	}
	if !r.Cluster.DockerSync.On {
		return "off", r.Cluster.DockerSync.Reason, nil
	}
	for _, n := range r.Cluster.DockerSync.Networks {
		if n.Cluster == clusterName {
			return n.State, n.Detail, nil
		}
	}
	return "", "", nil
}

func waitNetwork(t *testing.T, h *host, name string, present bool) {
	t.Helper()
	poll.Eventually(t, fmt.Sprintf("%s has %s: %v", h.id, name, present), 15*time.Second, func() error {
		if h.hasNetwork(name) != present {
			return fmt.Errorf("networks: %s", h.must("network", "ls", "--format", "{{.Name}}"))
		}
		return nil
	})
}

// TestSync is the sync's life on real engines: a network removed with and
// without containers on the other host, a dockerd restarting while a
// network is created, the same network created on two hosts at once, and a
// host that joins later.
func TestSync(t *testing.T) {
	c := newCluster(t, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	top := t // the networks outlive each step: the last one uses them all

	t.Run("removed where unused, kept where used", func(t *testing.T) {
		h1.must(c.net("sync_a")...)
		top.Cleanup(func() { removeEverywhere(c, "sync_a") })
		waitNetwork(t, h2, "sync_a", true)
		h2.run("sync_a_c", "--network", "sync_a")
		// rm (or prune) on host1 while host2's container uses it: as
		// Docker's overlay refused it, the network stays everywhere (host1
		// gets it back, saying why).
		h1.must("network", "rm", "sync_a")
		poll.Eventually(t, "host1 has sync_a again, naming host2's container", 15*time.Second, func() error {
			state, detail, err := h1.syncState("sync_a")
			if err != nil {
				return err
			}
			if state != "recreated" || !strings.Contains(detail, "host2 (1 container(s))") || !h1.hasNetwork("sync_a") {
				return fmt.Errorf("state %q %q", state, detail)
			}
			return nil
		})
		if !h2.hasNetwork("sync_a") {
			t.Fatal("host2 lost a network its container uses")
		}
		// A stopped container on host2 keeps it there through a removal
		// on host1, and starts again.
		h2.must("stop", "-t", "0", "sync_a_c")
		h1.must("network", "rm", "sync_a")
		poll.Eventually(t, "host2 says the removal waits for its stopped container", 15*time.Second, func() error {
			state, detail, err := h2.syncState("sync_a")
			if err != nil {
				return err
			}
			if state != "removal-pending" || !strings.Contains(detail, "1 container") {
				return fmt.Errorf("state %q %q", state, detail)
			}
			return nil
		})
		h2.must("start", "sync_a_c")
		h2.must("rm", "-f", "sync_a_c")
		waitNetwork(t, h2, "sync_a", false)
		// Gone from the cluster: host1 does not get it back.
		if h1.hasNetwork("sync_a") {
			t.Error("host1 has sync_a again")
		}

		h2.must(c.net("sync_b")...)
		top.Cleanup(func() { removeEverywhere(c, "sync_b") })
		waitNetwork(t, h1, "sync_b", true)
		h2.must("network", "rm", "sync_b")
		waitNetwork(t, h1, "sync_b", false)
	})

	t.Run("dockerd restarts while a network is created", func(t *testing.T) {
		restarted := make(chan error, 1)
		go func() {
			out, err := h2.engineSh("restart")
			if err != nil {
				err = fmt.Errorf("%v: %s", err, out)
			}
			restarted <- err
		}()
		time.Sleep(200 * time.Millisecond) // into host2's restart, not before it
		h1.must(c.net("sync_c")...)
		top.Cleanup(func() { removeEverywhere(c, "sync_c") })
		if err := <-restarted; err != nil {
			t.Fatalf("restart host2's dockerd: %v", err)
		}
		// Into the new dockerd's mount namespace (startMynet).
		h2.stopMynet()
		h2.startMynet()
		waitNetwork(t, h2, "sync_c", true)
		h1.run("sync_c1", "--network", "sync_c")
		h2.run("sync_c2", "--network", "sync_c")
		ip1 := h1.ip("sync_c1", "sync_c")
		h2.reaches(t, "sync_c2", ip1)
	})

	t.Run("created on both hosts at once", func(t *testing.T) {
		var wg sync.WaitGroup
		outs := make([]string, 2)
		errs := make([]error, 2)
		for i, h := range []*host{h1, h2} {
			wg.Go(func() { outs[i], errs[i] = h.docker(c.net("sync_d")...) })
		}
		wg.Wait()
		top.Cleanup(func() { removeEverywhere(c, "sync_d") })
		for i, err := range errs {
			// The host whose sync was first gets Docker's own answer.
			if err != nil && !strings.Contains(outs[i], "already exists") {
				t.Errorf("host%d: create sync_d: %v: %s", i+1, err, outs[i])
			}
		}
		waitNetwork(t, h1, "sync_d", true)
		waitNetwork(t, h2, "sync_d", true)
		subnet := "{{range .IPAM.Config}}{{.Subnet}}{{end}}"
		if s1, s2 := h1.must("network", "inspect", "-f", subnet, "sync_d"), h2.must("network", "inspect", "-f", subnet, "sync_d"); s1 != s2 {
			t.Fatalf("sync_d's subnet: host1 %s, host2 %s", s1, s2)
		}
		for _, h := range []*host{h1, h2} {
			poll.Eventually(t, h.id+" says sync_d is in step", 10*time.Second, func() error {
				state, detail, err := h.syncState("sync_d")
				if err != nil {
					return err
				}
				if state != "present" && state != "created" {
					return fmt.Errorf("state %q %q", state, detail)
				}
				return nil
			})
		}
		h1.run("sync_d1", "--network", "sync_d")
		h2.run("sync_d2", "--network", "sync_d")
		ip2 := h2.ip("sync_d2", "sync_d")
		h1.reaches(t, "sync_d1", ip2)
	})

	t.Run("a host that joins later", func(t *testing.T) {
		start := time.Now()
		h3 := c.addHost()
		for _, n := range []string{"sync_c", "sync_d"} {
			waitNetwork(t, h3, n, true)
		}
		t.Logf("host3 has every network %v after the test began to start it (its engine, image and mynet included)", time.Since(start).Round(time.Millisecond))
		if h3.hasNetwork("sync_a") || h3.hasNetwork("sync_b") {
			t.Error("host3 got a removed network")
		}
		h3.run("sync_c3", "--network", "sync_c")
		ip1 := h1.ip("sync_c1", "sync_c")
		h3.reaches(t, "sync_c3", ip1)
	})
}
