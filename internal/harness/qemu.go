package harness

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
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
//
// With no Port, the harness listens itself (on a port the kernel picks) and
// hands QEMU the listening socket (-chardev socket,fd=3,...): there is no
// window between choosing a free port and QEMU binding it, and the chardev
// listens before QEMU has even started (connections wait in the backlog
// until QEMU accepts them). With a Port, as a test that restarts QEMU on
// the same port needs, QEMU binds it and StartQEMU waits until it listens.
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
	return qemuArgs(opts, fmt.Sprintf("host=%s,port=%d", cmp.Or(opts.Host, "127.0.0.1"), port))
}

// qemuArgs is QEMUArgs with the chardev's address options (host=,port= or
// fd=).
func qemuArgs(opts QEMUOptions, addr string) []string {
	chardev := "socket,id=charsmartcard0," + addr + ",server=on,wait=off"
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
	host := cmp.Or(opts.Host, "127.0.0.1")
	if opts.Port != 0 {
		p := Start(t, "qemu", exec.Command(bin, QEMUArgs(opts, opts.Port)...))
		addr := net.JoinHostPort(host, strconv.Itoa(opts.Port))
		WaitListening(t, p, addr, 10*time.Second)
		return &QEMU{Process: p, Addr: addr, Port: opts.Port}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("harness: a listening socket for QEMU's chardev: %v", err)
	}
	f, err := l.(*net.TCPListener).File()
	l.Close() // f is a copy of the socket; QEMU gets it as fd 3
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	cmd := exec.Command(bin, qemuArgs(opts, "fd=3")...)
	cmd.ExtraFiles = []*os.File{f}
	p := Start(t, "qemu", cmd)
	addr := l.Addr().(*net.TCPAddr)
	f.Close() // QEMU alone holds the socket: it stops listening when QEMU ends
	return &QEMU{Process: p, Addr: addr.String(), Port: addr.Port}
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
