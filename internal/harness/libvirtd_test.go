package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLibvirtdPrivate starts a private libvirtd and checks that it is
// private (its state lives in its own tree, the machine's directories are
// untouched), that it runs a guest, and that Close leaves nothing running.
func TestLibvirtdPrivate(t *testing.T) {
	l := StartLibvirtd(t, LibvirtdOptions{QEMUConf: "max_core = 0\n"})
	t.Logf("libvirtd started and answered in %v", l.Started)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	out, err := l.Virsh(ctx, "uri")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(strings.TrimSpace(out), "qemu:///system?socket="+l.Dir) {
		t.Errorf("virsh uri = %q, want qemu:///system with the private socket", out)
	}
	// The daemon reads the qemu.conf of its private tree.
	b, err := os.ReadFile(filepath.Join(l.Dir, "etc", "qemu.conf"))
	if err != nil || !strings.Contains(string(b), "max_core = 0") {
		t.Errorf("private qemu.conf lacks the extra setting: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "run", "libvirtd.pid")); err != nil {
		t.Errorf("daemon's PID file is not in the private tree: %v", err)
	}

	const name = "vsck-harness-test"
	dom := `<domain type='qemu'>
  <name>` + name + `</name>
  <memory unit='MiB'>32</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>`
	f := filepath.Join(t.TempDir(), "dom.xml")
	if err := os.WriteFile(f, []byte(dom), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Virsh(ctx, "define", f); err != nil {
		t.Fatal(err)
	}
	// The definition lands in the private /etc/libvirt, not the machine's.
	if _, err := os.Stat(filepath.Join(l.Dir, "etc", "qemu", name+".xml")); err != nil {
		t.Errorf("definition is not in the private tree: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/etc/libvirt/qemu", name+".xml")); err == nil {
		t.Errorf("definition leaked into the machine's /etc/libvirt/qemu")
	}
	start := time.Now()
	if _, err := l.Virsh(ctx, "start", "--paused", name); err != nil {
		t.Fatalf("%v\n%s", err, l.DomainLog(name))
	}
	t.Logf("virsh start --paused took %v", time.Since(start))
	state, err := l.Virsh(ctx, "domstate", name)
	if err != nil || strings.TrimSpace(state) != "paused" {
		t.Errorf("domstate = %q, %v; want paused", state, err)
	}
	pid := qemuPID(t, l, name)

	start = time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close (destroy the guest, stop libvirtd) took %v", time.Since(start))
	if ProcessAlive(pid) {
		t.Errorf("QEMU pid %d still runs after Close", pid)
	}
	if !l.proc.Exited() {
		t.Errorf("libvirtd still runs after Close")
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Errorf("private tree %s not removed: %v", l.Dir, err)
	}
}

func qemuPID(t *testing.T, l *Libvirtd, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.Dir, "run", "qemu", name+".pid"))
	if err != nil {
		t.Fatalf("no QEMU PID file: %v", err)
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	if !ProcessAlive(pid) {
		t.Fatalf("QEMU pid %d does not run", pid)
	}
	return pid
}

// TestLibvirtdCloseKillsLeftovers checks that Close kills a QEMU that the
// daemon did not stop (here: the daemon is killed first, as a crash would).
func TestLibvirtdCloseKillsLeftovers(t *testing.T) {
	l := StartLibvirtd(t, LibvirtdOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const name = "vsck-harness-leftover"
	f := filepath.Join(t.TempDir(), "dom.xml")
	dom := `<domain type='qemu'><name>` + name + `</name><memory unit='MiB'>32</memory>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices/></domain>`
	if err := os.WriteFile(f, []byte(dom), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Virsh(ctx, "create", "--paused", f); err != nil {
		t.Fatalf("%v\n%s", err, l.DomainLog(name))
	}
	pid := qemuPID(t, l, name)
	l.proc.Kill()
	if !ProcessAlive(pid) {
		t.Fatalf("QEMU died with the daemon; this test needs it to outlive it")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if ProcessAlive(pid) {
		t.Errorf("QEMU pid %d still runs after Close", pid)
	}
}

// BenchmarkLibvirtdStart measures starting a private libvirtd (with the
// shared capability cache warm after the first iteration) and stopping it.
func BenchmarkLibvirtdStart(b *testing.B) {
	for b.Loop() {
		l, err := NewLibvirtd(context.Background(), LibvirtdOptions{})
		if me := (*MissingPeerError)(nil); errors.As(err, &me) {
			Missing(b, me.Peer, me.Err)
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
