// Package testbin builds the programs the tests run as processes (the
// mynet daemon, the test etcd) once per test binary, from the module's
// root, and gives them a log buffer that their output can be read from
// while they run.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex // guards built
	built = map[string]string{}
)

// Build builds the package (a path from the module's root, e.g. "." or
// "./test/etcd") once and returns the binary's path.
func Build(pkg string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin, nil
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	dir, err := os.MkdirTemp("", "mynet-testbin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(filepath.Clean(pkg)))
	if pkg == "." {
		bin = filepath.Join(dir, "mynet")
	}
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin, nil
}

// Mynet is the mynet daemon built from this tree; it fails the test when
// the build does.
func Mynet(tb testing.TB) string {
	tb.Helper()
	bin, err := Build(".")
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// Log collects a process's output; it is safe to read while the process
// writes.
type Log struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
