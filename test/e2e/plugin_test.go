package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mynet/mynet/plugin"
)

// pluginDaemon is mynet as the managed plugin name, which the suite builds
// and removes itself.
type pluginDaemon struct {
	name string
	// stateSource is the host directory given as the plugin's state mount
	// (state.source); the plugin keeps its state in mynet/ inside it.
	stateSource string
}

func (p *pluginDaemon) stateDir() string { return filepath.Join(p.stateSource, "mynet") }

// install builds the plugin from this tree under the tests' own name,
// replacing a leftover of an earlier, interrupted run of the suite.
func (p *pluginDaemon) install() error {
	_ = p.remove()
	cmd := exec.Command("bash", "../../packaging/build-plugin.sh", p.name, "e2e")
	cmd.Dir = "."
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build the plugin %s: %w", p.name, err)
	}
	return p.configure()
}

// configure points the (disabled) plugin at the tests' state directory and
// sets the tests' settings. It makes no directory or file on the host: the
// plugin must enable on a host where its state and the iptables lock do
// not exist yet.
func (p *pluginDaemon) configure() error {
	if out, err := tryDocker("plugin", "inspect", "-f", "{{.Enabled}}", p.name); err != nil {
		return fmt.Errorf("plugin %s is not installed: %v", p.name, err)
	} else if out == "true" {
		if _, err := tryDocker("plugin", "disable", "-f", p.name); err != nil {
			return err
		}
	}
	// The mount's source is a directory that exists, as /var/lib does on
	// every host; mynet/ inside it does not yet.
	if err := os.MkdirAll(p.stateSource, 0o700); err != nil {
		return err
	}
	_, err := tryDocker("plugin", "set", p.name, "state.source="+p.stateSource, "LOG_LEVEL=debug",
		"MYNET_RECONCILE_INTERVAL="+reconcileInterval.String(), "MYNET_METRICS_ADDR="+metricsAddr)
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

// remove disables and removes the plugin; an absent plugin is no error.
func (p *pluginDaemon) remove() error {
	if _, err := tryDocker("plugin", "inspect", p.name); err != nil {
		return nil
	}
	_, _ = tryDocker("plugin", "disable", "-f", p.name)
	_, err := tryDocker("plugin", "rm", "-f", p.name)
	return err
}

// hup asks the plugin to reconcile now, on its socket.
func (p *pluginDaemon) hup() error { return p.reconcile() }

func (p *pluginDaemon) reconcile() error {
	return plugin.NewClient(socketPath, 30*time.Second).Call("/mynet.Reconcile", struct{}{}, nil)
}

// logs are in dockerd's log, one line per plugin line.
func (p *pluginDaemon) logs() []byte {
	b, _ := os.ReadFile(engine.log)
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "plugin=") {
			keep = append(keep, l)
		}
	}
	return []byte(strings.Join(keep, "\n"))
}
