package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pluginDaemon is mynet as the managed plugin name.
type pluginDaemon struct {
	name  string
	state string // host directory of the plugin's state mount
}

func (p *pluginDaemon) stateDir() string { return p.state }

// configure points the (disabled) plugin at a fresh state directory and
// sets the tests' settings.
func (p *pluginDaemon) configure() error {
	if out, err := tryDocker("plugin", "inspect", "-f", "{{.Enabled}}", p.name); err != nil {
		return fmt.Errorf("plugin %s is not installed (make plugin): %v", p.name, err)
	} else if out == "true" {
		if _, err := tryDocker("plugin", "disable", "-f", p.name); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(p.state, 0o700); err != nil {
		return err
	}
	if f, err := os.OpenFile("/run/xtables.lock", os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	_, err := tryDocker("plugin", "set", p.name, "state.source="+p.state, "LOG_LEVEL=debug",
		"MYNET_RECONCILE_INTERVAL="+reconcileInterval.String())
	return err
}

func (p *pluginDaemon) start() error {
	if _, err := tryDocker("plugin", "enable", p.name); err != nil {
		return err
	}
	id, err := tryDocker("plugin", "inspect", "-f", "{{.Id}}", p.name)
	if err != nil {
		return err
	}
	socketPath = filepath.Join("/run/docker/plugins", id, "mynet.sock")
	return waitForSocket()
}

func (p *pluginDaemon) kill9() error {
	_, err := tryDocker("plugin", "disable", "-f", p.name)
	return err
}

func (p *pluginDaemon) stop() error { return p.kill9() }

// hup asks the plugin to reconcile now, on its socket.
func (p *pluginDaemon) hup() error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socketPath)
		}}}
	res, err := client.Post("http://mynet/mynet.Reconcile", "application/json", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("reconcile: %s", res.Status)
	}
	return nil
}

// logs are in dockerd's log, one line per plugin line.
func (p *pluginDaemon) logs() []byte {
	b, _ := os.ReadFile("/var/log/mynet-test-dockerd.log")
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "plugin=") {
			keep = append(keep, l)
		}
	}
	return []byte(strings.Join(keep, "\n"))
}

// The managed plugin's own life: disable and enable, an upgrade, and its
// removal, with networks and containers around.
func TestPluginLifecycle(t *testing.T) {
	if !pluginMode {
		t.Skip("runs in the managed-plugin pass (make e2e-plugin), which make test runs after this one")
	}
	p := daemon.(*pluginDaemon)
	makeOutside(t)
	n := prefix + "plug"
	createNetwork(t, n, "-d", driverName, "--ipam-driver", driverName, "--subnet", "10.230.0.0/24")
	runContainer(t, prefix+"plug1", n, "sleep", "600")
	ip1 := containerIP(t, prefix+"plug1", n)

	t.Run("disable and enable", func(t *testing.T) {
		if err := p.kill9(); err != nil {
			t.Fatal(err)
		}
		// The data plane is the kernel's: the container keeps its network.
		if err := pingOK(prefix+"plug1", outsideIP); err != nil {
			t.Errorf("while the plugin is disabled: %v", err)
		}
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		runContainer(t, prefix+"plug2", n, "sleep", "600")
		if ip2 := containerIP(t, prefix+"plug2", n); ip2 == ip1 {
			t.Errorf("address %s handed out twice across disable/enable", ip2)
		}
		if err := pingOK(prefix+"plug2", ip1); err != nil {
			t.Error(err)
		}
	})

	t.Run("upgrade", func(t *testing.T) {
		// What make plugin-upgrade does: the plugin replaced by the one make
		// plugin built (dist/plugin), on the same state directory.
		if err := p.kill9(); err != nil {
			t.Fatal(err)
		}
		docker(t, "plugin", "rm", "-f", p.name)
		docker(t, "plugin", "create", p.name, "../../dist/plugin")
		if err := p.configure(); err != nil {
			t.Fatal(err)
		}
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		runContainer(t, prefix+"plug3", n, "sleep", "600")
		if err := pingOK(prefix+"plug3", ip1); err != nil {
			t.Errorf("after the upgrade: %v", err)
		}
		if err := pingOK(prefix+"plug1", outsideIP); err != nil {
			t.Errorf("after the upgrade: %v", err)
		}
	})

	t.Run("remove leaves nothing", func(t *testing.T) {
		for _, c := range []string{"plug1", "plug2", "plug3"} {
			docker(t, "rm", "-f", prefix+c)
		}
		docker(t, "network", "rm", n)
		docker(t, "plugin", "disable", p.name) // mynet waits for its background deletions when it stops
		docker(t, "plugin", "rm", p.name)
		links, _ := exec.Command("ip", "-o", "link", "show").Output()
		for _, l := range strings.Split(string(links), "\n") {
			if f := strings.Fields(l); len(f) > 1 && (strings.HasPrefix(f[1], "mn-") || strings.HasPrefix(f[1], "mnh") || strings.HasPrefix(f[1], "mnc")) {
				t.Errorf("link left: %s", l)
			}
		}
		for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
			out, _ := exec.Command(cmd).Output()
			if strings.Contains(string(out), "MYNET") || strings.Contains(string(out), "mynet:") {
				t.Errorf("%s still has mynet's rules:\n%s", cmd, out)
			}
		}
		// Put the plugin back for whatever runs next.
		docker(t, "plugin", "create", p.name, "../../dist/plugin")
		if err := p.configure(); err != nil {
			t.Fatal(err)
		}
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
	})
}
