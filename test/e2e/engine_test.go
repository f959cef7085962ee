package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// engineSettings say which dockerd the suite drives: by default the host's
// (Debian's docker.io, started by setup.sh); test/engine/engine.sh run sets
// MYNET_E2E_* for the Engine 29 it runs in a namespace of its own.
type engineSettings struct {
	name    string // for failure messages
	log     string // dockerd's log, where a managed plugin's lines go
	pidfile string
	restart string // a shell command that restarts the same engine, same flags
}

var engine = engineFromEnv()

func engineFromEnv() engineSettings {
	e := engineSettings{
		name:    "the host's dockerd (Debian docker.io)",
		log:     "/var/log/mynet-test-dockerd.log",
		pidfile: "/var/run/docker.pid",
		restart: "bash setup.sh",
	}
	set := func(dst *string, key string) {
		if v := os.Getenv(key); v != "" {
			*dst = v
		}
	}
	set(&e.name, "MYNET_E2E_ENGINE")
	set(&e.log, "MYNET_E2E_DOCKERD_LOG")
	set(&e.pidfile, "MYNET_E2E_DOCKERD_PIDFILE")
	set(&e.restart, "MYNET_E2E_RESTART_DOCKERD")
	if host := os.Getenv("DOCKER_HOST"); host != "" && os.Getenv("MYNET_E2E_DOCKERD_PIDFILE") == "" {
		// engine.sh keeps its pidfile beside its socket.
		e.pidfile = filepath.Join(filepath.Dir(strings.TrimPrefix(host, "unix://")), "docker.pid")
	}
	return e
}

// restartDockerd stops dockerd (by the PID in its pidfile) and starts the
// same engine again with the same flags.
func restartDockerd(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(engine.pidfile)
	if err != nil {
		t.Fatalf("dockerd pidfile: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Signal(os.Interrupt)
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("kill", "-0", strconv.Itoa(pid)).Run() == nil {
		if time.Now().After(deadline) {
			t.Fatal("dockerd did not stop within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, err := exec.Command("bash", "-c", engine.restart).CombinedOutput()
	if err != nil {
		t.Fatalf("restart dockerd (%s): %v\n%s", engine.restart, err, out)
	}
}
