//go:build cgo

// The tests in this file talk to a real pcscd; a build without cgo has no
// PC/SC (nocgo_test.go tests what it does instead).

package reader_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/reader"
)

// cpuTime returns the CPU time (user and system) this process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// idleCPU returns the CPU time the process uses over d while nothing
// happens.
func idleCPU(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	before := cpuTime(t)
	time.Sleep(d)
	return cpuTime(t) - before
}

// TestWatcherIdleCPU measures the CPU a waiting watcher costs, with pcscd
// up (blocked in SCardGetStatusChange) and down (capped backoff). The bound
// (a tenth of one CPU) is a sanity check against a polling or spinning
// loop, which would use a whole CPU; the measured numbers are logged.
func TestWatcherIdleCPU(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	w := reader.Watch(context.Background(), nil)
	defer w.Close()
	expect(t, w,
		reader.Event{Kind: reader.ServiceUp},
		reader.Event{Kind: reader.ReaderAdded, Reader: p.Readers[0]},
		reader.Event{Kind: reader.ReaderAdded, Reader: p.Readers[1]})
	const interval = 3 * time.Second
	up := idleCPU(t, interval)
	p.Kill()
	expect(t, w,
		reader.Event{Kind: reader.ReaderRemoved, Reader: p.Readers[0]},
		reader.Event{Kind: reader.ReaderRemoved, Reader: p.Readers[1]},
		reader.Event{Kind: reader.ServiceDown})
	down := idleCPU(t, interval)
	t.Logf("process CPU over %v idle: %v with pcscd up, %v with pcscd down", interval, up, down)
	for what, used := range map[string]time.Duration{"up": up, "down": down} {
		if used > interval/10 {
			t.Errorf("watcher used %v of CPU in %v with pcscd %s: a busy loop?", used, interval, what)
		}
	}
}
