package deb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
)

// overlayRoot is a copy-on-write view of this machine's root file system:
// an overlay with / below and a tmpfs above, mounted in a mount namespace
// that a holder process keeps alive. Commands run in it through nsenter
// and chroot, with fresh /tmp and /run (so no systemd is seen there) and the
// machine's /dev and /proc. Nothing they write reaches the machine, and the
// mounts go with the namespace when the holder exits.
type overlayRoot struct {
	dir     string // in the namespace: upper/, work/, root/
	nsenter string
	holder  *exec.Cmd
	stdin   io.WriteCloser
	stderr  bytes.Buffer
	done    chan struct{}
}

// setupScript mounts the overlay ($1, mount point; $2, a directory to show
// read-only at /tmp/share), prints ready and waits for its standard input
// to close. Go's exec makes the new namespace's mounts private.
const setupScript = `set -eu
d=$1
mount -t tmpfs -o mode=0755 vscardkit-deb "$d"
mkdir "$d/upper" "$d/work" "$d/root"
mount -t overlay -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" vscardkit-deb "$d/root"
mount --rbind /dev "$d/root/dev"
mount -t proc proc "$d/root/proc"
mount -t tmpfs -o mode=0755 tmpfs "$d/root/run"
mount -t tmpfs -o mode=1777 tmpfs "$d/root/tmp"
mkdir "$d/root/tmp/share"
mount --bind "$2" "$d/root/tmp/share"
mount -o remount,bind,ro "$d/root/tmp/share"
echo ready
exec cat >/dev/null
`

// chrootEnv is the whole environment of a command in the overlay.
var chrootEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C.UTF-8", "HOME=/root", "TERM=dumb", "DEBIAN_FRONTEND=noninteractive",
}

// newOverlayRoot mounts an overlay root, with share visible (read-only) at
// /tmp/share, and unmounts it when the test ends.
func newOverlayRoot(t *testing.T, share string) *overlayRoot {
	t.Helper()
	const peer = "a mount namespace with overlayfs (root)"
	harness.RequireRoot(t, peer)
	r := &overlayRoot{dir: t.TempDir(), nsenter: harness.LookPath(t, "util-linux", "nsenter"), done: make(chan struct{})}
	r.holder = exec.Command("sh", "-c", setupScript, "sh", r.dir, share)
	r.holder.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	r.holder.Stderr = &r.stderr
	var err error
	if r.stdin, err = r.holder.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := r.holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.holder.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		r.stdin.Close()
		err := r.holder.Wait()
		harness.Missing(t, peer, fmt.Errorf("mounting the overlay: %v\n%s", err, r.stderr.String()))
	}
	go func() {
		r.holder.Wait()
		close(r.done)
	}()
	t.Cleanup(r.close)
	// A root whose /usr or /var is a file system of its own shows them
	// empty in the overlay: no dpkg there.
	if _, err := r.run(t, "", "dpkg", "--version"); err != nil {
		harness.Missing(t, peer, fmt.Errorf("no dpkg in the overlay of / (is /usr or /var a separate file system?): %w", err))
	}
	return r
}

// close ends the holder (its standard input closes; SIGKILL after 10 s),
// and with it the namespace.
func (r *overlayRoot) close() {
	r.stdin.Close()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.holder.Process.Kill()
		<-r.done
	}
}

// ns returns a command that runs args in the namespace, outside the
// overlay (where / is the machine's and the overlay is under r.dir).
func (r *overlayRoot) ns(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, r.nsenter, append([]string{"-t", strconv.Itoa(r.holder.Process.Pid), "-m", "--"}, args...)...)
}

// command returns a command that runs args chrooted into the overlay.
func (r *overlayRoot) command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"chroot", r.dir + "/root", "env", "-i"}, chrootEnv...)
	return r.ns(ctx, append(full, args...)...)
}

// commandError is a command that failed, with what it printed.
type commandError struct {
	args   []string
	err    error
	output string
}

func (e *commandError) Error() string {
	return fmt.Sprintf("%s: %v\n%s", strings.Join(e.args, " "), e.err, e.output)
}

func (e *commandError) Unwrap() error { return e.err }

// run runs args in the overlay with stdin as its input and returns its
// standard output; an error carries standard error too.
func (r *overlayRoot) run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return output(r.command(ctx, args...), stdin, args)
}

// must is run that fails the test on an error.
func (r *overlayRoot) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := r.run(t, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func output(cmd *exec.Cmd, stdin string, args []string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &commandError{args: args, err: err, output: stdout.String() + stderr.String()}
	}
	return stdout.String(), nil
}

// exists reports whether path exists in the overlay (a dangling symlink
// counts).
func (r *overlayRoot) exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := r.run(t, "", "test", "-e", path, "-o", "-L", path)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return err == nil
}

// writeFile writes content to path in the overlay.
func (r *overlayRoot) writeFile(t *testing.T, path, content string) {
	t.Helper()
	if _, err := r.run(t, content, "sh", "-c", `mkdir -p "$(dirname "$1")" && cat >"$1"`, "sh", path); err != nil {
		t.Fatal(err)
	}
}

// changes returns what the overlay holds that the machine's root does not:
// each file, symlink and whiteout (a removed file) of the upper layer with
// its content's checksum or target, and each directory the machine lacks.
// Paths for which ignore returns true are left out.
func (r *overlayRoot) changes(t *testing.T, ignore func(string) bool) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// In the namespace / is the machine's: the overlay's lower layer.
	const list = `cd "$1/upper" && find . -mindepth 1 -printf '%y %P\n' | while read -r type p; do
	case $type in
	f) echo "f $p $(md5sum <"$p" | cut -d' ' -f1)" ;;
	l) echo "l $p -> $(readlink "$p")" ;;
	d) [ -d "/$p" ] || echo "d $p (new)" ;;
	c) echo "whiteout $p" ;;
	*) echo "$type $p" ;;
	esac
done`
	out, err := output(r.ns(ctx, "sh", "-c", list, "sh", r.dir), "", []string{"listing the overlay's changes"})
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || ignore(f[1]) {
			continue
		}
		changes = append(changes, l)
	}
	sort.Strings(changes)
	return changes
}

// dpkgRecords reports whether p (relative to /) is one of the records dpkg,
// adduser and man-db keep of any package's installation and removal: the
// package database, logs, the user and group files (which the test
// compares itself; adduser and deluser create /etc/subuid and /etc/subgid
// where they are missing) and man-db's index.
func dpkgRecords(p string) bool {
	for _, prefix := range []string{"var/lib/dpkg/", "var/log/", "var/cache/man/", "var/cache/debconf/"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	switch strings.TrimSuffix(p, "-") {
	case "etc/passwd", "etc/group", "etc/shadow", "etc/gshadow", "etc/.pwd.lock", "etc/subuid", "etc/subgid":
		return true
	}
	return path.Dir(p) == "var/lib/dpkg"
}
