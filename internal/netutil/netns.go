package netutil

import (
	"fmt"
	"net"
	"runtime"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// InNetns runs fn on a thread in the network namespace at path (a
// container's sandbox, /var/run/docker/netns/<id>), and puts the thread
// back. Sockets fn opens stay in that namespace after it returns, and a
// program fn starts (iptables) runs there. A thread that cannot be put back
// is never reused: it ends with its goroutine. (ip netns exec PATH ...)
func InNetns(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()
	return inNetns(target, path, fn)
}

// inNetns runs fn on a thread switched into target (named path in errors).
func inNetns(target netns.NsHandle, path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("this thread's network namespace: %w", err)
			return // the thread stays locked, and ends with the goroutine
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave network namespace %s: %w (after: %v)", path, err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// FlushDNSFlows forgets the conntrack entries of UDP questions to
// 127.0.0.11:53 in the calling thread's network namespace (run it in
// InNetns) but those NATed to keep, the port of the forwarder in place (0:
// none), so that a client whose socket outlives a change of the DNS
// redirect follows the new rules at its next question, while questions on
// their way to the forwarder keep the NAT their replies need.
// (conntrack -D -p udp -d 127.0.0.11 --dport 53, less those to keep)
func FlushDNSFlows(keep uint16) error {
	if _, err := conntrackDeleteFilters(netlink.FAMILY_V4, dnsFlows{keep: keep}); err != nil {
		return fmt.Errorf("flush the DNS flows: %w", err)
	}
	return nil
}

// dnsFlows matches questions to 127.0.0.11:53 not NATed to keep.
type dnsFlows struct{ keep uint16 }

func (f dnsFlows) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	fw := flow.Forward
	return fw.Protocol == syscall.IPPROTO_UDP && fw.DstPort == 53 && fw.DstIP.Equal(net.IPv4(127, 0, 0, 11)) &&
		(f.keep == 0 || flow.Reverse.SrcPort != f.keep)
}
