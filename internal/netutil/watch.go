package netutil

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkEvent is one change the kernel announced for a link.
type LinkEvent struct {
	Name    string
	Deleted bool // RTM_DELLINK; otherwise RTM_NEWLINK (created or changed)
	// Master is the ifindex of the bridge the link is a port of (0: none).
	Master int
}

// WatchLinks calls fn for every link change in the namespace the calling
// process is in (`ip monitor link`), from a goroutine of its own, until ctx
// ends. It returns once the subscription is in place, so a change made after
// it returns is seen. If the kernel drops events (the socket's buffer
// overflowed) or the subscription fails, onError is called, and the caller
// should fall back on a full check: events are a fast path, not the truth.
func WatchLinks(ctx context.Context, fn func(LinkEvent), onError func(error)) error {
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback:     onError,
		ReceiveBufferSize: 1 << 20,
	})
	if err != nil {
		close(done)
		return fmt.Errorf("subscribe to link events: %w", err)
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					onError(fmt.Errorf("link event subscription closed"))
					return
				}
				fn(LinkEvent{Name: u.Attrs().Name, Deleted: u.Header.Type == unix.RTM_DELLINK, Master: u.Attrs().MasterIndex})
			}
		}
	}()
	return nil
}
