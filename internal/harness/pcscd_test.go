package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// listReaders lists the readers of the daemon at p with OpenSC's opensc-tool,
// a client in another process.
func listReaders(t *testing.T, p *PCSCD) (string, error) {
	t.Helper()
	return p.OpenSCTool(t, "--list-readers")
}

func TestPCSCDPrivate(t *testing.T) {
	p := StartPCSCD(t, PCSCDOptions{FriendlyName: "Harness Test"})
	t.Logf("pcscd ready in %v; socket %s; vpcd ports %v", p.Started, p.Socket, p.Ports)
	if p.Ports[1] != p.Ports[0]+1 {
		t.Fatalf("ports %v", p.Ports)
	}
	out, err := listReaders(t, p)
	if err != nil {
		t.Fatalf("opensc-tool: %v\n%s", err, out)
	}
	for _, r := range p.Readers {
		if !strings.Contains(out, r) {
			t.Fatalf("reader %q not listed:\n%s", r, out)
		}
	}
	if r := p.Readers[0]; r != "Harness Test 00 00" {
		t.Fatalf("slot 0 is named %q", r)
	}

	sock, ports, pid := p.Socket, p.Ports, p.PID()
	p.Kill()
	if p.Running() {
		t.Fatal("running after Kill")
	}
	if out, err := listReaders(t, p); err == nil && strings.Contains(out, p.Readers[0]) {
		t.Fatalf("readers listed with pcscd killed:\n%s", out)
	}
	for _, port := range ports {
		if ok, _ := Listening(fmt.Sprintf("127.0.0.1:%d", port)); ok {
			t.Fatalf("port %d still listening after Kill", port)
		}
	}

	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("pcscd restarted in %v", p.Started)
	if p.Socket != sock || p.Ports != ports || p.PID() == pid || p.PID() == 0 {
		t.Fatalf("after Restart: socket %s ports %v pid %d; before: %s %v %d", p.Socket, p.Ports, p.PID(), sock, ports, pid)
	}
	out, err = listReaders(t, p)
	if err != nil || !strings.Contains(out, p.Readers[1]) {
		t.Fatalf("after Restart: %v\n%s", err, out)
	}
}

func TestPCSCDRestartAs(t *testing.T) {
	p := StartPCSCD(t, PCSCDOptions{FriendlyName: "Before"})
	ports := p.Ports
	if err := p.RestartAs("After"); err != nil {
		t.Fatal(err)
	}
	out, err := listReaders(t, p)
	if err != nil || !strings.Contains(out, "After 00 00") || strings.Contains(out, "Before") || p.Ports != ports || p.Readers[1] != "After 00 01" {
		t.Fatalf("after RestartAs: %v, readers %q, ports %v\n%s", err, p.Readers, p.Ports, out)
	}
}

// TestPCSCDTwoAtOnce checks that two private daemons do not see each other.
func TestPCSCDTwoAtOnce(t *testing.T) {
	a := StartPCSCD(t, PCSCDOptions{FriendlyName: "Daemon A"})
	b := StartPCSCD(t, PCSCDOptions{FriendlyName: "Daemon B"})
	if a.Socket == b.Socket || a.Ports[0] == b.Ports[0] {
		t.Fatalf("shared socket or ports: %s %v / %s %v", a.Socket, a.Ports, b.Socket, b.Ports)
	}
	outA, errA := listReaders(t, a)
	outB, errB := listReaders(t, b)
	if errA != nil || errB != nil {
		t.Fatalf("opensc-tool: %v %v", errA, errB)
	}
	if !strings.Contains(outA, "Daemon A 00 00") || strings.Contains(outA, "Daemon B") ||
		!strings.Contains(outB, "Daemon B 00 00") || strings.Contains(outB, "Daemon A") {
		t.Fatalf("daemons mixed up:\nA:\n%s\nB:\n%s", outA, outB)
	}
}

// TestPCSCDInProcessSerialized checks that in-process daemons share one
// socket path (libpcsclite caches it per process) and run one at a time.
func TestPCSCDInProcessSerialized(t *testing.T) {
	sock, err := InProcessPCSC()
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewPCSCD(context.Background(), PCSCDOptions{InProcess: true})
	if err != nil {
		if me := (*MissingPeerError)(nil); errors.As(err, &me) {
			Missing(t, "pcscd", err)
		}
		t.Fatal(err)
	}
	if a.Socket != sock {
		t.Fatalf("in-process daemon at %s, want %s", a.Socket, sock)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b, err := NewPCSCD(ctx, PCSCDOptions{InProcess: true}); err == nil {
		b.Close()
		t.Fatal("a second in-process daemon started while the first runs")
	}
	a.Close()
	b, err := NewPCSCD(context.Background(), PCSCDOptions{InProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Socket != sock {
		t.Fatalf("second in-process daemon at %s, want %s", b.Socket, sock)
	}
	out, err := listReaders(t, b)
	if err != nil || !strings.Contains(out, b.Readers[0]) {
		t.Fatalf("opensc-tool: %v\n%s", err, out)
	}
}

// BenchmarkPCSCDStart measures how long a private pcscd takes to be ready.
func BenchmarkPCSCDStart(b *testing.B) {
	for b.Loop() {
		p, err := NewPCSCD(context.Background(), PCSCDOptions{})
		if err != nil {
			if me := (*MissingPeerError)(nil); errors.As(err, &me) {
				Missing(b, "pcscd", err)
			}
			b.Fatal(err)
		}
		p.Close()
	}
}
