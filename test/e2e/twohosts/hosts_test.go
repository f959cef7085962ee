// Package twohosts is the multi-host walk-through on real engines: several
// Docker Engine 29 hosts on one machine, each a dockerd in a network and
// mount namespace of its own (test/engine/engine.sh with ENGINE_ID) with
// its own mynet, joined by an underlay to a real etcd (test/mhtest's
// World). Tests drive each host's dockerd through the docker CLI, as users
// type it. Everything is made under names of the test's own and removed at
// the end; nothing touches the machine's own dockerd or plugins.
package twohosts

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mynet/mynet/internal/poll"
	"github.com/mynet/mynet/test/mhtest"
	"github.com/mynet/mynet/test/testbin"
)

const image = "mynet-test/busybox:v2"

var engineScript = func() string {
	p, _ := filepath.Abs("../../engine/engine.sh")
	return p
}()

// cluster is one test's hosts, underlay and etcd.
type cluster struct {
	t     testing.TB
	world *mhtest.World
	hosts []*host
	// plugin is the managed plugin each host runs mynet as ("": a plain
	// daemon), built once from this tree into pluginDir.
	plugin    string
	pluginDir string
	// dockerd are the engines' extra flags (--firewall-backend=nftables).
	dockerd []string
	// debian are the hosts (by index) that run Debian's dockerd 20.10
	// instead of Engine 29 (engine.sh ENGINE_DEBIAN).
	debian map[int]bool
}

// e2ePlugin is the tests' name for the managed plugin, in the tests' own
// engines only.
const e2ePlugin = "mynet-e2e-plugin:latest"

// driver is mynet's name in each host's Docker, as users type it in -d
// and --ipam-driver: the socket's base name, or the plugin's reference.
func (c *cluster) driver() string {
	if c.plugin != "" {
		return c.plugin
	}
	return "mynet"
}

// net is how users create a cluster network (README, docs/multihost.md).
func (c *cluster) net(name string, extra ...string) []string {
	d := c.driver()
	return append(append([]string{"network", "create", "-d", d, "--ipam-driver", d, "--ipam-opt", "mynet.cluster=" + name}, extra...), name)
}

// host is one Docker host: its engine and its mynet.
type host struct {
	c  *cluster
	id string // host1, host2, ...: mynet's node name
	// engine is the engine's ENGINE_ID: the node name and this test
	// process's ID, so that two runs at once never share an engine.
	engine string
	kind   string // engine.sh's name for the engine: engine29, or engine20 (Debian's)
	ns     string
	addr   string // underlay address
	sock   string // dockerd's API socket
	state  string // mynet's state directory
	mynet  *exec.Cmd
	log    *testbin.Log
}

func newCluster(t testing.TB, n int) *cluster { return startCluster(t, n, &cluster{}) }

// newPluginCluster is newCluster with mynet as the managed plugin on every
// host, installed as users do: docker plugin create from the directory
// make plugin builds, cluster settings with docker plugin set.
func newPluginCluster(t testing.TB, n int) *cluster {
	return startCluster(t, n, &cluster{plugin: e2ePlugin})
}

// startCluster starts n hosts as c says (plugin, dockerd's flags).
func startCluster(t testing.TB, n int, c *cluster) *cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the two-host tests need root (they run dockerds in namespaces)")
	}
	c.t, c.world = t, mhtest.NewWorld(t, 0)
	for range n {
		c.addHost()
	}
	return c
}

// addHost starts another host: an engine in a namespace on the underlay,
// then its mynet.
func (c *cluster) addHost() *host {
	t := c.t
	t.Helper()
	i := len(c.hosts) + 1
	h := &host{c: c, id: fmt.Sprintf("host%d", i), addr: fmt.Sprintf("198.18.0.%d", 10+i), state: t.TempDir(), log: &testbin.Log{}}
	h.engine = fmt.Sprintf("%s-%d", h.id, os.Getpid()%100000)
	h.ns = c.world.Attach(fmt.Sprintf("e%d", i), h.addr)
	h.kind = "engine29"
	if c.debian[i-1] {
		h.kind = "engine20"
	}
	h.sock = fmt.Sprintf("/run/mynet-e2e-%s-%s/docker.sock", h.kind, h.engine)
	t.Cleanup(func() {
		t.Logf("stopping %s", h.id)
		if c.plugin == "" {
			h.stopMynet()
		} // a plugin goes with its engine's data root

		if out, err := h.engineSh("stop"); err != nil {
			t.Errorf("stop %s's engine: %v\n%s", h.id, err, out)
		}
		logPath := h.logPath()
		if t.Failed() {
			t.Logf("%s's mynet log (tail):\n%s", h.id, tail(h.log.String(), 6000))
			b, _ := os.ReadFile(logPath)
			t.Logf("%s's dockerd log (tail):\n%s", h.id, tail(string(b), 3000))
			// MYNET_E2E_KEEP_LOGS=DIR keeps both whole (a managed
			// plugin's log is in dockerd's).
			if dir := os.Getenv("MYNET_E2E_KEEP_LOGS"); dir != "" {
				_ = os.WriteFile(filepath.Join(dir, t.Name()+"-"+h.id+"-dockerd.log"), b, 0o644)
				_ = os.WriteFile(filepath.Join(dir, t.Name()+"-"+h.id+"-mynet.log"), []byte(h.log.String()), 0o644)
			}
		}
		_ = os.Remove(logPath)
	})
	if out, err := h.engineSh(append([]string{"start"}, c.dockerd...)...); err != nil {
		t.Fatalf("start %s's engine: %v\n%s", h.id, err, out)
	}
	if c.plugin != "" {
		h.installPlugin()
	}
	h.startMynet()
	c.hosts = append(c.hosts, h)
	return h
}

