package main

import (
	"bufio"
	"encoding/json"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mynet/mynet/internal/store"
	"github.com/mynet/mynet/plugin"
)

// pluginConfig is the part of config.json the checks read.
type pluginConfig struct {
	Documentation string   `json:"documentation"`
	Entrypoint    []string `json:"entrypoint"`
	Linux         struct {
		Capabilities []string `json:"capabilities"`
	} `json:"linux"`
	Mounts []struct {
		Name, Source, Destination string
		Options                   []string
	} `json:"mounts"`
	Env []struct {
		Name, Value string
	} `json:"env"`
}

func readPluginConfig(t *testing.T) pluginConfig {
	t.Helper()
	b, err := os.ReadFile("config.json")
	if err != nil {
		t.Fatal(err)
	}
	var c pluginConfig
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	return c
}

// unitKeys reads a systemd unit's Key=Value lines (last one wins).
func unitKeys(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = v
		}
	}
	return keys
}

// The managed plugin enables on a fresh host: its mounts' sources are
// directories every host has, bound without their submounts (no container
// mount or network namespace of the host gets pinned) but for dockerd's
// exec root, whose submounts follow the host's, and the state, lock and
// sandbox paths inside them are what the daemon is told to use.
func TestPluginConfigWorksOnAFreshHost(t *testing.T) {
	c := readPluginConfig(t)
	if u, err := url.Parse(c.Documentation); err != nil || u.Scheme != "https" || u.Host == "" {
		t.Errorf("documentation %q is not a URL", c.Documentation)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	dest := map[string]string{}
	for _, m := range c.Mounts {
		dest[m.Source] = m.Destination
		if m.Name == "sandboxes" {
			// dockerd's exec root exists whenever a plugin runs; its
			// netns directory only once a container ran. Its submounts
			// come and go with the host's (rslave): none is pinned.
			if m.Source != "/run/docker" || !slices.Equal(m.Options, []string{"rbind", "rslave"}) {
				t.Errorf("mount sandboxes: %s %v, want /run/docker rbind,rslave", m.Source, m.Options)
			}
			continue
		}
		if m.Source != "/var/lib" && m.Source != "/run" {
			t.Errorf("mount %s: source %s may not exist on a fresh host", m.Name, m.Source)
		}
		if slices.Contains(m.Options, "rbind") || !slices.Contains(m.Options, "bind") {
			t.Errorf("mount %s: options %v, want a plain bind (no submounts)", m.Name, m.Options)
		}
	}
	if env["MYNET_SANDBOX_ROOT"] != dest["/run/docker"]+"/netns" {
		t.Errorf("MYNET_SANDBOX_ROOT %q is not dockerd's netns directory under the sandboxes mount %q", env["MYNET_SANDBOX_ROOT"], dest["/run/docker"])
	}
	if !strings.HasPrefix(env["MYNET_STATE_DIR"], dest["/var/lib"]+"/") {
		t.Errorf("MYNET_STATE_DIR %q is not inside the state mount %q", env["MYNET_STATE_DIR"], dest["/var/lib"])
	}
	if env["XTABLES_LOCKFILE"] != dest["/run"]+"/xtables.lock" {
		t.Errorf("XTABLES_LOCKFILE %q is not the host's /run/xtables.lock under %q", env["XTABLES_LOCKFILE"], dest["/run"])
	}
	// Every setting the plugin offers is one the daemon reads.
	o, err := parseOptions(c.Entrypoint[1:], func(k string) string { return env[k] }, os.Stderr)
	if err != nil {
		t.Fatalf("the daemon refuses config.json's entrypoint and env: %v", err)
	}
	if o.StateDir != env["MYNET_STATE_DIR"] || o.Socket != plugin.DefaultSocket {
		t.Errorf("daemon would use socket %s and state %s", o.Socket, o.StateDir)
	}
}

// The systemd units match the plugin's confinement and the daemon's
// defaults.
func TestSystemdUnits(t *testing.T) {
	svc := unitKeys(t, "packaging/mynet.service")
	sock := unitKeys(t, "packaging/mynet.socket")
	caps := strings.Fields(svc["CapabilityBoundingSet"])
	slices.Sort(caps)
	// Both enter containers' network namespaces (CAP_SYS_ADMIN: the names
	// of other hosts' containers).
	want := slices.Clone(readPluginConfig(t).Linux.Capabilities)
	slices.Sort(want)
	if !slices.Equal(caps, want) {
		t.Errorf("CapabilityBoundingSet %v, config.json's capabilities %v", caps, want)
	}
	checks := map[string]string{
		"Type":                  "notify",
		"StateDirectory":        strings.TrimPrefix(store.DefaultDir, "/var/lib/"),
		"Before":                "docker.service",
		"KillMode":              "process",
		"ProtectKernelTunables": "yes", // as in a managed plugin: /proc/sys read-only
		"RestrictNamespaces":    "net", // setns into containers' network namespaces only
	}
	for k, v := range checks {
		if svc[k] != v {
			t.Errorf("mynet.service %s=%q, want %q", k, svc[k], v)
		}
	}
	if !strings.Contains(svc["After"], "firewalld.service") {
		t.Errorf("mynet.service After=%q, want it after firewalld.service", svc["After"])
	}
	if !strings.Contains(svc["ExecStart"], "--socket "+plugin.DefaultSocket) || sock["ListenStream"] != plugin.DefaultSocket {
		t.Errorf("ExecStart %q and ListenStream %q, want both on %s", svc["ExecStart"], sock["ListenStream"], plugin.DefaultSocket)
	}
	if sock["SocketMode"] != "0600" {
		t.Errorf("mynet.socket SocketMode=%q, want 0600 as the daemon makes it", sock["SocketMode"])
	}
}
