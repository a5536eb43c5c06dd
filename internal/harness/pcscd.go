package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/procnet"
)

// A private pcscd with vsmartcard's vpcd reader.
//
// pcscd 1.9.9 always creates its socket at /run/pcscd/pcscd.comm (and its pid
// file at /run/pcscd/pcscd.pid); only the client library honours
// PCSCLITE_CSOCK_NAME. The harness therefore runs each pcscd in a private
// mount namespace in which a temporary directory is bind-mounted on
// /run/pcscd, with a private reader.conf directory (pcscd -c) holding one
// vpcd entry. vpcd listens on two TCP ports on all interfaces, one per slot
// (the DEVICENAME port for slot 0, the next one for slot 1), and pcscd names
// the slots "FRIENDLYNAME 00 00" and "FRIENDLYNAME 00 01".
//
// libpcsclite reads PCSCLITE_CSOCK_NAME once per process, at the first PC/SC
// call, and keeps it in a static buffer (getSocketName in winscard_msg.c).
// A test binary that makes PC/SC calls itself (package reader, ebfe/scard)
// can therefore use only one socket path in its whole life. Such tests start
// their daemon with PCSCDOptions.InProcess: every in-process daemon of a test
// binary uses the same directory (chosen once, see InProcessPCSC) and they
// run one at a time. Child processes get the socket of their own daemon
// through PCSCD.Env, so they have no such limit.

// PCSCSocketEnv is the environment variable that tells libpcsclite where the
// daemon's socket is.
const PCSCSocketEnv = "PCSCLITE_CSOCK_NAME"

// VPCDDriver is the vpcd IFD handler as Debian's vsmartcard-vpcd installs it.
const VPCDDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"

// pcscdRunDir is where pcscd puts its socket and pid file.
const pcscdRunDir = "/run/pcscd"

// maxSocketPath is the longest socket path libpcsclite can use (sun_path
// holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// PCSCDOptions configures a private pcscd. The zero value is a daemon with
// one vpcd reader named "Virtual PCD" on a free pair of ports, its own
// socket directory, and pcscd's default (errors only) logging.
type PCSCDOptions struct {
	// InProcess makes the daemon use this test binary's fixed socket
	// directory, the one InProcessPCSC points the process's libpcsclite
	// at, so that the test can make PC/SC calls itself. Only one
	// in-process daemon runs at a time: starting another waits until the
	// previous one is closed.
	InProcess bool
	// FriendlyName is the reader's FRIENDLYNAME; "" means "Virtual PCD".
	FriendlyName string
	// Port is vpcd's port for slot 0 (slot 1 uses Port+1); 0 picks a free
	// pair.
	Port int
	// Debug runs pcscd with -d (debug messages in Output).
	Debug bool
	// LogAPDUs runs pcscd with -a (every APDU in Output). Test cards only:
	// never with a real card and PIN.
	LogAPDUs bool
	// StartTimeout bounds each start; zero means 10 s.
	StartTimeout time.Duration
}

// PCSCD is a private pcscd serving one vpcd reader (two slots).
type PCSCD struct {
	// Dir is the directory bind-mounted on the daemon's /run/pcscd.
	Dir string
	// ConfDir is the daemon's reader.conf directory (pcscd -c).
	ConfDir string
	// Socket is the daemon's socket, the value of PCSCLITE_CSOCK_NAME for
	// its clients.
	Socket string
	// Ports are vpcd's ports for slot 0 and slot 1.
	Ports [2]int
	// Readers are the PC/SC names of slot 0 and slot 1.
	Readers [2]string
	// Started is how long the last start took until the daemon was ready
	// (socket accepting, both vpcd ports listening).
	Started time.Duration

	opts    PCSCDOptions
	ownDir  bool // Dir was created for this daemon alone
	release func()

	mu        sync.Mutex
	proc      *Process
	logs      []*Process // every run, for Output
	closeOnce sync.Once
	closeErr  error
}

