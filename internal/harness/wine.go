package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Wine runs Windows builds of the commands on this Linux machine.
//
// A test binary gets one private Wine prefix (WINEPREFIX, a temporary
// directory) and one wineserver for it, started by the harness in the
// foreground and persistent (wineserver -f -p), so that the prefix's
// services start once and every later program starts in a fraction of a
// second. The first wineboot of a new prefix is slow (Boot says how slow).
// The programs a test runs under Wine are Processes like any other: each
// `wine X.exe` execs Wine's loader, which becomes the Windows process, so
// its PID is the program's; SIGINT reaches a console program as Ctrl-C
// (CTRL_C_EVENT, os.Interrupt in Go) and SIGTERM ends it. CleanupWine (from
// TestMain) runs `wineserver -k`, which ends every process of the prefix
// (the services detach into their own sessions, out of reach of a process
// group), then waits for the server by its PID and removes the prefix.
//
// Debian 12's Wine 8.0 has no bcryptprimitives.dll, whose ProcessPrng Go
// 1.24 and later need before main runs ("fatal error:
// bcryptprimitives.dll not found"; Windows has it since Windows 8). When
// the new prefix lacks it, the harness builds a stand-in with mingw-w64
// (ProcessPrng over advapi32's RtlGenRandom) into the prefix's system32.
// It is test scaffolding for this Wine; Windows itself never sees it.

// WinePeer names Wine in missing-peer reports.
const WinePeer = "Wine (Debian packages wine and wine64)"

// MinGWPeer names the mingw-w64 cross compiler in missing-peer reports.
const MinGWPeer = "mingw-w64 (Debian package gcc-mingw-w64-x86-64)"

// MinGWCC is the mingw-w64 C compiler for windows/amd64.
const MinGWCC = "x86_64-w64-mingw32-gcc"

// Wine is the test binary's Wine prefix and its wineserver.
type Wine struct {
	// Prefix is the WINEPREFIX directory.
	Prefix string
	// Boot is how long creating the prefix took: the server's start,
	// wineboot --init, and the bcryptprimitives stand-in if one was
	// needed.
	Boot time.Duration
	// Shim reports that the prefix got the bcryptprimitives.dll stand-in.
	Shim bool

	wine      string
	serverBin string
	server    *Process
	env       []string
}

var wineState struct {
	mu     sync.Mutex
	w      *Wine
	err    error
	missed *MissingPeerError
}

// StartWine returns the test binary's Wine, creating its prefix at the
// first call, or reports Wine (or, when a stand-in DLL must be built,
// mingw-w64) missing. The prefix lives until CleanupWine.
func StartWine(t testing.TB) *Wine {
	t.Helper()
	wineState.mu.Lock()
	defer wineState.mu.Unlock()
	if wineState.w == nil && wineState.err == nil && wineState.missed == nil {
		wineState.w, wineState.err = newWine()
		if me := (*MissingPeerError)(nil); errors.As(wineState.err, &me) {
			wineState.missed, wineState.err = me, nil
		}
	}
	if me := wineState.missed; me != nil {
		Missing(t, me.Peer, me.Err)
	}
	if wineState.err != nil {
		t.Fatalf("harness: %v", wineState.err)
	}
	return wineState.w
}

// CleanupWine ends every process of the test binary's Wine prefix, stops
// its wineserver and removes the prefix; call it from TestMain after
// m.Run. It does nothing when no test used Wine.
func CleanupWine() {
	wineState.mu.Lock()
	defer wineState.mu.Unlock()
	if wineState.w != nil {
		if err := wineState.w.close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		wineState.w = nil
	}
}

