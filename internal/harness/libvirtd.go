package harness

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A private libvirtd.
//
// libvirtd in system mode (qemu:///system, the mode users run and the one
// whose argv matters) takes its paths from the build, not from XDG variables:
// /etc/libvirt for configuration, /run/libvirt for sockets and state,
// /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt. To run one per
// test binary without touching the machine's own libvirt, the harness starts
// libvirtd in a private mount namespace in which each of those five
// directories is a bind mount of a fresh temporary directory. The daemon's
// socket is then a file in that temporary tree that virsh reaches with
// qemu:///system?socket=PATH.
//
// The private qemu.conf runs QEMU as root with no security driver, no cgroups
// and no extra namespaces (none of which a test needs, and each of which can
// fail in a container), and writes QEMU's output to a plain log file so that
// virtlogd is not needed.

// libvirtdDirs are the system-mode directories each private libvirtd gets its
// own copy of, by the name of the subdirectory of Libvirtd.Dir that replaces
// it.
var libvirtdDirs = []struct{ sub, system string }{
	{"etc", "/etc/libvirt"},
	{"run", "/run/libvirt"},
	{"lib", "/var/lib/libvirt"},
	{"log", "/var/log/libvirt"},
	{"cache", "/var/cache/libvirt"},
}

// libvirtdConf is the private libvirtd.conf: local clients only, no
// authentication (the socket is root's alone), errors and warnings on stderr.
const libvirtdConf = `unix_sock_dir = "/run/libvirt"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:stderr"
`

// qemuConfBase is the start of the private qemu.conf.
const qemuConfBase = `user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
`

// LibvirtdOptions configures a private libvirtd. The zero value is a daemon
// with the base qemu.conf.
type LibvirtdOptions struct {
	// QEMUConf is appended to the private qemu.conf, one setting a line
	// (for example chardev_tls_x509_cert_dir). libvirtd reads it once, at
	// start.
	QEMUConf string
	// StartTimeout bounds how long the daemon may take to answer its first
	// call, which includes probing QEMU's capabilities (about 4 s on a cold
	// cache). Zero means 60 s.
	StartTimeout time.Duration
	// LibvirtdConf is appended to the private libvirtd.conf (for example
	// listen_tcp = 1 and tcp_port, with Listen).
	LibvirtdConf string
	// Listen starts the daemon with --listen, so that it opens the TCP
	// and TLS sockets libvirtd.conf enables (listen_tcp, listen_tls).
	Listen bool
}

// MissingPeerError reports that a program a private libvirtd needs is not
// available. Tests turn it into harness.Missing.
type MissingPeerError struct {
	Peer string // the program, as harness.Missing names it
	Err  error  // why it is not available
}

// Error says which peer is missing and why.
func (e *MissingPeerError) Error() string {
	return fmt.Sprintf("harness: peer %s is not available: %v", e.Peer, e.Err)
}

// Unwrap returns why the peer is missing.
func (e *MissingPeerError) Unwrap() error { return e.Err }

// Libvirtd is a private libvirtd (system mode, driver qemu) and the
// directory tree it runs in. Close stops it and everything it started.
type Libvirtd struct {
	// Dir is the root of the private tree: Dir/etc is the daemon's
	// /etc/libvirt, Dir/run its /run/libvirt, Dir/lib its /var/lib/libvirt,
	// Dir/log its /var/log/libvirt, Dir/cache its /var/cache/libvirt.
	Dir string
	// URI is the connection URI for virsh -c.
	URI string
	// Started is how long the daemon took to start and answer its first
	// call (QEMU capability probing included).
	Started time.Duration

	proc      *Process
	opts      LibvirtdOptions
	closeOnce sync.Once
	closeErr  error
}

// StartLibvirtd starts a private libvirtd for t and stops it when t ends. It
// reports the peer missing (skip, or failure under make test) when libvirtd,
// virsh or QEMU is not installed or the test does not run as root.
func StartLibvirtd(t testing.TB, opts LibvirtdOptions) *Libvirtd {
	t.Helper()
	l, err := NewLibvirtd(context.Background(), opts)
	return startDaemon(t, "libvirtd", l, err)
}

