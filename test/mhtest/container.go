package mhtest

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
)

// container is a "container" namespace on a host, attached to a network.
type Container struct {
	Net  *ClusterNet
	NS   string
	epID string
	IP   netip.Prefix
	IP6  netip.Prefix // on a dual-stack network
	MAC  string
}

var epSeq struct {
	sync.Mutex
	n int
}

// run plays `docker run --network NET`: an address, the endpoint, Join, and
// the veth's container end moved into a namespace and configured.
func (n *ClusterNet) Run(static string) *Container {
	h := n.Host
	t := h.w.t
	t.Helper()
	c, err := n.TryRun(static)
	if err != nil {
		t.Fatalf("%s: %v\n%s", h.Name, err, Tail(h.log.String(), 3000))
	}
	return c
}

func (n *ClusterNet) TryRun(static string) (*Container, error) { return n.TryRunAt(static, "") }

// RunAt is Run with a static IPv6 address too ("": any) on a dual-stack
// network.
func (n *ClusterNet) RunAt(static, static6 string) *Container {
	h := n.Host
	h.w.t.Helper()
	c, err := n.TryRunAt(static, static6)
	if err != nil {
		h.w.t.Fatalf("%s: %v\n%s", h.Name, err, Tail(h.log.String(), 3000))
	}
	return c
}

// TryRunAt is RunAt that returns the daemon's refusal.
func (n *ClusterNet) TryRunAt(static, static6 string) (*Container, error) {
	h := n.Host
	epSeq.Lock()
	epSeq.n++
	seq := epSeq.n
	epSeq.Unlock()
	epID := fmt.Sprintf("e%011x%s", seq, strings.Repeat("0", 52))
	mac := fmt.Sprintf("02:00:%02x:00:%02x:%02x", h.n, seq/256, seq%256)
	iface := map[string]string{"MacAddress": mac}
	// As dockerd, a step that fails undoes the ones before it: the
	// endpoint goes, and the addresses taken for it are released.
	var undo []func()
	fail := func(err error) (*Container, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	request := func(pool, want string) (netip.Prefix, error) {
		res, err := h.Try("/IpamDriver.RequestAddress", map[string]any{"PoolID": pool, "Address": want,
			"Options": map[string]string{"com.docker.network.endpoint.macaddress": mac}})
		if err != nil {
			return netip.Prefix{}, err
		}
		a := netip.MustParsePrefix(res["Address"].(string))
		undo = append(undo, func() {
			_, _ = h.Try("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": pool, "Address": a.Addr().String()})
		})
		return a, nil
	}
	var addr, addr6 netip.Prefix
	var err error
	if n.PoolID != "" { // not IPv6-only
		if addr, err = request(n.PoolID, static); err != nil {
			return fail(err)
		}
		iface["Address"] = addr.String()
	}
	if n.PoolID6 != "" {
		if addr6, err = request(n.PoolID6, static6); err != nil {
			return fail(err)
		}
		iface["AddressIPv6"] = addr6.String()
	}
	if _, err := h.Try("/NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": n.ID, "EndpointID": epID,
		"Interface": iface}); err != nil {
		return fail(err)
	}
	undo = append(undo, func() {
		_, _ = h.Try("/NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": n.ID, "EndpointID": epID})
	})
	if _, err := h.Try("/NetworkDriver.Join", map[string]any{"NetworkID": n.ID, "EndpointID": epID, "SandboxKey": "/x"}); err != nil {
		return fail(err)
	}
	c := &Container{Net: n, NS: fmt.Sprintf("%s-c%d", h.w.tag, seq), epID: epID, IP: addr, IP6: addr6, MAC: mac}
	peer := "mnc" + epID[:12]
	// What dockerd does after Join, in three ip processes (one batch for the
	// container's side), so timings measure mynet more than this harness.
	for _, args := range [][]string{
		{"netns", "add", c.NS},
		{"-n", h.NS, "link", "set", peer, "netns", c.NS},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	batch := exec.Command("ip", "-n", c.NS, "-batch", "-")
	script := fmt.Sprintf("link set %s name eth0\nlink set eth0 up\nlink set lo up\n", peer)
	if addr.IsValid() {
		script += fmt.Sprintf("addr add %s dev eth0\nroute add default via %s\n", addr, strings.Split(n.GW, "/")[0])
	}
	if addr6.IsValid() {
		// As dockerd: the address without duplicate detection, usable at once.
		script += fmt.Sprintf("addr add %s dev eth0 nodad\nroute add default via %s\n", addr6, strings.Split(n.GW6, "/")[0])
	}
	batch.Stdin = strings.NewReader(script)
	if out, err := batch.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("configure %s: %v: %s", c.NS, err, out)
	}
	return c, nil
}

// remove plays `docker rm -f`: Leave, DeleteEndpoint, ReleaseAddress, and
// the namespace goes.
func (c *Container) Remove() {
	h := c.Net.Host
	h.Call("/NetworkDriver.Leave", map[string]any{"NetworkID": c.Net.ID, "EndpointID": c.epID})
	_ = exec.Command("ip", "netns", "del", c.NS).Run()
	h.Call("/NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": c.Net.ID, "EndpointID": c.epID})
	if c.IP.IsValid() {
		h.Call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": c.Net.PoolID, "Address": c.IP.Addr().String()})
	}
	if c.IP6.IsValid() {
		h.Call("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": c.Net.PoolID6, "Address": c.IP6.Addr().String()})
	}
}

// ping sends one echo from the container to ip; size > 0 sets the payload
// and forbids fragmentation.
func (c *Container) Ping(ip netip.Addr, size int) error {
	args := []string{"netns", "exec", c.NS, "ping", "-c", "1", "-W", "2"}
	if size > 0 {
		args = append(args, "-M", "do", "-s", fmt.Sprint(size))
	}
	out, err := exec.Command("ip", append(args, ip.String())...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", ip, c.IP, err, out)
	}
	return nil
}

// TryRemove is Remove that reports the daemon's errors rather than failing
// the test (a fault schedule expects some); the namespace goes whatever.
func (c *Container) TryRemove() error {
	h := c.Net.Host
	_, lerr := h.Try("/NetworkDriver.Leave", map[string]any{"NetworkID": c.Net.ID, "EndpointID": c.epID})
	_ = exec.Command("ip", "netns", "del", c.NS).Run()
	_, derr := h.Try("/NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": c.Net.ID, "EndpointID": c.epID})
	if derr != nil {
		return fmt.Errorf("leave: %v; delete endpoint: %w", lerr, derr)
	}
	if c.IP.IsValid() { // none on an IPv6-only network
		if _, err := h.Try("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": c.Net.PoolID, "Address": c.IP.Addr().String()}); err != nil {
			return fmt.Errorf("release: %w", err)
		}
	}
	if c.IP6.IsValid() {
		if _, err := h.Try("/IpamDriver.ReleaseAddress", map[string]any{"PoolID": c.Net.PoolID6, "Address": c.IP6.Addr().String()}); err != nil {
			return fmt.Errorf("release IPv6: %w", err)
		}
	}
	return nil
}
