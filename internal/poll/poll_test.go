package poll

import (
	"errors"
	"testing"
	"time"
)

func TestEventuallyReturnsOnceTrue(t *testing.T) {
	t.Parallel()
	start := time.Now()
	took := Eventually(t, "after 50 ms", time.Second, True(func() bool { return time.Since(start) > 50*time.Millisecond }))
	if took < 50*time.Millisecond || took > 500*time.Millisecond {
		t.Errorf("took %v", took)
	}
}

func TestUntilGivesUp(t *testing.T) {
	t.Parallel()
	if Until(60*time.Millisecond, func() bool { return false }) {
		t.Error("a condition that never holds held")
	}
	if !Until(time.Second, func() bool { return true }) {
		t.Error("a condition that holds did not")
	}
}

// fake records whether a wait failed the test, without failing this one.
type fake struct {
	testing.TB
	failed bool
}

func (f *fake) Helper()               {}
func (f *fake) Fatalf(string, ...any) { f.failed = true; panic(f) }

func failed(fn func(tb testing.TB)) (out bool) {
	f := &fake{}
	defer func() {
		if r := recover(); r != nil && r != any(f) {
			panic(r)
		}
		out = f.failed
	}()
	fn(f)
	return f.failed
}

func TestFailures(t *testing.T) {
	t.Parallel()
	if !failed(func(tb testing.TB) {
		Eventually(tb, "never", 50*time.Millisecond, func() error { return errors.New("no") })
	}) {
		t.Error("Eventually of what never holds did not fail")
	}
	if !failed(func(tb testing.TB) {
		n := 0
		Never(tb, "the third check", time.Second, func() error {
			if n++; n == 3 {
				return errors.New("happened")
			}
			return nil
		})
	}) {
		t.Error("Never of what happened did not fail")
	}
	if failed(func(tb testing.TB) { Never(tb, "nothing", 60*time.Millisecond, func() error { return nil }) }) {
		t.Error("Never of what did not happen failed")
	}
}
