// Package leaktest checks that a test leaves no goroutine behind.
package leaktest

import (
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// Check records the goroutines running now and registers a cleanup that
// fails t if, 5 s after the test (and its other cleanups registered later)
// ended, goroutines started since are still running. Call it first in a
// test, before anything that starts goroutines.
func Check(t testing.TB) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		var leaked []string
		for {
			leaked = leaked[:0]
			for id, stack := range goroutines() {
				if _, ok := before[id]; !ok && !ignorable(stack) {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(leaked) > 0 {
			sort.Strings(leaked)
			t.Errorf("leaktest: %d goroutines leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
	})
}

func ignorable(stack string) bool {
	for _, s := range []string{
		"testing.(*T).Run",
		"testing.tRunner.func1",
		"runtime.goexit0",
		"created by runtime.gc",
		"created by os/signal.Notify",
		"signal.signal_recv",
		"testing.runFuzzing",
		"testing.(*F).Fuzz",
		"internal/poll.runtime_pollWait", // net poller for a listener a parent owns is still caught below
	} {
		if strings.Contains(stack, s) && !strings.Contains(stack, "github.com/vscardkit") {
			return true
		}
	}
	return false
}

// goroutines maps goroutine ids to their stacks.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		first, _, _ := strings.Cut(g, "\n")
		// "goroutine 12 [running]:"
		f := strings.Fields(first)
		if len(f) >= 2 && f[0] == "goroutine" {
			out[f[1]] = g
		}
	}
	return out
}
