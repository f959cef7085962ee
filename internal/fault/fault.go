// Package fault is a test-only crash hook. The daemon builds a Hook from
// the environment variable MYNET_FAULT; the driver and the allocator call
// Hook.At at named points between the steps of every mutating call. When
// the variable names that point, the process SIGKILLs itself there, exactly
// as a crash would; otherwise (always, in production) At does nothing. The
// crash test (test/integration) kills the daemon at every point in turn and
// checks that the next start repairs everything.
package fault

import (
	"os"
	"syscall"
)

// Env is the environment variable that names the point to crash at.
const Env = "MYNET_FAULT"

// Hook is called at each fault point; nil does nothing.
type Hook func(point string)

// At passes a fault point.
func (h Hook) At(point string) {
	if h != nil {
		h(point)
	}
}

// FromEnv returns a Hook that kills the process at the point named by
// MYNET_FAULT, or nil when it is unset.
func FromEnv(getenv func(string) string) Hook {
	target := getenv(Env)
	if target == "" {
		return nil
	}
	return func(point string) {
		if point == target {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}

// The fault points, in the order a network's life passes them.
const (
	CreateNetworkIntent   = "create-network:after-intent"
	CreateNetworkBridge   = "create-network:after-bridge"
	CreateNetworkFirewall = "create-network:after-firewall"
	CreateNetworkSaved    = "create-network:after-save"
	CreateEndpointVeth    = "create-endpoint:after-veth"
	CreateEndpointSaved   = "create-endpoint:after-save"
	ProgramReserved       = "program:after-reserve"
	ProgramFirewall       = "program:after-firewall"
	ProgramSaved          = "program:after-save"
	RevokeFirewall        = "revoke:after-firewall"
	DeleteEndpointStore   = "delete-endpoint:after-store"
	DeleteEndpointKernel  = "delete-endpoint:after-kernel"
	DeleteNetworkMarked   = "delete-network:after-mark"
	DeleteNetworkKernel   = "delete-network:after-kernel"
	RequestPoolSaved      = "ipam:request-pool:after-save"
	RequestAddressSaved   = "ipam:request-address:after-save"
	ReleaseAddressSaved   = "ipam:release-address:after-save"
	ReleasePoolSaved      = "ipam:release-pool:after-save"
)

// Points lists every fault point.
func Points() []string {
	return []string{
		RequestPoolSaved, RequestAddressSaved,
		CreateNetworkIntent, CreateNetworkBridge, CreateNetworkFirewall, CreateNetworkSaved,
		CreateEndpointVeth, CreateEndpointSaved,
		ProgramReserved, ProgramFirewall, ProgramSaved, RevokeFirewall,
		DeleteEndpointStore, DeleteEndpointKernel,
		ReleaseAddressSaved,
		DeleteNetworkMarked, DeleteNetworkKernel,
		ReleasePoolSaved,
	}
}
