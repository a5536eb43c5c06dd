package domain

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		uri                         string
		transport, host, port, name string
		socket                      string
		remote                      bool
		addr                        string
	}{
		{uri: "", transport: "unix", name: "qemu:///system"},
		{uri: "qemu:///system", transport: "unix", name: "qemu:///system"},
		{uri: "qemu:///session", transport: "unix", name: "qemu:///session"},
		{uri: "qemu:///system?socket=/tmp/x/libvirt-sock", transport: "unix", name: "qemu:///system", socket: "/tmp/x/libvirt-sock"},
		{uri: "qemu+unix:///system?socket=/s", transport: "unix", name: "qemu:///system", socket: "/s"},
		{uri: "qemu+tcp://vmhost/system", transport: "tcp", host: "vmhost", name: "qemu:///system", remote: true, addr: "vmhost:16509"},
		{uri: "qemu+tcp://127.0.0.1:1234/system", transport: "tcp", host: "127.0.0.1", port: "1234", name: "qemu:///system", addr: "127.0.0.1:1234"},
		{uri: "qemu+tls://vmhost/system?pkipath=/p", transport: "tls", host: "vmhost", name: "qemu:///system", remote: true, addr: "vmhost:16514"},
		{uri: "qemu://vmhost/system", transport: "tls", host: "vmhost", name: "qemu:///system", remote: true, addr: "vmhost:16514"},
		{uri: "qemu+ssh://root@vmhost:2222/system", transport: "ssh", host: "vmhost", port: "2222", name: "qemu:///system", remote: true},
		{uri: "qemu+ssh://[::1]/system", transport: "ssh", host: "::1", name: "qemu:///system"},
		{uri: "qemu+ssh://localhost/system?name=qemu:///session", transport: "ssh", host: "localhost", name: "qemu:///session"},
		// Options this package does not know are the daemon's.
		{uri: "qemu:///system?foo=bar", transport: "unix", name: "qemu:///system?foo=bar"},
	} {
		u, err := parseURI(tc.uri)
		if err != nil {
			t.Errorf("parseURI(%q): %v", tc.uri, err)
			continue
		}
		if u.transport != tc.transport || u.host != tc.host || u.port != tc.port || u.name != tc.name || u.socket != tc.socket || u.remote() != tc.remote {
			t.Errorf("parseURI(%q) = transport %q host %q port %q name %q socket %q remote %v; want %q %q %q %q %q %v",
				tc.uri, u.transport, u.host, u.port, u.name, u.socket, u.remote(), tc.transport, tc.host, tc.port, tc.name, tc.socket, tc.remote)
		}
		if tc.addr != "" && u.addr() != tc.addr {
			t.Errorf("parseURI(%q).addr() = %q, want %q", tc.uri, u.addr(), tc.addr)
		}
	}
}

func TestParseURIRefuses(t *testing.T) {
	for _, uri := range []string{
		"qemu",
		"qemu+unix://host/system",
		"qemu+tcp:///system",
		"qemu+libssh2://host/system",
		"qemu+ext:///system",
		"qemu+ssh://u:secret@host/system",
		"qemu+tcp://host:99999/system",
		"qemu:///system?mode=sideways",
		"qemu+ssh://host/system?proxy=native&netcat=nc",
		"%zz",
	} {
		u, err := parseURI(uri)
		if err == nil && u.transport == transportSSH {
			_, err = sshArgs(u)
		}
		if !errors.Is(err, ErrInvalidURI) {
			t.Errorf("parseURI(%q) = %v, want ErrInvalidURI", uri, err)
		}
	}
}

// TestUnixSocketChoice: mode auto takes the modular daemon's socket when it
// exists, libvirtd's otherwise, in the user's runtime directory for a
// session URI of a user other than root.
func TestUnixSocketChoice(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	u, _ := parseURI("qemu:///system")
	if got := u.unixSocket(); got != "/var/run/libvirt/libvirt-sock" && got != "/var/run/libvirt/virtqemud-sock" {
		t.Errorf("system socket = %q", got)
	}
	u, _ = parseURI("qemu:///system?mode=direct")
	if got := u.unixSocket(); got != "/var/run/libvirt/virtqemud-sock" {
		t.Errorf("mode=direct socket = %q", got)
	}
	if os.Geteuid() == 0 {
		return // root's session URI uses the system socket, as libvirt does
	}
	u, _ = parseURI("qemu:///session")
	if got, want := u.unixSocket(), filepath.Join(dir, "libvirt", "libvirt-sock"); got != want {
		t.Errorf("session socket = %q, want %q", got, want)
	}
	os.MkdirAll(filepath.Join(dir, "libvirt"), 0o700)
	os.WriteFile(filepath.Join(dir, "libvirt", "virtqemud-sock"), nil, 0o600)
	if got, want := u.unixSocket(), filepath.Join(dir, "libvirt", "virtqemud-sock"); got != want {
		t.Errorf("session socket with virtqemud = %q, want %q", got, want)
	}
}

// TestSSHArgs: the ssh command line is libvirt's (virNetSocketNewConnectSSH).
func TestSSHArgs(t *testing.T) {
	u, err := parseURI("qemu+ssh://alice@vmhost:2222/system?keyfile=/k&no_tty=1")
	if err != nil {
		t.Fatal(err)
	}
	args, err := sshArgs(u)
	if err != nil {
		t.Fatal(err)
	}
	want := "ssh -p 2222 -l alice -i /k -T -e none -o BatchMode=yes -- vmhost"
	if got := strings.Join(args[:len(args)-1], " "); got != want {
		t.Errorf("ssh args = %q, want %q", got, want)
	}
	remote := args[len(args)-1]
	if !strings.HasPrefix(remote, "sh -c '") || !strings.Contains(remote, "virt-ssh-helper") || !strings.Contains(remote, "qemu:///system") || !strings.Contains(remote, "/var/run/libvirt/libvirt-sock") {
		t.Errorf("remote command = %q: want sh -c with virt-ssh-helper qemu:///system, else nc on libvirt-sock", remote)
	}
	u, _ = parseURI("qemu+ssh://vmhost/system?socket=/run/x/sock&command=/usr/bin/myssh")
	args, _ = sshArgs(u)
	remote = args[len(args)-1]
	if args[0] != "/usr/bin/myssh" || strings.Contains(remote, "virt-ssh-helper") || !strings.Contains(remote, "/run/x/sock") {
		t.Errorf("with socket= and command=: %q", args)
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote(`it's`); got != `'it'\''s'` {
		t.Errorf("shellQuote = %s", got)
	}
}
