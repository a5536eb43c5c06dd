package vpcd

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
)

var update = flag.Bool("update", false, "rewrite testdata/driver-session.frames from a real session")

// teeConn records everything read from the driver.
type teeConn struct {
	net.Conn
	mu  sync.Mutex
	got bytes.Buffer
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *teeConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.got.Bytes()...)
}

// TestDriverSession serves a card to the real vpcd driver in a private pcscd
// and uses it from OpenSC: the ATR, an APDU, removal.
func TestDriverSession(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{})
	atr := []byte{0x3B, 0x8B, 0x01, 0x00, 0x56, 0x76, 0x73, 0x63, 0x61, 0x72, 0x64, 0x00, 0x90, 0x00, 0x5D}
	h := &recorder{atr: atr, reply: func(_ context.Context, cmd []byte) ([]byte, error) {
		// Echo the command data (after the 5-byte short header).
		if len(cmd) > 5 {
			return append(append([]byte(nil), cmd[5:5+int(cmd[4])]...), 0x90, 0x00), nil
		}
		return []byte{0x6A, 0x82}, nil
	}}
	raw, err := net.Dial("tcp", p.VPCDAddr(0))
	if err != nil {
		t.Fatal(err)
	}
	conn := &teeConn{Conn: raw}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, conn, h) }()
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { cancel(); <-done }) }
	defer stop()

	var out string
	harness.WaitFor(t, 10*time.Second, "the card in reader 0", func() bool {
		out, err = p.OpenSCTool(t, "-r", "0", "--atr")
		return err == nil
	})
	if !strings.Contains(strings.ToLower(out), "3b:8b:01:00:56:76:73:63:61:72:64:00:90:00:5d") {
		t.Fatalf("opensc-tool --atr:\n%s", out)
	}
	out, err = p.OpenSCTool(t, "-r", "0", "-c", "default", "-s", "80:01:00:00:03:CA:FE:42")
	if err != nil || !strings.Contains(out, "CA FE 42") || !strings.Contains(out, "SW1=0x90, SW2=0x00") {
		t.Fatalf("opensc-tool -s: %v\n%s", err, out)
	}
	seen := strings.Join(h.seen(), " ")
	if !strings.Contains(seen, "on") || !strings.Contains(seen, "apdu") {
		t.Fatalf("handler saw %q", seen)
	}

	// Pulling the card: close the connection; vpcd reports it absent.
	stop()
	harness.WaitFor(t, 10*time.Second, "the card to leave reader 0", func() bool {
		_, err := p.OpenSCTool(t, "-r", "0", "--atr")
		return err != nil
	})

	frames := conn.bytes()
	var kinds []string
	for rest := frames; len(rest) > 0; {
		p, r, err := DecodeFrame(rest)
		if err != nil {
			t.Fatalf("the driver sent a stream that does not decode: %v", err)
		}
		kinds = append(kinds, Classify(p).String())
		rest = r
	}
	t.Logf("driver sent %d frames: %s", len(kinds), strings.Join(kinds, ", "))
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "driver-session.frames"), frames, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDialReconnect checks that a card with Reconnect comes back after pcscd
// is killed and restarted on the same port.
func TestDialReconnect(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{})
	atr := []byte{0x3B, 0x8B, 0x01, 0x00, 0x56, 0x76, 0x73, 0x63, 0x61, 0x72, 0x64, 0x00, 0x90, 0x00, 0x5D}
	h := &recorder{atr: atr, reply: func(context.Context, []byte) ([]byte, error) { return []byte{0x90, 0x00}, nil }}
	card, err := Dial(context.Background(), p.VPCDAddr(1), Config{Handler: h, Reconnect: true, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer card.Close()
	present := func() bool {
		_, err := p.OpenSCTool(t, "-r", "1", "--atr")
		return err == nil
	}
	harness.WaitFor(t, 10*time.Second, "the card in reader 1", present)

	p.Kill()
	harness.WaitFor(t, 10*time.Second, "the card to notice pcscd is gone", func() bool { return !card.Connected() })
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, "the card back in reader 1", present)
	if n := card.Sessions(); n < 2 {
		t.Fatalf("%d sessions after a pcscd restart", n)
	}
	if err := card.Close(); err != nil {
		t.Fatal(err)
	}
	if err := card.Wait(); err != nil {
		t.Fatalf("Wait after Close: %v", err)
	}
	harness.WaitFor(t, 10*time.Second, "the card to leave reader 1 after Close", func() bool { return !present() })
}

