package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
