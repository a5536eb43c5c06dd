package vpcd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// recorder is a Handler that records the requests it sees.
type recorder struct {
	mu     sync.Mutex
	events []string
	atr    []byte
	reply  func(ctx context.Context, cmd []byte) ([]byte, error)
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *recorder) ATR() []byte { r.add("atr"); return r.atr }
func (r *recorder) PowerOn()    { r.add("on") }
func (r *recorder) PowerOff()   { r.add("off") }
func (r *recorder) Reset()      { r.add("reset") }
func (r *recorder) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	r.add("apdu")
	return r.reply(ctx, cmd)
}

// driver plays the vpcd side of a net.Pipe. These tests cover what the real
// driver never sends (unknown control codes, empty frames) and failure
// paths; the conversation with the real driver is tested in
// integration_test.go.
type driver struct {
	t    *testing.T
	conn net.Conn
}

func (d driver) send(p []byte) {
	d.t.Helper()
	if err := WriteFrame(d.conn, p); err != nil {
		d.t.Fatalf("driver: %v", err)
	}
}

func (d driver) recv() []byte {
	d.t.Helper()
	p, err := ReadFrame(d.conn, nil)
	if err != nil {
		d.t.Fatalf("driver: %v", err)
	}
	return p
}

func startServe(t *testing.T, ctx context.Context, h Handler) (driver, chan error) {
	cardSide, driverSide := net.Pipe()
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- Serve(ctx, cardSide, h)
	}()
	t.Cleanup(func() { driverSide.Close(); <-finished })
	return driver{t, driverSide}, done
}

func TestServeConversation(t *testing.T) {
	atr := []byte{0x3B, 0x80, 0x80, 0x01, 0x01}
	h := &recorder{atr: atr, reply: func(_ context.Context, cmd []byte) ([]byte, error) {
		return append(append([]byte(nil), cmd...), 0x90, 0x00), nil
	}}
	d, done := startServe(t, context.Background(), h)

	d.send([]byte{CtrlGetATR})
	if got := d.recv(); !bytes.Equal(got, atr) {
		t.Fatalf("ATR % x", got)
	}
	d.send([]byte{CtrlPowerOn})
	d.send([]byte{3}) // unknown control code: ignored, no reply
	d.send(nil)       // empty frame: ignored, no reply
	d.send([]byte{CtrlReset})
	d.send([]byte{CtrlPowerOff})
	big := bytes.Repeat([]byte{0xA5}, 65000)
	cmd := append([]byte{0x80, 0x10, 0, 0, 0, 0xFD, 0xE8}, big...)
	d.send(cmd)
	if got := d.recv(); !bytes.Equal(got, append(append([]byte(nil), cmd...), 0x90, 0x00)) {
		t.Fatalf("echo reply of %d bytes differs", len(got))
	}
	d.conn.Close()
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("Serve after the driver closed: %v, want io.EOF", err)
	}
	want := []string{"atr", "on", "reset", "off", "apdu"}
	if got := h.seen(); !equal(got, want) {
		t.Fatalf("handler saw %v, want %v", got, want)
	}
}

func TestServeEmptyATR(t *testing.T) {
	h := &recorder{}
	d, _ := startServe(t, context.Background(), h)
	d.send([]byte{CtrlGetATR})
	if got := d.recv(); len(got) != 0 {
		t.Fatalf("absent card answered ATR % x, want an empty frame", got)
	}
}

func TestServeHandlerError(t *testing.T) {
	boom := errors.New("boom")
	h := &recorder{atr: []byte{0x3B, 0}, reply: func(context.Context, []byte) ([]byte, error) { return nil, boom }}
	d, done := startServe(t, context.Background(), h)
	d.send([]byte{0, 0xA4, 4, 0})
	err := <-done
	if !errors.Is(err, ErrHandler) || !errors.Is(err, boom) {
		t.Fatalf("Serve = %v, want ErrHandler wrapping the handler's error", err)
	}
	if _, err := ReadFrame(d.conn, nil); !errors.Is(err, io.EOF) {
		t.Fatalf("connection still open after a handler failure: %v", err)
	}
}

func TestServeOversizedReply(t *testing.T) {
	h := &recorder{reply: func(context.Context, []byte) ([]byte, error) { return make([]byte, MaxPayload+1), nil }}
	d, done := startServe(t, context.Background(), h)
	d.send([]byte{0, 0xA4, 4, 0})
	if err := <-done; !errors.Is(err, ErrHandler) {
		t.Fatalf("Serve = %v, want ErrHandler", err)
	}
}

// TestServeCancelWhileBlocked checks that cancelling ctx ends a Transmit that
// blocks (a mute or remote card) and closes the connection.
func TestServeCancelWhileBlocked(t *testing.T) {
	entered := make(chan struct{})
	h := &recorder{reply: func(ctx context.Context, _ []byte) ([]byte, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	d, done := startServe(t, ctx, h)
	d.send([]byte{0, 0xB0, 0, 0})
	<-entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v, want context.Canceled", err)
	}
	if _, err := ReadFrame(d.conn, nil); !errors.Is(err, io.EOF) {
		t.Fatalf("connection still open after cancel: %v", err)
	}
}

// TestServeCancelWhileReading checks that cancelling ctx ends a Serve that
// waits for the driver.
func TestServeCancelWhileReading(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	_, done := startServe(t, ctx, &recorder{})
	select {
	case err := <-done:
		t.Fatalf("Serve returned early: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v, want context.Canceled", err)
	}
}

func TestDialNoHandler(t *testing.T) {
	if _, err := Dial(context.Background(), "127.0.0.1:1", Config{}); !errors.Is(err, ErrNoHandler) {
		t.Fatalf("Dial without a handler: %v", err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
