package twohosts

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mynet/mynet/internal/poll"
	"github.com/mynet/mynet/internal/status"
	"github.com/mynet/mynet/plugin"
)

var buildPluginScript = func() string {
	p, _ := filepath.Abs("../../../packaging/build-plugin.sh")
	return p
}()

// installPlugin puts the managed plugin on this host's engine, as users
// do: docker plugin create from the directory make plugin builds (make
// test's e2e-plugin step has built it from this tree: MYNET_E2E_PLUGIN_DIR;
// else the first host builds it, into a directory of the test's own);
// then docker plugin set gives it its cluster settings. The sandboxes
// mount's source is this engine's exec root (a host's is /run/docker, the
// default).
func (h *host) installPlugin() {
	c, t := h.c, h.c.t
	t.Helper()
	if c.pluginDir == "" {
		if dir := os.Getenv("MYNET_E2E_PLUGIN_DIR"); dir != "" {
			if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
				t.Fatalf("MYNET_E2E_PLUGIN_DIR=%s holds no plugin (make plugin builds one): %v", dir, err)
			}
			c.pluginDir = dir
		}
	}
	if c.pluginDir == "" {
		c.pluginDir = filepath.Join(t.TempDir(), "plugin")
		cmd := exec.Command("bash", buildPluginScript, c.plugin, "e2e")
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+h.sock, "MYNET_PLUGIN_DIR="+c.pluginDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: build the plugin: %v\n%s", h.id, err, out)
		}
	} else {
		h.must("plugin", "create", c.plugin, c.pluginDir)
	}
	run := filepath.Dir(h.sock)
	h.must("plugin", "set", c.plugin,
		"state.source="+h.state, "sandboxes.source="+run+"/exec", "LOG_LEVEL=debug",
		"MYNET_CLUSTER_STORE="+c.world.Store(), "MYNET_CLUSTER_ADVERTISE="+h.addr, "MYNET_NODE_NAME="+h.id,
		"MYNET_CLUSTER_TTL=3s", "MYNET_DOCKER_HOST=unix:///host"+h.sock)
}

// enablePlugin starts the plugin and waits for it to be ready: its log
// (in dockerd's) says so once more.
func (h *host) enablePlugin() {
	t := h.c.t
	t.Helper()
	ready := strings.Count(h.dockerdLog(), "mynet ready")
	h.must("plugin", "enable", h.c.plugin)
	poll.Eventually(t, h.id+"'s plugin is ready", 30*time.Second, func() error {
		if strings.Count(h.dockerdLog(), "mynet ready") == ready {
			return fmt.Errorf("not ready yet")
		}
		return nil
	})
}

// dockerdLog is this host's dockerd log, where a plugin's output goes.
func (h *host) dockerdLog() string {
	b, _ := os.ReadFile(h.logPath())
	return string(b)
}

func (h *host) logPath() string {
	return fmt.Sprintf("/var/log/mynet-e2e-%s-%s.log", h.kind, h.engine)
}

// health is what the host's mynet answers on /mynet.Health, through its
// socket as the host sees it (the engine's plugin directory is
// $RUN/plugins; a managed plugin's socket is in <its ID>/ there).
func (h *host) health() status.Health {
	dir := filepath.Join(filepath.Dir(h.sock), "plugins")
	if h.c.plugin != "" {
		dir = filepath.Join(dir, h.must("plugin", "inspect", "-f", "{{.Id}}", h.c.plugin))
	}
	// A plugin's socket path is longer than a socket address holds: dial
	// it through a short link to its directory.
	link := filepath.Join(h.c.t.TempDir(), "s")
	if err := os.Symlink(dir, link); err != nil {
		h.c.t.Fatal(err)
	}
	code, out, err := plugin.NewClient(filepath.Join(link, "mynet.sock"), 10*time.Second).Post("/mynet.Health", struct{}{})
	var hl status.Health
	if err == nil {
		err = json.Unmarshal(out, &hl)
	}
	if err != nil {
		h.c.t.Fatalf("%s: /mynet.Health (%d): %v %s", h.id, code, err, out)
	}
	return hl
}
