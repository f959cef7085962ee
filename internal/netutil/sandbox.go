package netutil

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Sandboxes finds the containers' network namespaces that Docker names by
// path (Join's SandboxKey, <exec-root>/netns/<id>) where this process sees
// them: the one place mynet opens a container's namespace.
//
// A plain daemon sees them where Docker says. A managed plugin sees the
// host's files through a mount (the host's /run/docker on /host/docker,
// rbind and rslave): Root is the netns directory there, and a key's last
// element is looked up in it. A sandbox dockerd mounted after the plugin
// started is there only if the host's mount propagates (ReceivesMounts); a
// file that is not a namespace yet (Docker makes it, then mounts the
// namespace on it) is waited for, up to Wait; a missing one is not.
type Sandboxes struct {
	Root string
	Wait time.Duration
}

// Path is where key is seen from here.
func (s Sandboxes) Path(key string) string {
	if s.Root == "" || key == "" {
		return key
	}
	return filepath.Join(s.Root, filepath.Base(key))
}

// Open opens the namespace key names, once its file is a namespace.
func (s Sandboxes) Open(key string) (netns.NsHandle, error) {
	path := s.Path(key)
	deadline := time.Now().Add(s.Wait)
	for {
		err := isNamespace(path)
		if err == nil {
			break
		}
		// A missing file is no sandbox (gone, or never one); a plain
		// file is one whose namespace is on its way.
		if errors.Is(err, os.ErrNotExist) || !time.Now().Before(deadline) {
			if path != key {
				return -1, fmt.Errorf("sandbox %s, seen here as %s: %w", key, path, err)
			}
			return -1, fmt.Errorf("sandbox %s: %w", key, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return -1, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	return h, nil
}

// Enter runs fn on a thread in the namespace key names (InNetns).
func (s Sandboxes) Enter(key string, fn func() error) error {
	h, err := s.Open(key)
	if err != nil {
		return err
	}
	defer h.Close()
	return inNetns(h, key, fn)
}

// isNamespace says why path is not (yet) a namespace's file: missing, or
// a plain file (Docker creates it, then mounts the namespace on it).
func isNamespace(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	if st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC {
		return errors.New("not a network namespace (yet): a file with no namespace mounted on it")
	}
	return nil
}

// ReceivesMounts says whether mounts made later under the host's source of
// the mount that holds dir reach dir (its mount is a slave or a peer of
// another: "master:" or "shared:" in /proc/self/mountinfo), and when not,
// why. (findmnt -o PROPAGATION --target DIR)
func ReceivesMounts(dir string) (bool, string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, "", err
	}
	defer f.Close()
	return receivesMounts(f, filepath.Clean(dir))
}

// receivesMounts reads mountinfo lines: the mount whose mount point is the
// longest prefix of dir holds it.
func receivesMounts(r io.Reader, dir string) (bool, string, error) {
	var point, fields string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
		f := strings.Fields(sc.Text())
		if len(f) < 7 {
			continue
		}
		p := unescapeMount(f[4])
		if !within(dir, p) || len(p) < len(point) {
			continue
		}
		var opt []string
		for _, o := range f[6:] {
			if o == "-" {
				break
			}
			opt = append(opt, o)
		}
		point, fields = p, strings.Join(opt, " ")
	}
	if err := sc.Err(); err != nil {
		return false, "", fmt.Errorf("read mountinfo: %w", err)
	}
	if point == "" {
		return false, "", fmt.Errorf("no mount holds %s", dir)
	}
	if point == "/" && dir != "/" {
		return false, fmt.Sprintf("nothing is mounted on %s or a directory above it but /: the host's directory of sandboxes is not seen here (the managed plugin's sandboxes mount is missing)", dir), nil
	}
	if strings.Contains(fields, "master:") || strings.Contains(fields, "shared:") {
		return true, "", nil
	}
	return false, fmt.Sprintf("the mount at %s is private: the host's mount of its source is not shared (make it shared: mount --make-rshared /), so containers started after mynet are not seen here", point), nil
}

// within says whether path is dir or under it.
func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// PluginID is the ID Docker gave the managed plugin this process runs in:
// the last element of the host directory mounted on its socket directory
// (Docker binds /run/docker/plugins/<id> on the plugin's
// /run/docker/plugins). "" outside a managed plugin.
func PluginID(socketDir string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	return pluginID(string(b), filepath.Clean(socketDir))
}

func pluginID(mountinfo, socketDir string) string {
	for _, l := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || unescapeMount(f[4]) != socketDir {
			continue
		}
		id := filepath.Base(unescapeMount(f[3]))
		if len(id) == 64 && strings.Trim(id, "0123456789abcdef") == "" {
			return id
		}
	}
	return ""
}
