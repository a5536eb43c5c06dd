// Package sdnotify tells systemd how a Type=notify service is doing, as
// sd_notify(3) does, without libsystemd: one datagram of newline-separated
// VAR=VALUE assignments to the unix socket named by $NOTIFY_SOCKET.
//
// Outside systemd (NOTIFY_SOCKET unset) every function does nothing and
// returns nil, so a command calls them unconditionally. Nothing here
// changes the environment: unlike sd_notify(3) with unset_environment set,
// NOTIFY_SOCKET stays for the process's whole life and its children.
//
// A service calls Ready once it does its job (for vscclient-go: the card
// is announced, or the serve loop has its domains), Reloading when SIGHUP
// starts a reload and Ready again when it is done, Stopping when it begins
// to shut down, and Status to say in one line what it is doing (shown by
// `systemctl status`).
//
// # References
//
//   - sd_notify(3), systemd 252: the assignments and the socket.
//   - systemd.service(5), Type=notify and NotifyAccess=.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// SocketEnv is the environment variable systemd sets to the socket of a
// service whose unit says Type=notify (or NotifyAccess=).
const SocketEnv = "NOTIFY_SOCKET"

// ErrUnsupportedSocket is returned for a NOTIFY_SOCKET that is neither a
// path (/run/systemd/notify) nor an abstract socket (@name), such as the
// vsock: addresses of newer systemd versions.
var ErrUnsupportedSocket = errors.New("sdnotify: unsupported " + SocketEnv + " address")

// Enabled reports whether a service manager listens for notifications.
func Enabled() bool { return os.Getenv(SocketEnv) != "" }

// Notify sends state, newline-separated VAR=VALUE assignments (READY=1,
// STATUS=...), to the service manager in one datagram. Without a
// NOTIFY_SOCKET it sends nothing and returns nil.
func Notify(state string) error {
	addr := os.Getenv(SocketEnv)
	if addr == "" {
		return nil
	}
	if !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		return fmt.Errorf("%w: %q", ErrUnsupportedSocket, addr)
	}
	// The net package turns a leading @ into the NUL byte of an abstract
	// socket's name.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Ready says the service has started and does its job (READY=1); after a
// reload it says the reload is done.
func Ready() error { return Notify("READY=1") }

// Reloading says the service is reloading its configuration (RELOADING=1,
// with, on Linux, the CLOCK_MONOTONIC time that Type=notify-reload units of
// systemd 253 and later want). Call Ready when the reload is done.
func Reloading() error {
	state := "RELOADING=1"
	if usec, ok := monotonicUsec(); ok {
		state += "\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10)
	}
	return Notify(state)
}

// Stopping says the service is shutting down (STOPPING=1).
func Stopping() error { return Notify("STOPPING=1") }

// Status sets the one-line status `systemctl status` shows (STATUS=...). A
// newline in s would start another assignment; it becomes a space.
func Status(s string) error {
	return Notify("STATUS=" + strings.NewReplacer("\r", " ", "\n", " ").Replace(s))
}

// Watchdog tells the service manager the service is alive (WATCHDOG=1);
// a unit with WatchdogSec= restarts the service when these stop coming.
func Watchdog() error { return Notify("WATCHDOG=1") }

// WatchdogInterval returns the WatchdogSec= of the service when the
// watchdog is on for this process ($WATCHDOG_USEC, and $WATCHDOG_PID, when
// set, is this process), and 0 otherwise. Send Watchdog more often than
// that, say every half of it. A malformed value is an error.
func WatchdogInterval() (time.Duration, error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil // the watchdog is another process's
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}
