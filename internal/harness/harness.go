// Package harness starts the real peers vscardkit's tests run against (QEMU,
// pcscd with the vpcd reader, softhsm2, libvirtd) on free ports and in
// temporary directories, and stops each by PID when the test ends.
//
// Under a plain `go test` a missing peer skips the test with a message that
// names it. When the environment variable VSCARDKIT_REQUIRE_PEERS is set to 1
// (as `make test` does) a missing peer fails the test instead, so a CI run
// cannot pass by skipping what it was meant to check.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv names the environment variable that turns a missing peer from a
// skip into a failure.
const RequireEnv = "VSCARDKIT_REQUIRE_PEERS"

// Required reports whether missing peers fail tests rather than skip them.
func Required() bool {
	v, _ := strconv.ParseBool(os.Getenv(RequireEnv))
	return v
}

// Missing reports that peer is not available, because of err. Under a plain
// `go test` it skips t; with VSCARDKIT_REQUIRE_PEERS=1 it fails t. It does not
// return.
func Missing(t testing.TB, peer string, err error) {
	t.Helper()
	msg := fmt.Sprintf("peer %s is not available: %v", peer, err)
	if Required() {
		t.Fatalf("%s (%s=1: a missing peer is a failure; run `make deps`)", msg, RequireEnv)
	}
	t.Skipf("%s (skipping; set %s=1 to make this a failure)", msg, RequireEnv)
}

// LookPath returns the path of the program name, which belongs to peer, or
// reports the peer missing.
func LookPath(t testing.TB, peer, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, peer, err)
	}
	return p
}

// RequireFile reports peer missing unless path exists.
func RequireFile(t testing.TB, peer, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, peer, err)
	}
}

// RequireRoot reports peer missing unless the test runs as root (needed for
// mount namespaces and libvirtd).
func RequireRoot(t testing.TB, peer string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, peer, errors.New("needs root"))
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitTCP waits until something accepts connections on addr, or fails t after
// timeout.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	if err := waitTCP(addr, timeout); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitFor polls cond every 10 ms until it returns true, or fails t with what
// after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("harness: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Process is a program a test started. It runs in its own process group and
// is stopped by PID (the group's) when the test ends.
type Process struct {
	Name string
	Cmd  *exec.Cmd

	out  *logBuffer
	done chan struct{}
	err  error // set before done is closed
}

// maxLog bounds how much of a peer's output a Process keeps.
const maxLog = 1 << 20

// Start starts cmd, named name in messages, capturing its stdout and stderr
// (unless the caller set them), and registers a cleanup that stops it. When
// the test failed, the cleanup logs the program's output.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p, err := StartProcess(name, cmd)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- output of %s (pid %d):\n%s", p.Name, p.PID(), p.Output())
		}
	})
	return p
}

// StartProcess is Start without a test: the caller must call Stop.
func StartProcess(name string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{Name: name, Cmd: cmd, out: &logBuffer{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.out
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Output returns what the program printed so far (at most the last MiB).
func (p *Process) Output() string { return p.out.String() }

// Done is closed when the program has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the program exited; valid once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the program has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the program's process group.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	return syscall.Kill(-p.PID(), sig)
}

// Kill kills the program's process group with SIGKILL and waits for it.
func (p *Process) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM to the program's process group, waits up to 5 s for it
// to exit, then kills it. It returns how the program exited.
func (p *Process) Stop() error {
	if !p.Exited() {
		p.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.Kill()
		}
	}
	return p.err
}

// WaitExit waits up to timeout for the program to exit by itself.
func (p *Process) WaitExit(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logBuffer is a concurrency-safe buffer that keeps the last maxLog bytes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - maxLog; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is a peer a test starts and must close: pcscd, libvirtd.
type daemon interface {
	Output() string
	Close() error
}

// startDaemon finishes a StartXxx: it reports a *MissingPeerError as a
// missing peer, fails t on other errors, and registers the cleanup that
// closes d (logging its output when t failed).
func startDaemon[D daemon](t testing.TB, name string, d D, err error) D {
	t.Helper()
	if err != nil {
		if me := (*MissingPeerError)(nil); errors.As(err, &me) {
			Missing(t, me.Peer, me.Err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, d.Output())
		}
		if err := d.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return d
}
