package faults_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupCommands()
	os.Exit(code)
}

// rssBound is the most memory vscclient-go may ever hold (its peak resident
// set, VmHWM), whatever a fault does. It starts near 20 MiB; a flood of
// 64 KiB messages that it buffered would pass the bound within a second.
const rssBound = 64 << 20

// Commands the tests send.
var (
	selectPIV = []byte{0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00}
	statusCmd = []byte{0x80, 0x18, 0x00, 0x00, 0x00} // the test card's STATUS
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startClient starts the vscclient-go binary with args; env nil means this
// process's environment.
func startClient(t *testing.T, env []string, args ...string) *harness.Process {
	t.Helper()
	cmd := exec.Command(filepath.Join(harness.Commands(t), "vscclient-go"), slices.Clip(args)...)
	cmd.Env = env
	return harness.Start(t, "vscclient-go", cmd)
}

// hostPort splits addr for vscclient-go's HOST PORT arguments.
func hostPort(addr string) []string {
	h, p, _ := net.SplitHostPort(addr)
	return []string{h, p}
}

func waitEvent(t *testing.T, srv *vscardtest.Server, d time.Duration, kinds ...vscardtest.EventKind) vscardtest.Event {
	t.Helper()
	e, err := srv.WaitEvent(ctxT(t, d), kinds...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// peakOf is peakRSS for a process that must be alive.
func peakOf(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := harness.PeakRSS(pid)
	if err != nil {
		t.Fatalf("reading the memory of pid %d: %v", pid, err)
	}
	return n
}

// sampler samples a process's peak memory every 20 ms until stopped, so
// that the report can show the peak even if the process dies.
type sampler struct {
	mu   sync.Mutex
	peak int64
	stop chan struct{}
	done chan struct{}
}

func sample(t *testing.T, pid int) *sampler {
	s := &sampler{peak: peakOf(t, pid), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			if n, err := harness.PeakRSS(pid); err == nil {
				s.mu.Lock()
				s.peak = max(s.peak, n)
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(s.Stop)
	return s
}

// Stop stops sampling; it is idempotent.
func (s *sampler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *sampler) Peak() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// row is one line of the fault table.
type row struct {
	fault     string
	hostSaw   string
	recovered time.Duration
	peak      int64
}

// report checks the memory bound and logs the row in the shape the issue's
// table collects (go test -v ./internal/e2e/faults | grep 'FAULT |').
func report(t *testing.T, r row) {
	t.Helper()
	rec := r.recovered.Round(time.Millisecond)
	if r.recovered < time.Millisecond {
		rec = r.recovered.Round(10 * time.Microsecond)
	}
	t.Logf("FAULT | %s | %s | recovered in %v | peak RSS %.1f MiB", r.fault, r.hostSaw, rec, float64(r.peak)/(1<<20))
	if r.peak > rssBound {
		t.Errorf("vscclient-go peaked at %d bytes, over the bound of %d", r.peak, rssBound)
	}
}

// finish checks that the client is still running (no crash), then stops it
// with SIGTERM and checks that it leaves cleanly within 10 s.
func finish(t *testing.T, p *harness.Process) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("vscclient-go exited during the test: %v\n%s", p.Err(), p.Output())
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExit(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("vscclient-go after SIGTERM: %v\n%s", err, p.Output())
	}
	for _, bad := range []string{"panic:", "fatal error:", "DATA RACE"} {
		if strings.Contains(p.Output(), bad) {
			t.Fatalf("vscclient-go printed %q:\n%s", bad, p.Output())
		}
	}
}

// transmitOK sends cmd and wants a response ending in 9000.
func transmitOK(t *testing.T, srv *vscardtest.Server, cmd []byte) []byte {
	t.Helper()
	resp, err := srv.Transmit(ctxT(t, 20*time.Second), cmd)
	if err != nil {
		t.Fatalf("Transmit(%X): %v", cmd[:min(len(cmd), 8)], err)
	}
	if apdu.Response(resp).SW() != apdu.SWOK {
		t.Fatalf("Transmit(%X): %X", cmd[:min(len(cmd), 8)], resp)
	}
	return resp
}

// restartServer listens again on addr (a host that came back) and serves.
func restartServer(t *testing.T, addr string) *vscardtest.Server {
	t.Helper()
	var srv *vscardtest.Server
	harness.WaitFor(t, 5*time.Second, "the port free again", func() bool {
		var err error
		srv, err = vscardtest.Listen("tcp", addr)
		return err == nil
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// waitLog waits until the client's output holds s n times.
func waitLog(t *testing.T, p *harness.Process, d time.Duration, s string, n int) {
	t.Helper()
	harness.WaitFor(t, d, fmt.Sprintf("%d× %q in vscclient-go's log", n, s), func() bool {
		return strings.Count(p.Output(), s) >= n
	})
}

// hasSW reports whether resp ends in sw.
func hasSW(resp []byte, sw apdu.SW) bool {
	return len(resp) >= 2 && apdu.Response(resp).SW() == sw
}
