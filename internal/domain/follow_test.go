package domain

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

// reported is a Status and when the report function got it.
type reported struct {
	Status
	at time.Time
}

// recorder collects what a Follower reports.
type recorder struct {
	ch chan reported
}

func newRecorder() *recorder { return &recorder{ch: make(chan reported, 64)} }

func (r *recorder) report(s Status) { r.ch <- reported{s, time.Now()} }

// until returns the reports up to and including the first that satisfies
// ok, failing t if none comes within d.
func (r *recorder) until(t *testing.T, d time.Duration, what string, ok func(Status) bool) []reported {
	t.Helper()
	var seen []reported
	deadline := time.After(d)
	for {
		select {
		case rep := <-r.ch:
			seen = append(seen, rep)
			t.Logf("report: %s", describe(rep.Status))
			if ok(rep.Status) {
				return seen
			}
		case <-deadline:
			t.Fatalf("no report of %s within %v (got %d others)", what, d, len(seen))
		}
	}
}

// quiet fails t if anything is reported within d.
func (r *recorder) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case rep := <-r.ch:
		t.Errorf("unexpected report: %s", describe(rep.Status))
	case <-time.After(d):
	}
}

func describe(s Status) string {
	var b strings.Builder
	b.WriteString(s.Name + ": " + s.State.String())
	if s.Domain != nil {
		if s.Domain.Err != nil {
			b.WriteString(" err=" + s.Domain.Err.Error())
		} else {
			b.WriteString(" target=" + s.Domain.Target.String())
		}
		b.WriteString(" id=" + strconv.Itoa(s.Domain.ID))
	}
	if s.Err != nil {
		b.WriteString(" err=" + s.Err.Error())
	}
	if s.Cause != "" {
		b.WriteString(" cause=" + s.Cause)
	}
	return b.String()
}

func runningOn(addr string) func(Status) bool {
	return func(s Status) bool {
		return s.State == Running && s.Domain != nil && s.Domain.Err == nil && s.Domain.Target.Address == addr
	}
}

func isState(st State) func(Status) bool { return func(s Status) bool { return s.State == st } }

