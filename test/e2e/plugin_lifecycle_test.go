//go:build e2eplugin

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The managed plugin's own life: disable and enable, an upgrade, and its
// removal, with networks and containers around.
func TestPluginLifecycle(t *testing.T) {
	if !pluginMode {
		t.Fatal("built with -tags e2eplugin but MYNET_E2E_PLUGIN is not set: run make e2e-plugin")
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
		// What make plugin-upgrade does: the plugin replaced by the one
		// build-plugin.sh built (dist/plugin), on the same state directory.
		if err := p.kill9(); err != nil {
			t.Fatal(err)
		}
		docker(t, "plugin", "rm", "-f", p.name)
		docker(t, "plugin", "create", p.name, pluginDir())
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
	})

	// A fresh host: neither the state directory nor the iptables lock
	// exists, and `docker plugin install` enables at once, with no step
	// before it. (The state mount's source is the tests' own directory,
	// standing in for /var/lib; its mynet/ is what a fresh host lacks.)
	t.Run("enable on a fresh host", func(t *testing.T) {
		if err := os.RemoveAll(p.stateDir()); err != nil {
			t.Fatal(err)
		}
		if err := removeXtablesLock(); err != nil {
			t.Fatal(err)
		}
		docker(t, "plugin", "create", p.name, pluginDir())
		if err := p.configure(); err != nil {
			t.Fatal(err)
		}
		if err := p.start(); err != nil {
			t.Fatalf("enable on a fresh host: %v", err)
		}
		if _, err := os.Stat(filepath.Join(p.stateDir(), "mynet.db")); err != nil {
			t.Errorf("the plugin made no state file in the host's directory: %v", err)
		}
		fresh := prefix + "fresh"
		createNetwork(t, fresh, "-d", driverName, "--ipam-driver", driverName, "--subnet", "10.231.0.0/24")
		runContainer(t, prefix+"fresh1", fresh, "sleep", "600")
		if err := pingOK(prefix+"fresh1", outsideIP); err != nil {
			t.Errorf("a container on the fresh host's network: %v", err)
		}
	})
}

// pluginDir is where build-plugin.sh put the plugin (MYNET_PLUGIN_DIR,
// else dist/plugin).
func pluginDir() string {
	if d := os.Getenv("MYNET_PLUGIN_DIR"); d != "" {
		return d
	}
	return "../../dist/plugin"
}

// xtablesLock is the host's iptables lock, which the plugin shares.
const xtablesLock = "/run/xtables.lock"

// removeXtablesLock deletes the host's iptables lock file as a fresh host
// lacks it, but only while nobody holds it (iptables holds it for
// milliseconds; whoever runs it next makes it again).
func removeXtablesLock() error {
	f, err := os.OpenFile(xtablesLock, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	for range 100 {
		if err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return os.Remove(xtablesLock)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s stayed locked for 5 s: %w", xtablesLock, err)
}
