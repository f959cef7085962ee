package netutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// procSys is the root of the sysctl tree.
const procSys = "/proc/sys"

// Sysctl reads a sysctl such as "net/ipv4/ip_forward" (sysctl -n NAME), in the
// namespace of the calling process.
func Sysctl(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(procSys, name))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// EnsureSysctl sets a sysctl to value unless it already has it (sysctl -w
// NAME=VALUE). Inside a managed plugin /proc/sys is read-only; then a sysctl
// that already has the value is fine and one that has not is a clear error.
func EnsureSysctl(name, value string) error {
	dotted := strings.ReplaceAll(name, "/", ".")
	cur, err := Sysctl(name)
	if err == nil && cur == value {
		return nil
	}
	if err := os.WriteFile(filepath.Join(procSys, name), []byte(value), 0o644); err != nil {
		if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("%s is %q and mynet cannot set it (/proc/sys is read-only here, as inside a managed plugin): set it on the host with sysctl -w %s=%s", dotted, cur, dotted, value)
		}
		return fmt.Errorf("set sysctl %s=%s (it is %q): %w", dotted, value, cur, err)
	}
	return nil
}