// cpuTime returns the CPU time (user and system) this process used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	d, err := harness.CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestFollow follows one domain through its life under a private libvirtd:
// defined and stopped, started (the target of the live XML, promptly),
// destroyed, redefined with another port and started (the new target),
// libvirtd killed and restarted while it runs (Unreachable, then Running on
// the same target, never Stopped), stopped for a while (no CPU spent),
// undefined (NotFound), defined again; and nothing is left running when the
// context ends.
func TestFollow(t *testing.T) {
	leaktest.Check(t)
	l := harness.StartLibvirtd(t, harness.LibvirtdOptions{})
	t.Logf("private libvirtd started in %v", l.Started)
	const name = "vsck-follow"
	p1, p2 := freePort(), freePort()
	addr1, addr2 := "127.0.0.1:"+strconv.Itoa(p1), "127.0.0.1:"+strconv.Itoa(p2)
	define(t, l, name, smartcardDomain(t, name, xmlconfig.Config{Port: p1}))

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := newRecorder()
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, l.URI, name, &Options{Logger: log}, rec.report)
	}()

	first := rec.until(t, 10*time.Second, "the first status", func(Status) bool { return true })[0]
	if first.State != Stopped || first.Domain.Target.Address != addr1 || first.Cause != "" {
		t.Errorf("first status %s; want stopped, target %s", describe(first.Status), addr1)
	}

	// Started: Running with the live XML's target, promptly.
	startAndMeasure := func(addr string) {
		t.Helper()
		before := time.Now()
		virsh(t, l, "start", "--paused", name)
		returned := time.Now()
		reps := rec.until(t, 10*time.Second, "running on "+addr, runningOn(addr))
		at := reps[len(reps)-1].at
		t.Logf("virsh start took %v; Running reported %v after virsh returned (%v after it was run)",
			returned.Sub(before), at.Sub(returned), at.Sub(before))
		if at.Sub(returned) > 5*time.Second {
			t.Errorf("Running reported %v after virsh start returned; want well under 5 s", at.Sub(returned))
		}
		if c := reps[len(reps)-1].Cause; !strings.HasPrefix(c, "started") && !strings.HasPrefix(c, "suspended") {
			t.Errorf("cause %q, want the started (or suspended) event", c)
		}
	}
	startAndMeasure(addr1)

	// Destroyed: Stopped.
	before := time.Now()
	virsh(t, l, "destroy", name)
	returned := time.Now()
	reps := rec.until(t, 10*time.Second, "stopped", isState(Stopped))
	at := reps[len(reps)-1].at
	t.Logf("virsh destroy took %v; Stopped reported %v after it returned", returned.Sub(before), at.Sub(returned))
	if at.Sub(returned) > 5*time.Second {
		t.Errorf("Stopped reported %v after virsh destroy returned; want well under 5 s", at.Sub(returned))
	}
	// The shutdown event (QEMU's, as libvirt stops it) may come first.
	if c := reps[len(reps)-1].Cause; c != "stopped (destroyed)" && !strings.HasPrefix(c, "shutdown") {
		t.Errorf("cause %q, want stopped (destroyed) or shutdown", c)
	}

	// Redefined with another port and started: the new target.
	f := t.TempDir() + "/redefined.xml"
	// The same UUID: libvirt refuses a second domain of the same name.
	redefined := bytes.Replace(smartcardDomain(t, name, xmlconfig.Config{Port: p2}),
		[]byte("</name>"), []byte("</name>\n  <uuid>"+first.Domain.UUID+"</uuid>"), 1)
	if err := os.WriteFile(f, redefined, 0o600); err != nil {
		t.Fatal(err)
	}
	virsh(t, l, "define", f)
	startAndMeasure(addr2)
	rec.quiet(t, 300*time.Millisecond)

	// libvirtd killed while the domain runs: Unreachable, then, once it
	// is back, Running on the same target, with no Stopped between.
	l.Kill()
	reps = rec.until(t, 10*time.Second, "unreachable", isState(Unreachable))
	var ue *UnreachableError
	if s := reps[len(reps)-1]; !errors.As(s.Err, &ue) || len(reps) != 1 {
		t.Errorf("after the kill: %d reports, the last %s; want one Unreachable with *UnreachableError", len(reps), describe(s.Status))
	}
	// A daemon that is down: Dial says so.
	if _, err := Dial(timeout(t, 10*time.Second), l.URI, nil); !errors.As(err, &ue) {
		t.Errorf("Dial to the killed daemon = %v; want *UnreachableError", err)
	} else {
		t.Logf("%v", err)
	}
	time.Sleep(500 * time.Millisecond) // a few retries meet the dead daemon
	restart := time.Now()
	if err := l.Restart(timeout(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	reps = rec.until(t, 15*time.Second, "running again on "+addr2, runningOn(addr2))
	t.Logf("libvirtd restarted and answered virsh in %v; Running reported %v after that",
		answered.Sub(restart), reps[len(reps)-1].at.Sub(answered))
	for _, r := range reps[:len(reps)-1] {
		if r.State != Unreachable {
			t.Errorf("between the kill and Running again: %s; want only Unreachable", describe(r.Status))
		}
	}

	// Stopped, and quiet: no retry loop, no CPU.
	virsh(t, l, "destroy", name)
	rec.until(t, 10*time.Second, "stopped", isState(Stopped))
	cpu0, wall0 := cpuTime(t), time.Now()
	rec.quiet(t, 3*time.Second)
	cpu, wall := cpuTime(t)-cpu0, time.Since(wall0)
	t.Logf("while the domain was stopped: %v CPU in %v (%.2f%%)", cpu, wall, 100*cpu.Seconds()/wall.Seconds())
	if cpu > wall/10 {
		t.Errorf("the test process used %v CPU in %v while the domain was stopped; want next to none", cpu, wall)
	}

	// Undefined: NotFound; defined again: Stopped.
	virsh(t, l, "undefine", name)
	reps = rec.until(t, 10*time.Second, "not found", isState(NotFound))
	var nf *NotFoundError
	if s := reps[len(reps)-1]; !errors.As(s.Err, &nf) || s.Cause != "undefined (removed)" {
		t.Errorf("after undefine: %s; want NotFound with *NotFoundError, cause undefined (removed)", describe(s.Status))
	}
	virsh(t, l, "define", f)
	reps = rec.until(t, 10*time.Second, "stopped", isState(Stopped))
	if s := reps[len(reps)-1]; s.Domain.Target.Address != addr2 || !strings.HasPrefix(s.Cause, "defined") {
		t.Errorf("after define: %s; want stopped, target %s, cause defined", describe(s.Status), addr2)
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow = %v, want context.Canceled", err)
	}
	t.Logf("Follow's log:\n%s", logs.String())
	if !strings.Contains(logs.String(), "libvirt unreachable") || !strings.Contains(logs.String(), "target=tcp://"+addr2) {
		t.Errorf("the info log lacks the outage or the target")
	}
}
