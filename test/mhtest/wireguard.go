package mhtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wireguardSockets is where userspace WireGuard devices' UAPI sockets are
// (wireguard-go makes it).
const wireguardSockets = "/var/run/wireguard"

// What the World knows of its hosts' userspace WireGuard devices
// (encrypted networks): their names, processes and sockets.

// WireGuardDevice is the name of the WireGuard device of the host in
// namespace ns: mw, the test's number, the host's.
func (w *World) WireGuardDevice(ns string) string {
	return "mw" + strings.TrimPrefix(ns, "mnmh")
}

// WireGuardPid is the pid of the host's userspace WireGuard device's
// process (0: none).
func (h *Host) WireGuardPid() int {
	b, err := os.ReadFile(filepath.Join(h.dir, "wg-device.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// KillWireGuard kills the host's userspace WireGuard device's process as
// a crash would: its tun device goes with it, its socket stays.
func (h *Host) KillWireGuard() { killWireGuard(h.dir, "") }

// Underlay is the namespace of the underlay's bridge, whose port to host
// NAME (host1, ...) is ul-hN.
func (w *World) Underlay() string { return w.tag + "-ul" }

// killWireGuard kills the userspace device whose daemon's state is in dir,
// by its pid file (only a process whose command line names that very pid
// file: never another that took a stale pid), and removes its socket (a
// killed process leaves it).
func killWireGuard(dir, device string) {
	pidFile := filepath.Join(dir, "wg-device.pid")
	b, err := os.ReadFile(pidFile)
	if err == nil {
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && pid > 1 && strings.Contains(string(cmdline), "wg-device\x00") && strings.Contains(string(cmdline), pidFile) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for range 100 {
				if syscall.Kill(pid, 0) != nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		_ = os.Remove(filepath.Join(dir, "wg-device.pid"))
	}
	if device != "" {
		_ = os.Remove(filepath.Join(wireguardSockets, device+".sock"))
	}
}
