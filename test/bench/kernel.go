package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/mynet/mynet/internal/netutil"
)

// order is the drivers' order in round or item i: ABBA (bridge, mynet,
// mynet, bridge, ...), so that neither driver is always first.
func order(i int) []string { return orderOf(i, drivers) }

// orderOf is ds in round i: as given in even rounds, reversed in odd ones
// (ABC CBA ...), so that every driver's mean position is the same.
func orderOf(i int, ds []string) []string {
	if i%2 == 0 {
		return ds
	}
	r := slices.Clone(ds)
	slices.Reverse(r)
	return r
}

// bridgeOf is the Linux bridge of a network of the driver: Docker's bridge
// driver names it br-<id>, mynet mn-<id>, the floor driver mf-<id> (12
// characters of the id).
func bridgeOf(drv, id string) string {
	if len(id) < 12 {
		return ""
	}
	switch drv {
	case "bridge":
		return "br-" + id[:12]
	case floor:
		return floorBridge(id)
	}
	return "mn-" + id[:12]
}

// linkGone waits until the kernel has no link of that name and says when
// that was, in milliseconds since start.
func linkGone(links *netutil.Links, name string, start time.Time) (float64, error) {
	for {
		ok, err := links.LinkExists(name)
		if err != nil {
			return 0, err
		}
		if !ok {
			return msSince(start), nil
		}
		if time.Since(start) > 30*time.Second {
			return 0, fmt.Errorf("link %s still there after 30 s", name)
		}
		time.Sleep(time.Millisecond)
	}
}

// portsGone waits until the bridge has no port left (the removed
// container's veth deleted) and says when, in milliseconds since start.
func portsGone(links *netutil.Links, bridge string, start time.Time) (float64, error) {
	for {
		ports, err := links.BridgePorts(bridge)
		if err != nil {
			return 0, err
		}
		if len(ports) == 0 {
			return msSince(start), nil
		}
		if time.Since(start) > 30*time.Second {
			return 0, fmt.Errorf("bridge %s still has ports %v after 30 s", bridge, ports)
		}
		time.Sleep(time.Millisecond)
	}
}
