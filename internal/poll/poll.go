// Package poll is the one way mynet's tests wait: for something to become
// true (Eventually), for something never to happen over a while (Never),
// and, outside a test's failure, for a condition (Until). Every wait polls
// at a fixed short interval up to a stated limit; a test never sleeps a
// fixed time to let something happen.
//
// Files: poll.go all of it.
package poll

import (
	"errors"
	"testing"
	"time"
)

// interval is how often a condition is checked: short against what tests
// wait for (kernel state, a daemon's answer, a watch's event), long
// against the check's own cost.
const interval = 20 * time.Millisecond

// Eventually checks fn until it returns nil and returns how long that
// took; past limit, the test fails (t.Fatalf) with what and fn's last
// error.
func Eventually(t testing.TB, what string, limit time.Duration, fn func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := fn()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v: %v", what, limit, err)
		}
		time.Sleep(interval)
	}
}

// Never checks fn for the whole of during; the first error it returns
// fails the test (t.Fatalf).
func Never(t testing.TB, what string, during time.Duration, fn func() error) {
	t.Helper()
	start := time.Now()
	for {
		if err := fn(); err != nil {
			t.Fatalf("%s, after %v: %v", what, time.Since(start).Round(time.Millisecond), err)
		}
		if time.Since(start) > during {
			return
		}
		time.Sleep(interval)
	}
}

// Until checks cond until it holds or limit passed, and reports whether it
// held: for a caller that reports the failure itself (with logs, say).
func Until(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(interval)
	}
	return cond()
}

// True is cond as a check for Eventually and Never.
func True(cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}
}

var errNotYet = errors.New("not yet")
