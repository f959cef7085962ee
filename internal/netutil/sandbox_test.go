package netutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/mynet/mynet/internal/nstest"
)

func TestSandboxesPath(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ root, key, want string }{
		{"", "/var/run/docker/netns/1a2b", "/var/run/docker/netns/1a2b"},
		{"/host/docker/netns", "/var/run/docker/netns/1a2b", "/host/docker/netns/1a2b"},
		{"/host/docker/netns", "/run/mynet-e2e-x/exec/netns/default", "/host/docker/netns/default"},
		{"/host/docker/netns", "", ""},
	} {
		if got := (Sandboxes{Root: c.root}).Path(c.key); got != c.want {
			t.Errorf("Sandboxes{%q}.Path(%q) = %q, want %q", c.root, c.key, got, c.want)
		}
	}
}

// A sandbox that appears only after the call (a mount still on its way)
// is waited for; a plain file is not a namespace.
func TestKernelSandboxesOpenWaitsForTheNamespace(t *testing.T) {
	nstest.Require(t)
	root := t.TempDir()
	s := Sandboxes{Root: root, Wait: 5 * time.Second}
	// Docker makes the file, then mounts the namespace on it: here the
	// plain file is replaced by a link to one a little later.
	if err := os.WriteFile(filepath.Join(root, "abc"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = os.Symlink("/proc/self/ns/net", filepath.Join(root, "abc.new"))
		_ = os.Rename(filepath.Join(root, "abc.new"), filepath.Join(root, "abc")) // at once
	}()
	h, err := s.Open("/var/run/docker/netns/abc")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	self, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if !h.Equal(self) {
		t.Errorf("opened %s, want this test's namespace %s", h, self)
	}
	ran := false
	if err := s.Enter("/x/netns/abc", func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("Enter = %v, ran %v", err, ran)
	}

	start := time.Now()
	if _, err := s.Open("/var/run/docker/netns/missing"); err == nil || time.Since(start) > time.Second {
		t.Errorf("a missing sandbox: %v after %v, want an error at once", err, time.Since(start))
	}
	if err := os.WriteFile(filepath.Join(root, "plain"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Sandboxes{Root: root, Wait: 100 * time.Millisecond}.Open("/var/run/docker/netns/plain")
	if err == nil || !strings.Contains(err.Error(), "not a network namespace") || !strings.Contains(err.Error(), root) {
		t.Errorf("a plain file: %v, want an error naming it as not a namespace", err)
	}
}

func TestReceivesMounts(t *testing.T) {
	t.Parallel()
	const info = `26 1 254:0 / / rw,relatime - ext4 /dev/vda rw
45 26 254:0 /var/lib/docker /var/lib/docker rw,relatime shared:2 - ext4 /dev/vda rw
60 26 0:50 /docker /host/docker rw,relatime master:7 - tmpfs tmpfs rw
61 26 0:50 /other /host/my\040dir rw,relatime - tmpfs tmpfs rw
`
	for _, c := range []struct {
		dir  string
		want bool
	}{
		{"/host/docker/netns", true}, {"/host/docker", true}, {"/var/lib/docker/x", true},
		{"/host/dockerish", false}, {"/host/my dir/netns", false}, {"/", false}, {"/srv/x", false},
	} {
		got, why, err := receivesMounts(strings.NewReader(info), c.dir)
		if err != nil || got != c.want || (!got && why == "") {
			t.Errorf("receivesMounts(%q) = %v, %q, %v; want %v", c.dir, got, why, err, c.want)
		}
	}
}

func TestPluginID(t *testing.T) {
	t.Parallel()
	id := strings.Repeat("0123456789abcdef", 4)
	info := "26 1 254:0 / / rw - ext4 /dev/vda rw\n" +
		"70 26 0:25 /docker/plugins/" + id + " /run/docker/plugins rw shared:9 - tmpfs tmpfs rw\n"
	if got := pluginID(info, "/run/docker/plugins"); got != id {
		t.Errorf("pluginID = %q, want %q", got, id)
	}
	if got := pluginID(info, "/run/other"); got != "" {
		t.Errorf("pluginID of an unmounted directory = %q, want none", got)
	}
	plain := "70 26 0:25 /docker/plugins /run/docker/plugins rw - tmpfs tmpfs rw\n"
	if got := pluginID(plain, "/run/docker/plugins"); got != "" {
		t.Errorf("pluginID of the host's own plugin directory = %q, want none", got)
	}
}
