package dockersync

import (
	"errors"
	"strings"
	"testing"
)

// A managed plugin's syncer creates the networks with the plugin's own
// reference, asked of Docker by the plugin's ID, on a host where no network
// of mynet's exists yet to show it (nothing set by hand: Driver is the
// socket's base name, which Docker does not know the plugin by).
func TestManagedPluginCreatesWithItsReference(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	h := syncHosts(t, 2, func(i int, e *fakeEngine, c *Config) {
		if i == 1 {
			e.driver, e.plugins[id], c.PluginID = "mynet-e2e:latest", "mynet-e2e:latest", id
		}
	})
	h[0].join(t, "ov1", "10.0.0.0/24")
	h[0].engine.userCreate(t, "ov_net1", "ov1", "10.0.0.0/24")
	eventually(t, "host2 has ov_net1", func() error {
		n, ok := h[1].engine.byName("ov_net1")
		if !ok {
			return errors.New("not yet")
		}
		if n.Driver != "mynet-e2e:latest" || n.IPAMDriver != "mynet-e2e:latest" {
			t.Fatalf("created with driver %q, IPAM %q; want the plugin's reference mynet-e2e:latest", n.Driver, n.IPAMDriver)
		}
		return nil
	})
	if d := h[1].syncer.Status().Driver; d != "mynet-e2e:latest" {
		t.Errorf("status driver %q", d)
	}
}

// A plugin Docker does not know (by that ID) keeps the sync off, saying
// why, rather than creating networks under a name Docker does not resolve.
func TestUnknownPluginIDKeepsTheSyncOff(t *testing.T) {
	h := syncHosts(t, 1, func(_ int, _ *fakeEngine, c *Config) { c.PluginID = "feed" })
	waitPasses(t, h[0].syncer, 1)
	st := h[0].syncer.Status()
	if st.On || !strings.Contains(st.Reason, "No such plugin") {
		t.Errorf("status %+v; want off, saying the plugin is unknown", st)
	}
}

func TestSameDriver(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"mynet", "mynet:latest", true}, {"mynet:latest", "mynet:latest", true}, {"mynet", "mynet", true},
		{"mynet:1.0", "mynet:latest", false}, {"reg:5000/me/mynet", "reg:5000/me/mynet:latest", true},
		{"mynet", "other", false},
	} {
		if got := sameDriver(c.a, c.b); got != c.want {
			t.Errorf("sameDriver(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