// engineSh runs engine.sh for this host's engine.
func (h *host) engineSh(args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{engineScript}, args...)...)
	cmd.Env = append(os.Environ(), h.engineEnv()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// engineEnv is what engine.sh needs to know this host's engine.
func (h *host) engineEnv() []string {
	env := []string{"ENGINE_ID=" + h.engine, "ENGINE_NS=" + h.ns}
	if h.kind == "engine20" {
		env = append(env, "ENGINE_DEBIAN=1")
	}
	return env
}

// startMynet runs this host's mynet in dockerd's namespaces (engine.sh
// join: where the containers' sandboxes are mounted, and the engine's
// plugin directory), synced with the engine. A restarted dockerd has a
// mount namespace of its own: restart mynet after it (on a real host both
// are in the host's).
func (h *host) startMynet() {
	t := h.c.t
	t.Helper()
	if h.c.plugin != "" {
		h.enablePlugin()
		return
	}
	cmd := exec.Command("bash", engineScript, "join", testbin.Mynet(t),
		"--socket", "/run/docker/plugins/mynet.sock", "--state-dir", h.state, "--log-level", "debug",
		"--cluster-store", h.c.world.Store(), "--cluster-advertise", h.addr, "--node-name", h.id, "--cluster-ttl", "3s",
		"--docker-host", "unix://"+h.sock)
	cmd.Env = append(os.Environ(), h.engineEnv()...)
	cmd.Stdout, cmd.Stderr = h.log, h.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.mynet = cmd
	ready := strings.Count(h.log.String(), "mynet ready")
	poll.Eventually(t, h.id+"'s mynet listens", 20*time.Second, func() error {
		if strings.Count(h.log.String(), "mynet ready") == ready {
			return fmt.Errorf("not ready yet")
		}
		return nil
	})
}

func (h *host) stopMynet() {
	if h.c.plugin != "" {
		if out, err := h.docker("plugin", "disable", "-f", h.c.plugin); err != nil {
			h.c.t.Errorf("%s$ docker plugin disable: %v %s", h.id, err, out)
		}
		return
	}
	if h.mynet == nil {
		return
	}
	_ = h.mynet.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = h.mynet.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = h.mynet.Process.Kill()
		<-done
	}
	h.mynet = nil
}

// docker runs the docker CLI against this host's engine (for at most two
// minutes: a hung call fails the test instead of hanging it).
func (h *host) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+h.sock)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// must is docker that fails the test on error.
func (h *host) must(args ...string) string {
	h.c.t.Helper()
	out, err := h.docker(args...)
	if err != nil {
		h.c.t.Fatalf("%s$ docker %s: %v\n%s", h.id, strings.Join(args, " "), err, out)
	}
	return out
}

// run starts a container the test removes at the end.
func (h *host) run(name string, args ...string) {
	h.c.t.Helper()
	h.must(append([]string{"run", "-d", "--name", name}, append(args, image, "sleep", "600")...)...)
	h.c.t.Cleanup(func() {
		if out, err := h.docker("rm", "-f", name); err != nil {
			h.c.t.Logf("%s$ docker rm -f %s: %v %s", h.id, name, err, out)
		}
	})
}

// ip is a container's address on a network.
func (h *host) ip(container, network string) string {
	h.c.t.Helper()
	return h.must("inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").IPAddress}}", container)
}

// reaches waits until container (on this host) gets a reply from addr.
func (h *host) reaches(t testing.TB, container, addr string) {
	t.Helper()
	poll.Eventually(t, container+" reaches "+addr, 10*time.Second, func() error {
		out, err := h.docker("exec", container, "ping", "-c", "1", "-W", "1", addr)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}

func (h *host) hasNetwork(name string) bool {
	out, err := h.docker("network", "ls", "--format", "{{.Name}}")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(out, "\n") {
		if l == name {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
