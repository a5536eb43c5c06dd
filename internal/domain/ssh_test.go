package domain

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

// TestSSH: qemu+ssh:// runs the system ssh to an sshd on a loopback port,
// which runs in the shared libvirtd's mount namespace, so that on "the VM
// host" /run/libvirt is that daemon's and virt-ssh-helper qemu:///system
// (what libvirt's ssh transport runs there) reaches it. The client's ssh
// uses a configuration of the test's own (its known_hosts, its key) through
// the URI's command option, as a user's ~/.ssh/config would. A key sshd
// does not accept gives a *UnreachableError carrying ssh's message.
func TestSSH(t *testing.T) {
	l := libvirtd.Get(t)
	sshd := harness.LookPath(t, "sshd (openssh-server)", "sshd")
	harness.LookPath(t, "ssh (openssh-client)", "ssh")
	keygen := harness.LookPath(t, "ssh-keygen (openssh-client)", "ssh-keygen")
	harness.LookPath(t, "virt-ssh-helper (libvirt-daemon)", "virt-ssh-helper")
	harness.LookPath(t, "nsenter (util-linux)", "nsenter")
	leaktest.Check(t)

	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	for _, k := range []string{"hostkey", "id", "other"} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", file(k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub := func(name string) string {
		b, err := os.ReadFile(file(name + ".pub"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	port := freePort()
	writeFile := func(name, text string, mode os.FileMode) {
		if err := os.WriteFile(file(name), []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("authorized_keys", pub("id"), 0o600)
	writeFile("sshd_config", fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
`, port, file("hostkey"), file("authorized_keys"), file("sshd.pid")), 0o600)
	writeFile("known_hosts", fmt.Sprintf("[127.0.0.1]:%d %s", port, pub("hostkey")), 0o600)
	writeFile("ssh_config", fmt.Sprintf(`UserKnownHostsFile %s
GlobalKnownHostsFile /dev/null
StrictHostKeyChecking yes
IdentitiesOnly yes
`, file("known_hosts")), 0o600)
	writeFile("ssh", fmt.Sprintf("#!/bin/sh\nexec ssh -F %s \"$@\"\n", file("ssh_config")), 0o700)
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	harness.Start(t, "sshd", l.Command(sshd, "-D", "-e", "-f", file("sshd_config")))
	harness.WaitTCP(t, "127.0.0.1:"+strconv.Itoa(port), 10*time.Second)

	name := "vsck-ssh"
	p := freePort()
	define(t, l, name, smartcardDomain(t, name, xmlconfig.Config{Port: p}))
	virsh(t, l, "start", "--paused", name)

	uri := fmt.Sprintf("qemu+ssh://root@127.0.0.1:%d/system?no_tty=1&keyfile=%s&command=%s", port, file("id"), file("ssh"))
	start := time.Now()
	c := dialT(t, uri)
	t.Logf("Dial %s took %v", uri, time.Since(start))
	d, err := c.Lookup(timeout(t, 30*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Target{Network: "tcp", Address: "127.0.0.1:" + strconv.Itoa(p), Listen: "127.0.0.1"}); d.State != Running || d.Target != want {
		t.Errorf("Lookup over ssh = %+v; want running, target %+v", d, want)
	}
	c.Close()

	bad := fmt.Sprintf("qemu+ssh://root@127.0.0.1:%d/system?no_tty=1&keyfile=%s&command=%s", port, file("other"), file("ssh"))
	_, err = Dial(timeout(t, 30*time.Second), bad, nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("Dial with a key sshd refuses = %v; want *UnreachableError with ssh's Permission denied", err)
	} else {
		t.Logf("%v", err)
	}
}
