package integration

import (
	"fmt"
	"net"
	"testing"

	"github.com/mynet/mynet/internal/fault"
)

const (
	crashNet  = "c0ffee0000aa0000000000000000000000000000000000000000000000000001"
	crashEp1  = "e1e1e1e1e1e10000000000000000000000000000000000000000000000000001"
	crashEp2  = "e2e2e2e2e2e20000000000000000000000000000000000000000000000000002"
	crashPort = 19090
)

// crashCounts is what the crash test reports (docs/reliability.md).
type crashCounts struct{ faults, restarts, invariants, leaks int }

// check records one invariant; a failure is a leak or a wrong answer.
func (c *crashCounts) check(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	c.invariants++
	if !ok {
		c.leaks++
		t.Errorf(format, args...)
	}
}

// lifecycle plays what dockerd does for a network with two containers, one
// of which publishes a port, from `docker network create` to `docker network
// rm`, checking the invariants on the way.
func lifecycle(t *testing.T, d *daemon, c *crashCounts) {
	pool := d.call("/IpamDriver.RequestPool", map[string]any{"AddressSpace": "LocalDefault", "Pool": "10.60.0.0/24"})
	poolID := pool["PoolID"].(string)
	gw := d.call("/IpamDriver.RequestAddress", map[string]any{"PoolID": poolID,
		"Options": map[string]string{"RequestAddressType": "com.docker.network.gateway"}})["Address"].(string)
	d.call("/NetworkDriver.CreateNetwork", map[string]any{"NetworkID": crashNet, "Options": map[string]any{},
		"IPv4Data": []map[string]any{{"AddressSpace": "LocalDefault", "Pool": "10.60.0.0/24", "Gateway": gw}}})
	addrs := map[string]string{}
	for i, ep := range []string{crashEp1, crashEp2} {
		mac := fmt.Sprintf("02:00:00:00:00:%02x", i+1)
		addr := d.call("/IpamDriver.RequestAddress", map[string]any{"PoolID": poolID,
			"Options": map[string]string{"com.docker.network.endpoint.macaddress": mac}})["Address"].(string)
		addrs[ep] = addr
		d.call("/NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": crashNet, "EndpointID": ep,
			"Interface": map[string]string{"Address": addr, "MacAddress": mac}})
		d.call("/NetworkDriver.Join", map[string]any{"NetworkID": crashNet, "EndpointID": ep, "SandboxKey": "/x"})
	}
	c.check(t, addrs[crashEp1] != addrs[crashEp2] && addrs[crashEp1] != gw && addrs[crashEp2] != gw,
		"an address was handed out twice: gateway %s, endpoints %v", gw, addrs)
	d.call("/NetworkDriver.ProgramExternalConnectivity", map[string]any{"NetworkID": crashNet, "EndpointID": crashEp1,
		"Options": map[string]any{"com.docker.network.portmap": []map[string]any{
			{"Proto": 6, "Port": 80, "HostIP": "127.0.0.1", "HostPort": crashPort, "HostPortEnd": crashPort}}}})
	info := d.call("/NetworkDriver.EndpointOperInfo", map[string]any{"NetworkID": crashNet, "EndpointID": crashEp1})
	value, _ := info["Value"].(map[string]any)
	c.check(t, value["ports"] == fmt.Sprintf("127.0.0.1:%d->80/tcp", crashPort), "published port lost: %v", info)
	c.check(t, !portFree(crashPort), "published host port %d is not reserved", crashPort)
	for _, ep := range []string{crashEp1, crashEp2} {
		// Whatever crashed, the network still serves both endpoints.
		out := d.call("/NetworkDriver.Join", map[string]any{"NetworkID": crashNet, "EndpointID": ep, "SandboxKey": "/x"})
		c.check(t, out["Gateway"] == "10.60.0.1", "Join after the crash: %v", out)
	}

	// docker rm -f of both containers, then docker network rm.
	d.call("/NetworkDriver.RevokeExternalConnectivity", map[string]any{"NetworkID": crashNet, "EndpointID": crashEp1})
	for _, ep := range []string{crashEp1, crashEp2} {
		d.call("/NetworkDriver.Leave", map[string]any{"NetworkID": crashNet, "EndpointID": ep})
		d.call("/NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": crashNet, "EndpointID": ep})
		d.call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": poolID, "Address": addrs[ep]})
	}
	d.call("/NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": crashNet})
	d.call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": poolID, "Address": gw})
	st := d.call("/mynet.Status", map[string]any{})
	for _, p := range list(st["pools"]) {
		pm := p.(map[string]any)
		c.check(t, pm["allocated"] == 0.0, "pool %v still has %v addresses allocated after all were released", pm["id"], pm["allocated"])
	}
	d.call("/IpamDriver.ReleasePool", map[string]any{"PoolID": poolID})
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func portFree(port int) bool {
	l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// afterAll checks that nothing is left once the network is gone and the
// daemon has started once more (which collects what forgotten deletes left).
func afterAll(t *testing.T, d *daemon, c *crashCounts) {
	d.stop()
	d.fault = ""
	d.start()
	c.check(t, len(mynetLinks(t)) == 0, "links left: %v", mynetLinks(t))
	c.check(t, len(allTaggedRules(t)) == 0, "rules left: %v", allTaggedRules(t))
	c.check(t, portFree(crashPort), "host port %d still held", crashPort)
	st := d.call("/mynet.Status", map[string]any{})
	c.check(t, len(list(st["networks"]))+len(list(st["endpoints"]))+len(list(st["pools"])) == 0,
		"state left: %v", st)
}

// TestCrashAtEveryPoint kills the daemon (SIGKILL, from inside, at a named
// point between two steps of a call) at every fault point in turn, lets
// "dockerd" carry on as it would, and checks that nothing leaks and no
// address is handed out twice.
func TestCrashAtEveryPoint(t *testing.T) {
	var total crashCounts
	for _, point := range append([]string{""}, fault.Points()...) {
		name := point
		if name == "" {
			name = "no-fault"
		}
		t.Run(name, func(t *testing.T) {
			var c crashCounts
			d := newDaemon(t)
			d.fault = point
			d.start()
			lifecycle(t, d, &c)
			afterAll(t, d, &c)
			if point != "" {
				c.faults++
				c.check(t, d.restarts == 1, "the daemon did not crash at %s (%d restarts)", point, d.restarts)
			}
			c.restarts = d.restarts
			total.faults += c.faults
			total.restarts += c.restarts
			total.invariants += c.invariants
			total.leaks += c.leaks
		})
	}
	t.Logf("crash test: %d fault points, %d faults injected, %d restarts, %d invariants checked, %d leaks or wrong answers",
		len(fault.Points()), total.faults, total.restarts, total.invariants, total.leaks)
}
