package twohosts

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/poll"
	"github.com/mynet/mynet/test/testbin"
)

// TestSwarmServices: a swarm of two Engine 29 hosts (a manager and a
// worker) with mynet as the managed plugin on both, as README's "Swarm
// services" has users type it: on every node a config-only network with
// mynet's IPAM and the cluster network's subnet, then once, on the
// manager, the swarm network from it and a service with replicas on both
// nodes. svc and tasks.svc resolve on every node to every task (svc by
// DNS round robin: swarm gives a plugin's network no virtual IP, so the
// default endpoint mode answers as --endpoint-mode dnsrr does), tasks reach each other across nodes, the service scales up
// and down and leaves a drained node, and when it is removed no address is
// left claimed in etcd.
func TestSwarmServices(t *testing.T) {
	c := newPluginCluster(t, 2)
	m, w := c.hosts[0], c.hosts[1]
	m.must("swarm", "init", "--advertise-addr", m.addr, "--listen-addr", m.addr+":2377")
	token := m.must("swarm", "join-token", "-q", "worker")
	w.must("swarm", "join", "--token", token, "--advertise-addr", w.addr, "--listen-addr", w.addr+":2377", m.addr+":2377")
	// Before the engines stop (cleanups run last first): the service, the
	// swarm network, then each node leaves.
	t.Cleanup(func() {
		_, _ = m.docker("service", "rm", "svc")
		_, _ = m.docker("network", "rm", "svcnet")
		for _, h := range []*host{w, m} {
			if out, err := h.docker("swarm", "leave", "--force"); err != nil {
				t.Logf("%s$ docker swarm leave --force: %v %s", h.id, err, out)
			}
		}
	})
	for _, h := range c.hosts {
		h.must("network", "create", "--config-only", "--ipam-driver", c.driver(), "--ipam-opt", "mynet.cluster=svcnet",
			"--subnet", "10.61.0.0/24", "svcnet-config")
	}
	m.must("network", "create", "-d", c.driver(), "--scope", "swarm", "--config-from", "svcnet-config", "--attachable", "svcnet")
	m.must("service", "create", "--detach", "--name", "svc", "--network", "svcnet", "--replicas", "4",
		"--no-resolve-image", image, "sleep", "600")
	tasks := waitTasks(t, c, 4, true)

	// Names and reach, from a task on each node.
	for _, h := range c.hosts {
		from := tasks[h][0]
		ips := allTaskIPs(tasks)
		for _, name := range []string{"tasks.svc", "svc"} {
			poll.Eventually(t, fmt.Sprintf("%s resolves on %s", name, h.id), 30*time.Second, func() error {
				return resolvesTo(h, from, name, ips)
			})
		}
		other := c.hosts[0]
		if h == other {
			other = c.hosts[1]
		}
		h.reaches(t, from, other.ip(tasks[other][0], "svcnet"))
	}

	// Scale up and down: every task has an address of its own, and the
	// names follow.
	m.must("service", "scale", "--detach", "svc=6")
	tasks = waitTasks(t, c, 6, true)
	if ips := allTaskIPs(tasks); len(slices.Compact(ips)) != 6 {
		t.Errorf("6 tasks, addresses %v: one given twice", ips)
	}
	poll.Eventually(t, "tasks.svc after scaling up", 30*time.Second, func() error {
		return resolvesTo(w, tasks[w][0], "tasks.svc", allTaskIPs(tasks))
	})
	m.must("service", "scale", "--detach", "svc=2")
	tasks = waitTasks(t, c, 2, false)
	poll.Eventually(t, "tasks.svc after scaling down", 30*time.Second, func() error {
		h := m
		if len(tasks[m]) == 0 {
			h = w
		}
		return resolvesTo(h, tasks[h][0], "tasks.svc", allTaskIPs(tasks))
	})

	// A drained worker: its tasks move to the manager.
	wid := w.must("info", "-f", "{{.Swarm.NodeID}}")
	m.must("node", "update", "--availability", "drain", wid)
	poll.Eventually(t, "the worker drained", 60*time.Second, func() error {
		if got := taskContainers(w); len(got) != 0 {
			return fmt.Errorf("%d tasks still on the worker", len(got))
		}
		if got := taskContainers(m); len(got) != 2 {
			return fmt.Errorf("%d tasks on the manager, want 2", len(got))
		}
		return nil
	})
	m.must("node", "update", "--availability", "active", wid)

	// The service goes: so does every address it had, on both nodes.
	m.must("service", "rm", "svc")
	poll.Eventually(t, "the tasks gone", 60*time.Second, func() error {
		for _, h := range c.hosts {
			if got := taskContainers(h); len(got) != 0 {
				return fmt.Errorf("%s still has %d tasks", h.id, len(got))
			}
		}
		return nil
	})
	poll.Eventually(t, "etcd holds no address of the service", 30*time.Second, func() error {
		out, err := exec.Command("ip", "netns", "exec", m.ns, testbin.Mynet(t), "cluster", "check", "--cluster-store", c.world.Store()).CombinedOutput()
		if err != nil {
			for _, h := range c.hosts {
				nets, _ := h.docker("network", "ls")
				ps, _ := h.docker("ps", "-a")
				insp, _ := h.docker("network", "inspect", "svcnet")
				out = fmt.Appendf(out, "%s's networks:\n%s\ncontainers:\n%s\nsvcnet:\n%s\n", h.id, nets, ps, insp)
			}
			return fmt.Errorf("mynet cluster check: %v\n%s", err, out)
		}
		return nil
	})
}

// waitTasks waits for n running tasks of svc, on both nodes when spread
// says so, and returns each node's task containers.
func waitTasks(t *testing.T, c *cluster, n int, spread bool) map[*host][]string {
	t.Helper()
	var got map[*host][]string
	poll.Eventually(t, fmt.Sprintf("%d tasks of svc running", n), 90*time.Second, func() error {
		got = map[*host][]string{}
		total := 0
		for _, h := range c.hosts {
			got[h] = taskContainers(h)
			total += len(got[h])
		}
		if total != n {
			return fmt.Errorf("%d tasks running, want %d", total, n)
		}
		for _, h := range c.hosts {
			if spread && len(got[h]) == 0 {
				return fmt.Errorf("no task on %s", h.id)
			}
		}
		return nil
	})
	return got
}

// taskContainers are the running task containers of svc on a node.
func taskContainers(h *host) []string {
	out, err := h.docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=svc", "--filter", "status=running")
	if err != nil || out == "" {
		return nil
	}
	return strings.Fields(out)
}

// allTaskIPs are the tasks' addresses on svcnet, sorted.
func allTaskIPs(tasks map[*host][]string) []string {
	var ips []string
	for h, ids := range tasks {
		for _, id := range ids {
			ips = append(ips, h.ip(id, "svcnet"))
		}
	}
	slices.Sort(ips)
	return ips
}

// resolvesTo checks that name resolves, in container, to exactly ips (in
// any order).
func resolvesTo(h *host, container, name string, ips []string) error {
	out, err := h.docker("exec", container, "timeout", "2", "nslookup", name)
	if err != nil {
		return fmt.Errorf("nslookup %s in %s on %s: %v %s", name, container, h.id, err, out)
	}
	var got []string
	answers := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Name:") {
			answers = true
		}
		if f := strings.Fields(l); answers && len(f) == 2 && f[0] == "Address:" {
			got = append(got, f[1])
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, ips) {
		return fmt.Errorf("%s on %s: %v, want %v\n%s", name, h.id, got, ips, out)
	}
	return nil
}