// NewLibvirtd starts a private libvirtd and waits until it answers. The
// caller must call Close. It returns a *MissingPeerError when a program it
// needs is not installed or the process is not root.
func NewLibvirtd(ctx context.Context, opts LibvirtdOptions) (*Libvirtd, error) {
	for _, p := range []struct{ peer, prog string }{
		{"libvirtd", "libvirtd"},
		{"virsh (libvirt-clients)", "virsh"},
		{"qemu-system-x86_64", "qemu-system-x86_64"},
		{"mount (util-linux)", "mount"},
	} {
		if _, err := exec.LookPath(p.prog); err != nil {
			return nil, &MissingPeerError{Peer: p.peer, Err: err}
		}
	}
	if os.Geteuid() != 0 {
		return nil, &MissingPeerError{Peer: "libvirtd", Err: errors.New("a system-mode libvirtd needs root")}
	}
	dir, err := os.MkdirTemp("", "vsck-libvirtd-")
	if err != nil {
		return nil, fmt.Errorf("harness: libvirtd: %w", err)
	}
	l := &Libvirtd{
		Dir:  dir,
		URI:  "qemu:///system?socket=" + filepath.Join(dir, "run", "libvirt-sock"),
		opts: opts,
	}
	if err := l.prepare(opts); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := l.start(ctx); err != nil {
		if l.proc != nil {
			l.Close()
		} else {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	return l, nil
}

// start starts the daemon on the prepared tree and waits until it answers.
func (l *Libvirtd) start(ctx context.Context) error {
	timeout := l.opts.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	start := time.Now()
	// The mount namespace is private (Go makes / MS_PRIVATE when it
	// unshares CLONE_NEWNS), so the bind mounts are the daemon's alone and
	// vanish with the last process in the namespace.
	var script strings.Builder
	script.WriteString("set -e\n")
	for i, d := range libvirtdDirs {
		fmt.Fprintf(&script, "mount --bind \"$%d\" %s\n", i+1, d.system)
	}
	listen := ""
	if l.opts.Listen {
		listen = " --listen"
	}
	script.WriteString("exec libvirtd" + listen + " -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid\n")
	args := []string{"-c", script.String(), "libvirtd-ns"}
	for _, d := range libvirtdDirs {
		args = append(args, filepath.Join(l.Dir, d.sub))
	}
	cmd := exec.Command("sh", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	p, err := StartProcess("libvirtd", cmd)
	if err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	l.proc = p

	if err := l.waitReady(ctx, timeout); err != nil {
		return err
	}
	l.Started = time.Since(start)
	return nil
}

// Socket returns the daemon's unix socket (the socket= of URI).
func (l *Libvirtd) Socket() string { return filepath.Join(l.Dir, "run", "libvirt-sock") }

// Command returns a command that runs name in the daemon's mount namespace
// (nsenter), where /run/libvirt and the other system directories are the
// daemon's: a program there that connects to qemu:///system (virsh,
// virt-ssh-helper) reaches this daemon.
func (l *Libvirtd) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--mount", "--target", strconv.Itoa(l.PID()), "--", name}, args...)...)
}

// Kill kills the daemon with SIGKILL, as a crash would, and waits for it to
// exit. Its QEMUs go on running (libvirt daemonizes them) and its tree stays;
// Restart starts the daemon again. Kill, Restart and the other methods must
// not be called concurrently.
func (l *Libvirtd) Kill() { l.proc.Kill() }

// Restart starts the daemon again on the same tree, killing it first if it
// still runs, and waits until it answers. The new daemon finds the domains
// its predecessor left running, as libvirtd does after a restart.
func (l *Libvirtd) Restart(ctx context.Context) error {
	if !l.proc.Exited() {
		l.proc.Kill()
	}
	return l.start(ctx)
}

// prepare creates the private tree, its configuration, the system mount
// points that may be missing, and seeds QEMU's capability cache.
func (l *Libvirtd) prepare(opts LibvirtdOptions) error {
	for _, d := range libvirtdDirs {
		if err := os.MkdirAll(filepath.Join(l.Dir, d.sub), 0o700); err != nil {
			return fmt.Errorf("harness: libvirtd: %w", err)
		}
		// The mount point must exist on the host; /run/libvirt does not
		// until some libvirt daemon has run.
		if err := os.MkdirAll(d.system, 0o755); err != nil {
			return fmt.Errorf("harness: libvirtd: creating mount point: %w", err)
		}
	}
	qemuConf := withNewline(qemuConfBase + opts.QEMUConf)
	for name, text := range map[string]string{
		"libvirtd.conf": withNewline(libvirtdConf + opts.LibvirtdConf),
		"qemu.conf":     qemuConf,
	} {
		if err := os.WriteFile(filepath.Join(l.Dir, "etc", name), []byte(text), 0o600); err != nil {
			return fmt.Errorf("harness: libvirtd: %w", err)
		}
	}
	seedCapsCache(filepath.Join(l.Dir, "cache", "qemu", "capabilities"))
	return nil
}

func withNewline(s string) string {
	if !strings.HasSuffix(s, "\n") {
		return s + "\n"
	}
	return s
}

// waitReady polls the daemon until a call succeeds, the daemon exits, or
// timeout passes. The first call makes libvirtd probe QEMU's capabilities.
func (l *Libvirtd) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sock := l.Socket()
	var lastErr error
	for {
		if l.proc.Exited() {
			return fmt.Errorf("harness: libvirtd exited during start (%v):\n%s", l.proc.Err(), l.Output())
		}
		if _, err := os.Stat(sock); err == nil {
			_, lastErr = l.Virsh(ctx, "version")
			if lastErr == nil {
				return nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: libvirtd did not answer within %v: %v\n%s", timeout, lastErr, l.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Virsh runs virsh against the daemon and returns its standard output. The
// error carries virsh's standard error.
func (l *Libvirtd) Virsh(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"-q", "-c", l.URI}, args...)
	cmd := exec.CommandContext(ctx, "virsh", full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("harness: virsh %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// MustVirsh runs virsh against the daemon (for up to a minute) and fails t
// on error, with the QEMU log of the domain named by the last argument.
func (l *Libvirtd) MustVirsh(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := l.Virsh(ctx, args...)
	if err != nil {
		log := ""
		if len(args) > 1 {
			log = l.DomainLog(args[len(args)-1])
		}
		t.Fatalf("%v\n%s%s", err, out, log)
	}
	return out
}

// Define defines the domain doc and, when t ends, destroys and undefines
// it.
func (l *Libvirtd) Define(t testing.TB, doc []byte) {
	t.Helper()
	var d struct {
		Name string `xml:"name"`
	}
	if err := xml.Unmarshal(doc, &d); err != nil || d.Name == "" {
		t.Fatalf("harness: a domain without a name (%v):\n%s", err, doc)
	}
	f := filepath.Join(t.TempDir(), d.Name+".xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := l.Virsh(ctx, "define", f); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, doc)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l.Virsh(ctx, "destroy", d.Name)
		l.Virsh(ctx, "undefine", d.Name)
	})
}

// BareDomainXML is a minimal domain without devices (TCG, 32 MiB, no disk).
func BareDomainXML(name string) []byte {
	return []byte("<domain type='qemu'><name>" + name + "</name><memory unit='MiB'>32</memory>" +
		"<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><memballoon model='none'/></devices></domain>")
}

// DomainLog returns the QEMU log libvirt wrote for the domain name (the
// command line it ran and QEMU's own messages).
func (l *Libvirtd) DomainLog(name string) string {
	b, err := os.ReadFile(filepath.Join(l.Dir, "log", "qemu", name+".log"))
	if err != nil {
		return fmt.Sprintf("(no log for domain %s: %v)", name, err)
	}
	return string(b)
}

// Output returns what the daemon printed (its errors and warnings).
func (l *Libvirtd) Output() string {
	if l.proc == nil {
		return ""
	}
	return l.proc.Output()
}

// PID returns the daemon's process id.
func (l *Libvirtd) PID() int { return l.proc.PID() }

// Close destroys the daemon's running domains, stops the daemon, kills any
// QEMU it left behind (by the PIDs in its state directory) and removes the
// private tree. It is safe to call more than once.
func (l *Libvirtd) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Libvirtd) close() error {
	var errs []error
	if l.proc != nil && !l.proc.Exited() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if out, err := l.Virsh(ctx, "list", "--name"); err == nil {
			for _, name := range strings.Fields(out) {
				if _, err := l.Virsh(ctx, "destroy", name); err != nil {
					errs = append(errs, err)
				}
			}
		}
		cancel()
	}
	if l.proc != nil {
		l.proc.Stop()
	}
	// QEMU runs outside the daemon's process group (libvirt daemonizes
	// it): kill what a crashed or stubborn daemon left, by PID file.
	if err := l.killQEMUs(); err != nil {
		errs = append(errs, err)
	}
	saveCapsCache(filepath.Join(l.Dir, "cache", "qemu", "capabilities"))
	if err := os.RemoveAll(l.Dir); err != nil {
		errs = append(errs, fmt.Errorf("harness: libvirtd: %w", err))
	}
	return errors.Join(errs...)
}

// killQEMUs kills the QEMU processes whose PID files are in the private
// state directory, checking each PID still runs a QEMU first.
func (l *Libvirtd) killQEMUs() error {
	files, _ := filepath.Glob(filepath.Join(l.Dir, "run", "qemu", "*.pid"))
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || !strings.Contains(filepath.Base(exe), "qemu") {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			pids = append(pids, pid)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for ProcessAlive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("harness: libvirtd: QEMU pid %d survived SIGKILL", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// The QEMU capability cache.
//
// On a cold cache libvirtd probes every QEMU binary (about 4 s here) before
// it answers the first call. The harness keeps the cache files between runs
// in the user's cache directory and seeds each private daemon with them.
// libvirtd checks each file itself (QEMU's and its own ctime, the kernel, the
// host CPU) and probes again when one is stale, so a stale seed costs only the
// probe it would have cost anyway.

// capsCacheDir returns the shared cache directory, or "" when there is none.
func capsCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "vscardkit", "libvirt-qemu-capabilities")
}

// seedCapsCache copies the shared cache into dst. Failures only cost time.
func seedCapsCache(dst string) {
	src := capsCacheDir()
	if src == "" {
		return
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return
	}
	copyXMLFiles(src, dst)
}

// saveCapsCache copies the private cache back into the shared one.
func saveCapsCache(src string) {
	dst := capsCacheDir()
	if dst == "" {
		return
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return
	}
	copyXMLFiles(src, dst)
}

// copyXMLFiles copies the *.xml files of src into dst, each by a rename so
// that concurrent test binaries never see half a file.
func copyXMLFiles(src, dst string) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || filepath.Ext(e.Name()) != ".xml" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			continue
		}
		tmp, err := os.CreateTemp(dst, ".tmp-*")
		if err != nil {
			return
		}
		_, werr := tmp.Write(b)
		cerr := tmp.Close()
		if werr != nil || cerr != nil || os.Rename(tmp.Name(), filepath.Join(dst, e.Name())) != nil {
			os.Remove(tmp.Name())
		}
	}
}

// SharedLibvirtd starts one private libvirtd on first use and lends it to
// every test of a test binary that asks; TestMain calls Close after m.Run.
// Tests that share it must use distinct domain names.
type SharedLibvirtd struct {
	// Options configure the daemon; set them before the first Get.
	Options LibvirtdOptions

	once sync.Once
	l    *Libvirtd
	err  error
}

// Get returns the shared daemon, starting it on the first call. A missing
// peer is reported with Missing; a daemon that fails to start fails t.
func (s *SharedLibvirtd) Get(t testing.TB) *Libvirtd {
	t.Helper()
	s.once.Do(func() {
		s.l, s.err = NewLibvirtd(context.Background(), s.Options)
	})
	if s.err != nil {
		if me := (*MissingPeerError)(nil); errors.As(s.err, &me) {
			Missing(t, me.Peer, me.Err)
		}
		t.Fatal(s.err)
	}
	return s.l
}

// Close stops the daemon if it was started.
func (s *SharedLibvirtd) Close() error {
	s.once.Do(func() { s.err = errors.New("harness: shared libvirtd closed before use") })
	if s.l == nil {
		return nil
	}
	return s.l.Close()
}
