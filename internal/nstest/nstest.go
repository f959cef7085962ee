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

	"golang.org/x/sys/unix"
)

const envMarker = "MYNET_NSTEST_INSIDE"

// Main re-executes the test binary in a new network namespace (the parent
// waits and exits with the child's status), then runs the tests there. As
// another user it runs the tests in place: the pure ones pass, and each
// kernel test, which calls Require, fails with a clear message rather than
// skips. (make test-unit runs without root and leaves the kernel tests out
// by name: they are called TestKernel*.)
func Main(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	if os.Getenv(envMarker) == "1" {
		if err := loopbackUp(); err != nil {
			fmt.Fprintf(os.Stderr, "nstest: bring lo up: %v\n", err)
			os.Exit(1)
		}
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

// Require fails the test unless it runs in the private namespace Main
// made, which needs root.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv(envMarker) != "1" {
		t.Fatal("this test changes the kernel: it needs root, and runs in a private network namespace (make unit); make test-unit leaves TestKernel* out")
	}
}

// loopbackUp sets lo up in the new namespace (ip link set lo up), so tests
// can use 127.0.0.1 as on a host.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
