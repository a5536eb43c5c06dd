package leaktest

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB whose cleanups and errors the test runs and
// reads itself.
type recorder struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Helper() {}

func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestCheckFindsALeak(t *testing.T) {
	r := &recorder{TB: t}
	Check(r)
	stop := make(chan struct{})
	go func() { <-stop }()
	r.end()
	close(stop)
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "TestCheckFindsALeak") {
		t.Fatalf("a goroutine left running: errors %q", r.errs)
	}
}

func TestCheckWaitsForAGoroutineEnding(t *testing.T) {
	r := &recorder{TB: t}
	Check(r)
	stop := make(chan struct{})
	go func() { <-stop }()
	r.Cleanup(func() { close(stop) }) // runs before Check's, as t.Cleanup would
	r.end()
	if len(r.errs) != 0 {
		t.Fatalf("a goroutine that ends was reported: %q", r.errs)
	}
}
