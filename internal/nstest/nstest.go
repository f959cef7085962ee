// Package nstest runs a package's tests inside a network namespace of their
// own, so kernel integration tests create real bridges, veths and iptables
// rules through exactly the code paths the daemon uses, without touching the
// host's networking. The namespace dies with the test process, and with it
// anything a failed test left behind.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { nstest.Main(m) }
package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

const envMarker = "MYNET_NSTEST_INSIDE"

// Main re-executes the test binary in a new network namespace (the parent
// waits and exits with the child's status), then runs the tests there. The
// tests need root; without it they fail with a clear message rather than
// skip.
func Main(m *testing.M) {
	if os.Getenv(envMarker) == "1" {
		os.Exit(m.Run())
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envMarker+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintf(os.Stderr, "nstest: cannot run the tests in a new network namespace (they need root): %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}
