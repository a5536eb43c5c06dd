package harness

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/procnet"
)

// QEMUOptions configures StartQEMU. The zero value starts what libvirt 9
// starts for <smartcard mode='passthrough' type='tcp'>: a paused pc machine
// with usb-ccid and ccid-card-passthru on a TCP chardev at 127.0.0.1 and a
// free port, server=on, wait=off, without nodelay.
type QEMUOptions struct {
	// Host is the address the chardev listens on; "" means 127.0.0.1.
	Host string
	// Port is the chardev's port; 0 picks a free one.
	Port int
	// NoDelay adds nodelay=on to the chardev.
	NoDelay bool
	// ChardevExtra is appended to the chardev's options (e.g.
	// ",tls-creds=tls0").
	ChardevExtra string
	// Args are added to the command line (e.g. an -object for TLS).
	Args []string
}

// QEMU is a running qemu-system-x86_64 with a VSCard chardev.
type QEMU struct {
	*Process
	// Addr is the chardev's address, host:port.
	Addr string
	Port int
}

// QEMUBinary is the QEMU the harness runs.
const QEMUBinary = "qemu-system-x86_64"

// QEMUArgs returns the command line (without the program) for a paused VM
// with usb-ccid and ccid-card-passthru on the chardev that opts describe.
func QEMUArgs(opts QEMUOptions, port int) []string {
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	chardev := fmt.Sprintf("socket,id=charsmartcard0,host=%s,port=%d,server=on,wait=off", host, port)
	if opts.NoDelay {
		chardev += ",nodelay=on"
	}
	chardev += opts.ChardevExtra
	args := []string{
		"-machine", "pc,accel=tcg", "-nodefaults", "-display", "none", "-S", "-usb",
		"-device", "usb-ccid,id=ccid0,bus=usb-bus.0,port=1",
		"-chardev", chardev,
		"-device", "ccid-card-passthru,chardev=charsmartcard0,id=smartcard0,bus=ccid0.0",
	}
	return append(args, opts.Args...)
}

// StartQEMU starts QEMU as opts say and waits until its chardev listens. It
// reports the peer missing when qemu-system-x86_64 is not installed.
func StartQEMU(t testing.TB, opts QEMUOptions) *QEMU {
	t.Helper()
	bin := LookPath(t, "QEMU (qemu-system-x86)", QEMUBinary)
	port := opts.Port
	if port == 0 {
		port = FreePort(t)
	}
	p := Start(t, "qemu", exec.Command(bin, QEMUArgs(opts, port)...))
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	WaitListening(t, p, addr, 10*time.Second)
	return &QEMU{Process: p, Addr: addr, Port: port}
}

// WaitListening waits up to timeout for p to listen on addr, without
// connecting to it (a connection would count as a client for QEMU's
// chardev, or for the fake host), and fails the test with p's output when
// p exits first or the time runs out.
func WaitListening(t testing.TB, p *Process, addr string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := procnet.WaitListening(ctx, addr, p.Done()); err != nil {
		if p.Exited() {
			err = fmt.Errorf("%w: %v", err, p.Err())
		}
		t.Fatalf("harness: %s: %v\n%s", p.Name, err, p.Output())
	}
}

// Listening reports whether a TCP socket listens on addr's port, without
// connecting to it (see procnet.Listening).
func Listening(addr string) (bool, error) { return procnet.Listening(addr) }
