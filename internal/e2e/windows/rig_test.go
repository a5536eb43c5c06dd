package windows_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/e2e/e2etest"
	"github.com/vscardkit/vscardkit/internal/guest"
	"github.com/vscardkit/vscardkit/internal/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupWine()
	harness.CleanupCommands()
	os.Exit(code)
}

const clientPkg = "./cmd/vscclient-go"

var logBootOnce sync.Once

// wine returns the test binary's Wine and logs, once, how long its prefix
// took to create.
func wine(t *testing.T) *harness.Wine {
	t.Helper()
	w := harness.StartWine(t)
	logBootOnce.Do(func() {
		t.Logf("Wine: prefix %s created in %v (wineserver start, wineboot --init%s)", w.Prefix, w.Boot.Round(time.Millisecond),
			map[bool]string{true: ", bcryptprimitives.dll stand-in", false: ""}[w.Shim])
	})
	return w
}

// clientExe builds vscclient-go.exe as make dist does (cgo, mingw-w64).
func clientExe(t *testing.T) string {
	t.Helper()
	exe, err := harness.BuildWindows(t, clientPkg, true)
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// client starts exe under w with args, at debug level and with a short
// reconnection backoff.
func client(t *testing.T, w *harness.Wine, exe string, args ...string) *harness.Process {
	t.Helper()
	args = append([]string{"--log-level", "debug", "--max-backoff", "200ms"}, args...)
	return harness.Start(t, "vscclient-go.exe (wine)", w.Command(exe, args...))
}

// waitLog waits until p's output holds want, failing t if p exits first.
func waitLog(t *testing.T, p *harness.Process, timeout time.Duration, want string) {
	t.Helper()
	harness.WaitFor(t, timeout, want+" in the client's log", func() bool {
		return strings.Contains(p.Output(), want) || p.Exited()
	})
	if !strings.Contains(p.Output(), want) {
		t.Fatalf("vscclient-go.exe exited (%v) before logging %s:\n%s", p.Err(), want, p.Output())
	}
}

// announced waits until QEMU acknowledged the client's card.
func announced(t *testing.T, p *harness.Process) {
	t.Helper()
	waitLog(t, p, 30*time.Second, `msg="card inserted"`)
}

// interrupt sends Ctrl-C to the program and checks that it leaves the host
// cleanly (card and reader removed, acknowledged) and exits 0.
func interrupt(t *testing.T, p *harness.Process, connected bool) {
	t.Helper()
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := p.WaitExit(ctx)
	out := p.Output()
	if err != nil && wineKilledOnExit(err, out) {
		// Wine's server SIGKILLs a process whose Windows threads are all
		// gone but whose unix process has not exited about half a second
		// later (server/process.c, start_sigkill_timer): on a loaded
		// machine, the unix side of an exit that Windows saw end. The
		// program had logged its last line, which it logs only on its way
		// to exit status 0.
		t.Logf("%v after Ctrl-C: %v, by Wine, after the client's last line (%q)", time.Since(sent).Round(time.Millisecond), err, "msg=stopped")
		err = nil
	}
	if err != nil {
		t.Fatalf("%v after Ctrl-C: %v (want exit status 0); the client's log ends:\n%s",
			time.Since(sent).Round(time.Millisecond), err, tail(out, 25))
	}
	for _, bad := range []string{"removing the card on exit", "removing the reader on exit"} {
		if strings.Contains(out, bad) {
			t.Errorf("the client logged %q on Ctrl-C:\n%s", bad, out)
		}
	}
	want := []string{`msg=stopped`}
	if connected {
		want = append(want, `msg="left the host"`)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("no %s in the log after Ctrl-C:\n%s", w, out)
		}
	}
}

// wineKilledOnExit reports whether err is a SIGKILL that came after the
// program's last log line, msg=stopped (the line it logs just before it
// returns exit status 0).
func wineKilledOnExit(err error, out string) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return false
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return strings.Contains(lines[len(lines)-1], "msg=stopped")
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// testImage is the default guest image (e2etest.Image).
func testImage(t testing.TB) guest.Image {
	t.Helper()
	return e2etest.Image(t)
}