// StartPCSCD starts a private pcscd for t and stops it when t ends. It
// reports the peer missing when pcscd, vpcd or root is missing.
func StartPCSCD(t testing.TB, opts PCSCDOptions) *PCSCD {
	t.Helper()
	p, err := NewPCSCD(context.Background(), opts)
	return startDaemon(t, "pcscd", p, err)
}

// NewPCSCD starts a private pcscd and waits until it is ready. The caller
// must call Close. It returns a *MissingPeerError when pcscd or the vpcd
// driver is not installed or the process is not root.
func NewPCSCD(ctx context.Context, opts PCSCDOptions) (*PCSCD, error) {
	if _, err := exec.LookPath("pcscd"); err != nil {
		return nil, &MissingPeerError{Peer: "pcscd", Err: err}
	}
	if _, err := os.Stat(VPCDDriver); err != nil {
		return nil, &MissingPeerError{Peer: "vpcd (vsmartcard-vpcd)", Err: err}
	}
	if _, err := exec.LookPath("mount"); err != nil {
		return nil, &MissingPeerError{Peer: "mount (util-linux)", Err: err}
	}
	if os.Geteuid() != 0 {
		return nil, &MissingPeerError{Peer: "pcscd", Err: errors.New("a private pcscd needs root (mount namespace)")}
	}
	if opts.FriendlyName == "" {
		opts.FriendlyName = "Virtual PCD"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 10 * time.Second
	}
	p := &PCSCD{opts: opts}
	if opts.InProcess {
		sock, err := InProcessPCSC()
		if err != nil {
			return nil, err
		}
		select {
		case inProcessSlot <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("harness: pcscd: waiting for the previous in-process pcscd: %w", ctx.Err())
		}
		p.release = func() { <-inProcessSlot }
		p.Dir = filepath.Dir(sock)
		if err := os.MkdirAll(p.Dir, 0o755); err != nil {
			p.release()
			return nil, fmt.Errorf("harness: pcscd: %w", err)
		}
	} else {
		dir, err := os.MkdirTemp("", "vsck-pcscd-")
		if err != nil {
			return nil, fmt.Errorf("harness: pcscd: %w", err)
		}
		p.Dir, p.ownDir = dir, true
	}
	p.Socket = filepath.Join(p.Dir, "pcscd.comm")
	conf, err := os.MkdirTemp("", "vsck-pcscd-conf-")
	if err != nil {
		p.cleanupDirs()
		return nil, fmt.Errorf("harness: pcscd: %w", err)
	}
	p.ConfDir = conf
	p.Readers = [2]string{opts.FriendlyName + " 00 00", opts.FriendlyName + " 00 01"}

	// A free pair of ports can be taken by someone else before pcscd binds
	// it; then pick another pair.
	for attempt := 0; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePortPair(); err != nil {
				p.cleanupDirs()
				return nil, err
			}
		}
		p.Ports = [2]int{port, port + 1}
		if err = p.writeConf(); err != nil {
			p.cleanupDirs()
			return nil, err
		}
		err = p.start(ctx)
		if err == nil {
			return p, nil
		}
		if opts.Port != 0 || attempt == 2 || !errors.Is(err, errPortsNotListening) {
			p.Close()
			return nil, err
		}
	}
}

// InProcessPCSC points this process's libpcsclite at the socket of the
// in-process private pcscd (PCSCDOptions.InProcess) and returns that socket's
// path. The first call chooses the path: the value of PCSCLITE_CSOCK_NAME if
// it is already set (it must not be in /run/pcscd), otherwise a new
// temporary directory's pcscd.comm, which it sets in the environment. Since
// libpcsclite reads the variable at the first PC/SC call and never again,
// the first call must come before any PC/SC call: call it from TestMain in a
// test binary whose tests use package reader or ebfe/scard directly.
// StartPCSCD calls it as well, which is early enough when the first PC/SC
// call of the binary follows the first StartPCSCD.
func InProcessPCSC() (string, error) {
	inProcessOnce.Do(func() {
		if v := os.Getenv(PCSCSocketEnv); v != "" {
			if filepath.Dir(filepath.Clean(v)) == pcscdRunDir {
				inProcessErr = fmt.Errorf("harness: pcscd: %s=%s is the system pcscd's socket; the harness needs a private one", PCSCSocketEnv, v)
				return
			}
			inProcessSocket = v
			return
		}
		dir, err := os.MkdirTemp("", "vsck-pcscd-")
		if err != nil {
			inProcessErr = fmt.Errorf("harness: pcscd: %w", err)
			return
		}
		inProcessSocket = filepath.Join(dir, "pcscd.comm")
		if err := os.Setenv(PCSCSocketEnv, inProcessSocket); err != nil {
			inProcessErr = fmt.Errorf("harness: pcscd: %w", err)
		}
	})
	if inProcessErr == nil && len(inProcessSocket) > maxSocketPath {
		return "", fmt.Errorf("harness: pcscd: socket path %q longer than %d bytes", inProcessSocket, maxSocketPath)
	}
	return inProcessSocket, inProcessErr
}

