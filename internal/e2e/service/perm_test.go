package service_test

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/configcli"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

// TestUnixChardevPermissions: libvirtd makes a domain's listening unix
// chardev itself, as root, mode 0775, so a client that is not root (the
// package's vscardkit user) may connect only to a socket of one of its
// groups. The package's answer (configcli.SocketDir): a setgid directory of
// the client's group, whose sockets take that group. Outside one the
// client is refused, and its log says why and what to do.
func TestUnixChardevPermissions(t *testing.T) {
	harness.RequireRoot(t, "libvirtd, and a client run as another user")
	nobody, err := user.Lookup("nobody")
	if err != nil {
		harness.Missing(t, "the user nobody", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	l := harness.StartLibvirtd(t, harness.LibvirtdOptions{})

	// A tree nobody may walk: the client's binary and two socket directories.
	top, err := os.MkdirTemp("", "vsck-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	setgid := filepath.Join(top, "sockets")
	plain := filepath.Join(top, "plain")
	for _, d := range []string{setgid, plain} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(setgid, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(setgid, os.ModeSetgid|0o770); err != nil { // as the package's postinst makes SocketDir
		t.Fatal(err)
	}
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(top, "vscclient-go")
	b, err := os.ReadFile(filepath.Join(harness.Commands(t), "vscclient-go"))
	if err == nil {
		err = os.WriteFile(exe, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, dir string
		ok        bool
	}{
		{"setgid directory", setgid, true},
		{"plain directory", plain, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dom := "perm-" + filepath.Base(tc.dir)
			sock := filepath.Join(tc.dir, dom+".sock")
			doc, err := xmlconfig.NewDomainXML(dom, xmlconfig.Config{Transport: xmlconfig.Unix, Path: sock})
			if err != nil {
				t.Fatal(err)
			}
			define(t, l, doc)
			virsh(t, l, "start", dom)
			t.Cleanup(func() { l.Virsh(timeout(t, 30*time.Second), "destroy", dom) })
			fi, err := os.Stat(sock)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			t.Logf("libvirtd made %s: uid %d gid %d mode %04o", sock, st.Uid, st.Gid, fi.Mode().Perm())

			cmd := exec.Command(exe, "--card", "soft", "--connect", "unix:"+sock)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
			cmd.Dir = top
			cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + top}
			c := harness.Start(t, "vscclient-go as nobody", cmd)
			want := `msg="card inserted"`
			if !tc.ok {
				want = "connect: permission denied"
			}
			harness.WaitFor(t, 20*time.Second, want+" in the client's log", func() bool {
				return strings.Contains(c.Output(), want) || c.Exited()
			})
			out := c.Output()
			if !strings.Contains(out, want) {
				t.Fatalf("the client's log lacks %s:\n%s", want, out)
			}
			if !tc.ok {
				for _, w := range []string{"the socket is root:root, mode 0775", "vscclient-go runs as nobody", "setgid directory", configcli.SocketDir} {
					if !strings.Contains(out, w) {
						t.Errorf("the refusal's hint lacks %q:\n%s", w, out)
					}
				}
			}
			if err := c.Stop(); err != nil {
				t.Errorf("vscclient-go on SIGTERM: %v\n%s", err, c.Output())
			}
		})
	}
}
