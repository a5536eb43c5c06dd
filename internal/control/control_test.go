package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/control"
	"github.com/vscardkit/vscardkit/internal/leaktest"
)

type handler struct {
	mu      sync.Mutex
	rearmed []string
}

func (h *handler) Rearm(domain string) error {
	if domain == "nope" {
		return errors.New("no domain nope")
	}
	h.mu.Lock()
	h.rearmed = append(h.rearmed, domain)
	h.mu.Unlock()
	return nil
}

func (h *handler) Status() any { return map[string]int{"domains": 2} }

func serve(t *testing.T, path string, h control.Handler) {
	t.Helper()
	l, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.Serve(ctx, l, h, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func TestControl(t *testing.T) {
	leaktest.Check(t)
	path := filepath.Join(t.TempDir(), "control.sock")
	h := &handler{}
	serve(t, path, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := control.Do(ctx, path, control.Request{Op: control.OpRearm, Domain: "win11"}); err != nil {
		t.Fatal(err)
	}
	if len(h.rearmed) != 1 || h.rearmed[0] != "win11" {
		t.Fatalf("rearmed %v", h.rearmed)
	}
	var re *control.RefusedError
	if _, err := control.Do(ctx, path, control.Request{Op: control.OpRearm, Domain: "nope"}); !errors.As(err, &re) || !strings.Contains(re.Reason, "nope") {
		t.Fatalf("rearm of an unknown domain: %v", err)
	}
	resp, err := control.Do(ctx, path, control.Request{Op: control.OpStatus})
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]int
	if err := json.Unmarshal(resp.Status, &st); err != nil || st["domains"] != 2 {
		t.Fatalf("status %s, %v", resp.Status, err)
	}
	if _, err := control.Do(ctx, path, control.Request{Op: "reboot"}); !errors.As(err, &re) {
		t.Fatalf("unknown op: %v", err)
	}
	// Garbage and an endless line get an answer or a closed connection, and
	// the server goes on.
	for _, junk := range []string{"not json\n", strings.Repeat("x", 10000)} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(junk))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		c.Read(buf)
		c.Close()
	}
	if _, err := control.Do(ctx, path, control.Request{Op: control.OpStatus}); err != nil {
		t.Fatalf("after junk: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	// A second server on the same path is refused while the first lives.
	if _, err := control.Listen(path); !errors.Is(err, control.ErrInUse) {
		t.Fatalf("second Listen = %v, want ErrInUse", err)
	}
}

// A socket left by a process that died is replaced.
func TestControlStaleSocket(t *testing.T) {
	leaktest.Check(t)
	path := filepath.Join(t.TempDir(), "control.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody answers
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	serve(t, path, &handler{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := control.Do(ctx, path, control.Request{Op: control.OpStatus}); err != nil {
		t.Fatal(err)
	}
}