// TestDialWithoutReconnectEnds checks that a card without Reconnect stops
// when pcscd goes away and says why.
func TestDialWithoutReconnectEnds(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{})
	h := &recorder{atr: []byte{0x3B, 0x00}}
	card, err := Dial(context.Background(), p.VPCDAddr(0), Config{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	defer card.Close()
	harness.WaitFor(t, 10*time.Second, "vpcd to poll the card", func() bool { return len(h.seen()) > 0 })
	p.Kill()
	select {
	case <-card.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("card still running 10 s after pcscd was killed")
	}
	if err := card.Wait(); err == nil {
		t.Fatal("Wait = nil after the driver went away")
	}
}

// TestRemove checks that Remove answers two presence checks with "no card"
// and leaves the slot empty.
func TestRemove(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{})
	atr := []byte{0x3B, 0x8B, 0x01, 0x00, 0x56, 0x76, 0x73, 0x63, 0x61, 0x72, 0x64, 0x00, 0x90, 0x00, 0x5D}
	h := &recorder{atr: atr}
	card, err := Dial(context.Background(), p.VPCDAddr(0), Config{Handler: h, Reconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer card.Close()
	harness.WaitFor(t, 10*time.Second, "the card in reader 0", func() bool {
		_, err := p.OpenSCTool(t, "-r", "0", "--atr")
		return err == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := card.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("Remove ran into its deadline: vpcd never asked")
	}
	if err := card.Wait(); err != nil {
		t.Fatalf("Wait after Remove: %v", err)
	}
	if n := card.Sessions(); n != 2 {
		t.Fatalf("%d sessions, want 2 (the card and its second 'no card' connection)", n)
	}
	if out, err := p.OpenSCTool(t, "-r", "0", "--atr"); err == nil {
		t.Fatalf("pcscd reports a card after Remove:\n%s", out)
	}
	// That a card dialed at once after Remove is still seen as a removal
	// and an insertion is checked with PC/SC events in package reader
	// (TestWatchCards).
}

// TestDialFailed checks that a card with Reconnect reports its failed
// dials, counted from its last connection, while it keeps trying.
func TestDialFailed(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{})
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	failures := make(chan int, 1000)
	h := &recorder{atr: []byte{0x3B, 0x80, 0x80, 0x01, 0x01}, reply: func(context.Context, []byte) ([]byte, error) { return []byte{0x90, 0x00}, nil }}
	card, err := Dial(context.Background(), p.VPCDAddr(0), Config{
		Handler: h, Reconnect: true, MaxBackoff: 100 * time.Millisecond,
		DialFailed: func(err error, n int) {
			if err == nil {
				t.Errorf("DialFailed with a nil error")
			}
			failures <- n
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer card.Close()
	next := func() int {
		t.Helper()
		select {
		case n := <-failures:
			return n
		case <-time.After(10 * time.Second):
			t.Fatal("no failed dial reported")
			return 0
		}
	}
	if n := next(); n != 1 {
		t.Fatalf("first failure counted %d", n)
	}
	if n := next(); n != 2 {
		t.Fatalf("second failure counted %d", n)
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, "the card to connect", card.Connected)
	for len(failures) > 0 {
		<-failures // dials that failed before pcscd was back
	}
	p.Kill()
	if n := next(); n != 1 {
		t.Fatalf("the first failure after a connection counted %d", n)
	}
}
