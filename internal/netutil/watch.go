package netutil

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkEvent is one change the kernel announced for a link.
type LinkEvent struct {
	Name    string
	Deleted bool // RTM_DELLINK; otherwise RTM_NEWLINK (created or changed)
	// Master is the ifindex of the bridge the link is a port of (0: none).
	Master int
	// Bridge says the link is a bridge.
	Bridge bool
	// Group is the link's device group (ip link set NAME group N).
	Group uint32
}

// WatchLinks calls fn for every link change in the namespace the calling
// process is in (`ip monitor link`), from a goroutine of its own, until ctx
// ends. It returns once the first subscription is in place, so a change
// made after it returns is seen. When the subscription fails (the kernel
// dropped events, the socket errored), onError is called, the caller
// should fall back on a full check, and WatchLinks subscribes again after a
// pause that grows to 30 s while it keeps failing: events are a fast path,
// not the truth.
func WatchLinks(ctx context.Context, fn func(LinkEvent), onError func(error)) error {
	report := onError
	onError = func(err error) {
		if ctx.Err() == nil { // closing the subscription at the end is no loss
			report(err)
		}
	}
	updates, done, err := subscribeLinks(onError)
	if err != nil {
		return err
	}
	go func() {
		pause := 100 * time.Millisecond
		for {
			lost := forward(ctx, updates, fn)
			close(done)
			if !lost {
				return
			}
			onError(errors.New("link event subscription ended"))
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(pause):
				}
				pause = min(2*pause, 30*time.Second)
				if updates, done, err = subscribeLinks(onError); err == nil {
					break
				}
				onError(err)
			}
		}
	}()
	return nil
}

func subscribeLinks(onError func(error)) (chan netlink.LinkUpdate, chan struct{}, error) {
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback:     onError,
		ReceiveBufferSize: 1 << 20,
	})
	if err != nil {
		close(done)
		return nil, nil, fmt.Errorf("subscribe to link events: %w", err)
	}
	return updates, done, nil
}

// forward passes events on until ctx ends (false) or the subscription
// closes its channel (true).
func forward(ctx context.Context, updates <-chan netlink.LinkUpdate, fn func(LinkEvent)) (lost bool) {
	for {
		select {
		case <-ctx.Done():
			return false
		case u, ok := <-updates:
			if !ok {
				return true
			}
			fn(LinkEvent{Name: u.Attrs().Name, Deleted: u.Header.Type == unix.RTM_DELLINK, Master: u.Attrs().MasterIndex,
				Bridge: u.Type() == "bridge", Group: u.Attrs().Group})
		}
	}
}
