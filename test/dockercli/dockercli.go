// Package dockercli runs the docker CLI for the e2e tests and the
// benchmark, which drive a real dockerd exactly as a user does.
package dockercli

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// Bin is the engine's own client (Debian's docker.io), not a newer one that
// may come first on PATH.
const Bin = "/usr/bin/docker"

// Run runs docker with args and returns its trimmed stdout; an error
// carries docker's stderr, which is what the user would read, and not the
// arguments (tests match on what docker said).
func Run(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(Bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}
