package sdnotify_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/internal/sdnotify"
)

// listener is the service manager's end: a unixgram socket at addr (a path
// or @abstract), set as NOTIFY_SOCKET for the test.
type listener struct {
	t    *testing.T
	conn *net.UnixConn
}

func listen(t *testing.T, addr string) *listener {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv(sdnotify.SocketEnv, addr)
	return &listener{t: t, conn: c}
}

// next returns the next datagram.
func (l *listener) next() string {
	l.t.Helper()
	buf := make([]byte, 4096)
	l.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := l.conn.Read(buf)
	if err != nil {
		l.t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// none checks that nothing more arrived.
func (l *listener) none() {
	l.t.Helper()
	buf := make([]byte, 4096)
	l.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := l.conn.Read(buf); err == nil {
		l.t.Fatalf("unexpected notification %q", buf[:n])
	}
}

func abstractName(t *testing.T) string {
	return fmt.Sprintf("@vscardkit-sdnotify-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
}

func TestNotify(t *testing.T) {
	for _, kind := range []string{"path", "abstract"} {
		t.Run(kind, func(t *testing.T) {
			leaktest.Check(t)
			addr := filepath.Join(t.TempDir(), "notify")
			if kind == "abstract" {
				addr = abstractName(t)
			}
			l := listen(t, addr)
			if !sdnotify.Enabled() {
				t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
			}
			steps := []struct {
				call func() error
				want string
			}{
				{sdnotify.Ready, "READY=1"},
				{func() error { return sdnotify.Status("serving 3 domains") }, "STATUS=serving 3 domains"},
				// A newline must not smuggle in a second assignment.
				{func() error { return sdnotify.Status("bad\nREADY=1") }, "STATUS=bad READY=1"},
				{sdnotify.Watchdog, "WATCHDOG=1"},
				{sdnotify.Stopping, "STOPPING=1"},
				{func() error { return sdnotify.Notify("READY=1\nSTATUS=x") }, "READY=1\nSTATUS=x"},
			}
			for _, s := range steps {
				if err := s.call(); err != nil {
					t.Fatalf("sending %q: %v", s.want, err)
				}
				if got := l.next(); got != s.want {
					t.Errorf("got %q, want %q", got, s.want)
				}
			}
			l.none()
			if got := os.Getenv(sdnotify.SocketEnv); got != addr {
				t.Errorf("NOTIFY_SOCKET = %q after notifying, want %q left as it was", got, addr)
			}
		})
	}
}

func TestReloadingSendsMonotonicTime(t *testing.T) {
	l := listen(t, filepath.Join(t.TempDir(), "notify"))
	reload := func() int64 {
		t.Helper()
		if err := sdnotify.Reloading(); err != nil {
			t.Fatal(err)
		}
		got := l.next()
		rest, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
		if !ok {
			t.Fatalf("got %q, want RELOADING=1 and MONOTONIC_USEC", got)
		}
		usec, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			t.Fatalf("MONOTONIC_USEC=%q: %v", rest, err)
		}
		return usec
	}
	first := reload()
	const pause = 50 * time.Millisecond
	time.Sleep(pause)
	second := reload()
	// CLOCK_MONOTONIC counts from boot: far below the wall clock's
	// microseconds since 1970, and it moves with time.
	if first <= 0 || first > time.Now().UnixMicro()/2 {
		t.Errorf("MONOTONIC_USEC=%d does not look like CLOCK_MONOTONIC", first)
	}
	if d := time.Duration(second-first) * time.Microsecond; d < pause {
		t.Errorf("MONOTONIC_USEC moved %v over a %v pause", d, pause)
	}
}

func TestWithoutSocketNothingIsSent(t *testing.T) {
	t.Setenv(sdnotify.SocketEnv, "")
	os.Unsetenv(sdnotify.SocketEnv)
	if sdnotify.Enabled() {
		t.Fatal("Enabled() = true without NOTIFY_SOCKET")
	}
	for _, f := range []func() error{sdnotify.Ready, sdnotify.Reloading, sdnotify.Stopping, sdnotify.Watchdog} {
		if err := f(); err != nil {
			t.Errorf("without NOTIFY_SOCKET: %v, want nil", err)
		}
	}
	if err := sdnotify.Status("x"); err != nil {
		t.Errorf("Status without NOTIFY_SOCKET: %v, want nil", err)
	}
}

func TestErrors(t *testing.T) {
	t.Setenv(sdnotify.SocketEnv, "vsock:2:1234")
	if err := sdnotify.Ready(); !errors.Is(err, sdnotify.ErrUnsupportedSocket) {
		t.Errorf("vsock address: %v, want ErrUnsupportedSocket", err)
	}
	t.Setenv(sdnotify.SocketEnv, filepath.Join(t.TempDir(), "nobody-listens"))
	err := sdnotify.Ready()
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("no listener: %v, want a *net.OpError", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	cases := []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"3000000", "", 3 * time.Second, false},
		{"3000000", self, 3 * time.Second, false},
		{"3000000", "1", 0, false}, // another process's watchdog
		{"soon", "", 0, true},
		{"0", "", 0, true},
	}
	for _, c := range cases {
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		got, err := sdnotify.WatchdogInterval()
		if got != c.want || (err != nil) != c.err {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, %v; want %v, error %v", c.usec, c.pid, got, err, c.want, c.err)
		}
	}
}

// TestSameAsSystemdNotify sends each notification with systemd's own
// systemd-notify(1) and with this package to the same socket, a path and an
// abstract one: the datagrams must be equal. It checks that "@name" means
// to this package what it means to systemd. systemd-notify needs no
// systemd as PID 1; --no-block skips its barrier, which only a real
// service manager answers.
func TestSameAsSystemdNotify(t *testing.T) {
	tool := harness.LookPath(t, "systemd", "systemd-notify")
	for _, kind := range []string{"path", "abstract"} {
		t.Run(kind, func(t *testing.T) {
			addr := filepath.Join(t.TempDir(), "notify")
			if kind == "abstract" {
				addr = abstractName(t)
			}
			l := listen(t, addr)
			cases := []struct {
				args []string
				ours func() error
			}{
				{[]string{"--ready"}, sdnotify.Ready},
				{[]string{"--status=reloading vscardkit.json"}, func() error { return sdnotify.Status("reloading vscardkit.json") }},
				{[]string{"STOPPING=1"}, sdnotify.Stopping},
				{[]string{"WATCHDOG=1"}, sdnotify.Watchdog},
			}
			for _, c := range cases {
				cmd := exec.Command(tool, append([]string{"--no-block"}, c.args...)...)
				cmd.Env = append(os.Environ(), sdnotify.SocketEnv+"="+addr)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("systemd-notify %v: %v\n%s", c.args, err, out)
				}
				theirs := l.next()
				if err := c.ours(); err != nil {
					t.Fatal(err)
				}
				if ours := l.next(); ours != theirs {
					t.Errorf("%v: systemd-notify sent %q, sdnotify %q", c.args, theirs, ours)
				}
			}
		})
	}
}