var (
	inProcessOnce   sync.Once
	inProcessSocket string
	inProcessErr    error
	inProcessSlot   = make(chan struct{}, 1)
)

// Env returns the environment assignment that points a child process's
// libpcsclite at this daemon ("PCSCLITE_CSOCK_NAME=...").
func (p *PCSCD) Env() string { return PCSCSocketEnv + "=" + p.Socket }

// OpenSCTool runs OpenSC's opensc-tool with args against the daemon (a
// PC/SC client in another process) and returns its combined output. It
// gives up after 20 s; a missing opensc-tool is Missing.
func (p *PCSCD) OpenSCTool(t testing.TB, args ...string) (string, error) {
	t.Helper()
	tool := LookPath(t, "OpenSC (opensc-tool)", "opensc-tool")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = append(cmd.Environ(), p.Env())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// VPCDAddr returns the address a card for slot (0 or 1) connects to.
func (p *PCSCD) VPCDAddr(slot int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Ports[slot]))
}

// PID returns the running daemon's process id, or 0.
func (p *PCSCD) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil || p.proc.Exited() {
		return 0
	}
	return p.proc.PID()
}

// Running reports whether the daemon runs.
func (p *PCSCD) Running() bool { return p.PID() != 0 }

// Output returns what the daemon printed, over all its runs.
func (p *PCSCD) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for i, pr := range p.logs {
		fmt.Fprintf(&b, "--- run %d (pid %d)\n%s", i+1, pr.PID(), pr.Output())
	}
	return b.String()
}

// Kill kills the daemon with SIGKILL, as a crash would, and waits for it to
// exit. Its socket file stays behind; clients get SCARD_E_NO_SERVICE.
func (p *PCSCD) Kill() {
	p.mu.Lock()
	pr := p.proc
	p.mu.Unlock()
	if pr != nil {
		pr.Kill()
	}
}

// Stop stops the daemon with SIGTERM (pcscd removes its socket and pid file)
// and waits for it to exit.
func (p *PCSCD) Stop() error {
	p.mu.Lock()
	pr := p.proc
	p.mu.Unlock()
	if pr == nil {
		return nil
	}
	pr.Stop()
	return nil
}

// Restart stops the daemon if it runs (SIGKILL) and starts it again with the
// same socket, configuration and ports, then waits until it is ready.
func (p *PCSCD) Restart() error {
	p.Kill()
	return p.start(context.Background())
}

// RestartAs stops the daemon if it runs (SIGKILL) and starts it again with
// the same socket and ports but the vpcd reader named friendlyName, so that
// the readers of the first run are gone and new ones are there (Readers is
// updated). pcscd 1.9.9 as Debian builds it (libudev hotplug) cannot add or
// remove a reader.conf reader while it runs, so this is the way to change
// the set of readers without USB.
func (p *PCSCD) RestartAs(friendlyName string) error {
	p.Kill()
	p.opts.FriendlyName = friendlyName
	p.Readers = [2]string{friendlyName + " 00 00", friendlyName + " 00 01"}
	if err := p.writeConf(); err != nil {
		return err
	}
	return p.start(context.Background())
}

// Close stops the daemon and removes its directories. An in-process daemon
// leaves the socket directory's path to the next one. Close is idempotent.
func (p *PCSCD) Close() error {
	p.closeOnce.Do(func() {
		p.Kill()
		p.cleanupDirs()
	})
	return p.closeErr
}