func newWine() (*Wine, error) {
	start := time.Now()
	wine, err := exec.LookPath("wine")
	if err != nil {
		return nil, &MissingPeerError{Peer: WinePeer, Err: err}
	}
	loader := "/usr/lib/wine/wine64" // Debian's wine64 package
	if p, err := exec.LookPath("wine64"); err == nil {
		loader = p
	} else if _, err := os.Stat(loader); err != nil {
		return nil, &MissingPeerError{Peer: WinePeer, Err: fmt.Errorf("no 64-bit Wine loader (wine64): %w", err)}
	}
	server, err := exec.LookPath("wineserver")
	if err != nil {
		return nil, &MissingPeerError{Peer: WinePeer, Err: err}
	}
	prefix, err := os.MkdirTemp("", "vsck-wine-")
	if err != nil {
		return nil, fmt.Errorf("wine: %w", err)
	}
	w := &Wine{Prefix: prefix, wine: wine, serverBin: server}
	w.env = append(os.Environ(),
		"WINEPREFIX="+prefix,
		"WINEARCH=win64",
		"WINELOADER="+loader,
		"WINESERVER="+server,
		"WINEDEBUG=-all",
		// No Mono or Gecko installer, no desktop menu entries.
		"WINEDLLOVERRIDES=mscoree,mshtml,winemenubuilder.exe=d",
		// Console programs only: no window driver.
		"DISPLAY=", "WAYLAND_DISPLAY=",
	)
	// The wineserver first: it creates the prefix's server directory, and
	// the harness owns it by PID.
	cmd := exec.Command(server, "-f", "-p")
	cmd.Env = w.env
	if w.server, err = StartProcess("wineserver", cmd); err != nil {
		os.RemoveAll(prefix)
		return nil, fmt.Errorf("wine: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := w.run(ctx, "wineboot", "--init"); err != nil {
		w.close()
		return nil, fmt.Errorf("wine: wineboot --init: %w\n%s", err, out)
	}
	sys32 := filepath.Join(prefix, "drive_c", "windows", "system32")
	if _, err := os.Stat(filepath.Join(sys32, "bcryptprimitives.dll")); errors.Is(err, os.ErrNotExist) {
		if err := buildPRNGShim(ctx, sys32); err != nil {
			w.close()
			return nil, err
		}
		w.Shim = true
	}
	w.Boot = time.Since(start)
	return w, nil
}

// run runs a program of the prefix to its end (wineboot) and returns its
// output. The output goes to a file, not a pipe: the services wineboot
// starts inherit its stdout and stderr and outlive it, and a pipe would
// stay open until they end.
func (w *Wine) run(ctx context.Context, args ...string) ([]byte, error) {
	f, err := os.CreateTemp("", "vsck-wine-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd := exec.CommandContext(ctx, w.wine, args...)
	cmd.Env = w.env
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return out, err
}

// Env returns the environment the prefix's programs run with: this
// process's, plus WINEPREFIX, WINEDEBUG=-all and the rest.
func (w *Wine) Env() []string { return append([]string(nil), w.env...) }

// Command returns the command that runs the Windows program exe (a path on
// this machine) with args under the prefix; start it with Start. Add to
// its Env, don't replace it.
func (w *Wine) Command(exe string, args ...string) *exec.Cmd {
	return w.CommandContext(context.Background(), exe, args...)
}

// CommandContext is Command for a program run to its end (Run, Output),
// which is killed when ctx ends. Its WaitDelay is set: a Windows process
// the program started may hold its output pipes after it exited.
func (w *Wine) CommandContext(ctx context.Context, exe string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, w.wine, append([]string{exe}, args...)...)
	cmd.Env = w.Env()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Path returns how a Windows program under Wine names the absolute path p
// of this machine: Z: is Wine's drive for /, so /tmp/a/b is Z:\tmp\a\b.
func (w *Wine) Path(p string) string {
	return `Z:` + strings.ReplaceAll(filepath.Clean(p), "/", `\`)
}

func (w *Wine) close() error {
	var errs []error
	if w.server != nil && !w.server.Exited() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, w.serverBin, "-k")
		cmd.Env = w.env
		if out, err := cmd.CombinedOutput(); err != nil && !w.server.Exited() {
			errs = append(errs, fmt.Errorf("wine: wineserver -k: %w: %s", err, out))
		}
		select {
		case <-w.server.Done():
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("wine: wineserver (pid %d) still running 10 s after wineserver -k; killed", w.server.PID()))
			w.server.Kill()
		}
	}
	if err := os.RemoveAll(w.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("wine: %w", err))
	}
	return errors.Join(errs...)
}

// prngShim is bcryptprimitives.dll's ProcessPrng, the one function of it
// that the Go runtime calls, over RtlGenRandom (advapi32's
// SystemFunction036), which Wine 8 has. ProcessPrng never fails on
// Windows; a stand-in that cannot fill the buffer returns FALSE, and Go
// then throws.
const prngShim = `#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n)) return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
`

func buildPRNGShim(ctx context.Context, sys32 string) error {
	cc, err := exec.LookPath(MinGWCC)
	if err != nil {
		return &MissingPeerError{Peer: MinGWPeer, Err: fmt.Errorf("building bcryptprimitives.dll for Wine: %w", err)}
	}
	dir, err := os.MkdirTemp("", "vsck-prng-")
	if err != nil {
		return fmt.Errorf("wine: %w", err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "prng.c")
	if err := os.WriteFile(src, []byte(prngShim), 0o644); err != nil {
		return fmt.Errorf("wine: %w", err)
	}
	out, err := exec.CommandContext(ctx, cc, "-shared", "-O2", "-Wall", "-Werror", "-o",
		filepath.Join(sys32, "bcryptprimitives.dll"), src, "-ladvapi32").CombinedOutput()
	if err != nil {
		return fmt.Errorf("wine: building bcryptprimitives.dll: %w\n%s", err, out)
	}
	return nil
}
