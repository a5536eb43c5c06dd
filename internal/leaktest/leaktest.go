// Package leaktest checks that a test leaves no goroutine behind, with
// go.uber.org/goleak.
package leaktest

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// grace is how long after a test goroutines it started may take to end.
const grace = 5 * time.Second

// Check records the goroutines running now and registers a cleanup that
// fails t if, after the test (and its other cleanups registered later)
// ended, goroutines started since are still running after up to 5 s. Call
// it first in a test, before anything that starts goroutines.
func Check(t testing.TB) {
	t.Helper()
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		// The signal package's loop lives as long as the process once a
		// test (or the code it tests) called signal.Notify.
		goleak.IgnoreTopFunction("os/signal.signal_recv"),
		goleak.IgnoreAnyFunction("os/signal.loop"),
	}
	t.Cleanup(func() {
		t.Helper()
		deadline := time.Now().Add(grace)
		for {
			// Find retries for about half a second itself.
			err := goleak.Find(opts...)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leaktest: %v", err)
				return
			}
		}
	})
}