func (p *PCSCD) cleanupDirs() {
	if p.ConfDir != "" {
		os.RemoveAll(p.ConfDir)
	}
	if p.Dir != "" {
		// The in-process directory is removed too: the next in-process
		// daemon creates it again at the same path.
		os.RemoveAll(p.Dir)
	}
	if p.release != nil {
		p.release()
		p.release = nil
	}
}

// writeConf writes the reader.conf entry for vpcd.
func (p *PCSCD) writeConf() error {
	conf := fmt.Sprintf("FRIENDLYNAME %q\nDEVICENAME /dev/null:%d\nLIBPATH %s\nCHANNELID %d\n",
		p.opts.FriendlyName, p.Ports[0], VPCDDriver, p.Ports[0])
	if err := os.WriteFile(filepath.Join(p.ConfDir, "vpcd"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("harness: pcscd: %w", err)
	}
	return nil
}

var errPortsNotListening = errors.New("vpcd ports not listening")

// start starts the daemon and waits until it is ready.
func (p *PCSCD) start(ctx context.Context) error {
	// A killed daemon leaves its socket and pid file; a new pcscd would
	// refuse to start if the stale pid happened to be alive.
	os.Remove(p.Socket)
	os.Remove(filepath.Join(p.Dir, "pcscd.pid"))

	args := []string{"-f", "-c", p.ConfDir}
	if p.opts.Debug {
		args = append(args, "-d")
	}
	if p.opts.LogAPDUs {
		args = append(args, "-a")
	}
	// Go makes / private in the new namespace, so the bind mount is the
	// daemon's alone. /run/pcscd must exist as a mount point; pcscd would
	// create it anyway.
	script := `set -e
mkdir -p ` + pcscdRunDir + `
mount --bind "$1" ` + pcscdRunDir + `
shift
exec pcscd "$@"`
	cmd := exec.Command("sh", append([]string{"-c", script, "pcscd-ns", p.Dir}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	begin := time.Now()
	pr, err := StartProcess("pcscd", cmd)
	if err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	p.mu.Lock()
	p.proc = pr
	p.logs = append(p.logs, pr)
	p.mu.Unlock()
	if err := p.waitReady(ctx, pr); err != nil {
		pr.Kill()
		return err
	}
	p.Started = time.Since(begin)
	return nil
}

// waitReady waits until the daemon accepts on its socket and listens on
// both vpcd ports. pcscd starts the reader.conf readers (vpcd binds its
// ports then) before it creates its socket.
func (p *PCSCD) waitReady(ctx context.Context, pr *Process) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	for {
		if pr.Exited() {
			return fmt.Errorf("harness: pcscd exited during start (%v):\n%s", pr.Err(), pr.Output())
		}
		if c, err := net.Dial("unix", p.Socket); err == nil {
			c.Close()
			for _, port := range p.Ports {
				if ok, err := listeningBy(pr.PID(), port); err != nil {
					return fmt.Errorf("harness: pcscd: %w", err)
				} else if !ok {
					return fmt.Errorf("harness: pcscd: %w: port %d (in use by another program?)\n%s", errPortsNotListening, port, pr.Output())
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: pcscd not ready after %v: %w\n%s", p.opts.StartTimeout, ctx.Err(), pr.Output())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// freePortPair returns a port p such that p and p+1 were both free on all
// interfaces a moment ago.
func freePortPair() (int, error) {
	for range 50 {
		l1, err := net.Listen("tcp4", "0.0.0.0:0")
		if err != nil {
			return 0, fmt.Errorf("harness: finding free ports: %w", err)
		}
		port := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port+1))
		l1.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, errors.New("harness: no pair of adjacent free ports found")
}

// listeningBy reports whether process pid has a TCP socket listening on port.
func listeningBy(pid, port int) (bool, error) {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	listening, err := procnet.ListeningInodes(port)
	if err != nil {
		return false, err
	}
	for _, ino := range listening {
		if inodes[ino] {
			return true, nil
		}
	}
	return false, nil
}
