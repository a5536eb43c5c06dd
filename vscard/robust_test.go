package vscard_test

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/vscard"
)

// wire is a test host's end of a connection: it reads and writes whole
// messages, each written in one Write.
type wire struct {
	nc net.Conn
	br *bufio.Reader
}

func newWire(nc net.Conn) *wire { return &wire{nc: nc, br: bufio.NewReader(nc)} }

func (w *wire) ReadMessage() (vscard.Message, error) { return vscard.ReadMessage(w.br, 0) }

func (w *wire) WriteMessage(m vscard.Message) error {
	_, err := w.nc.Write(m.Append(nil))
	return err
}

// pipeHost runs the client side of the handshake over a net.Pipe, whose
// writes block until the other end reads: the host end is returned to the
// test, which reads and writes it with a Reader and a Writer.
func pipeHost(t *testing.T, cfg *vscard.ClientConfig) (*vscard.Client, net.Conn, *wire, *wire) {
	t.Helper()
	cn, hn := net.Pipe()
	r := newWire(hn)
	w := r
	done := make(chan error, 1)
	go func() {
		if _, err := r.ReadMessage(); err != nil {
			done <- err
			return
		}
		done <- w.WriteMessage(vscard.Message{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)})
	}()
	c, err := vscard.NewClient(ctxT(t), cn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hn.Close(); c.Close() })
	return c, hn, r, w
}

// A control message whose context ends while another write is stuck on a
// host that stopped reading returns with the context's error: it does not
// wait for the stuck write (which, here, has no timeout at all). This is
// what lets a client leave within its own deadline.
func TestControlHonoursContextWhileAWriteIsStuck(t *testing.T) {
	leaktest.Check(t)
	c, hn, _, w := pipeHost(t, &vscard.ClientConfig{WriteTimeout: -1})
	if err := w.WriteMessage(vscard.Message{Type: vscard.MsgAPDU, Payload: []byte{0, 0xB0, 0, 0}}); err != nil {
		t.Fatal(err)
	}
	cmd := <-c.Commands()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cmd.Respond([]byte{0x90, 0x00}) // blocks: the host reads nothing
	}()
	time.Sleep(50 * time.Millisecond) // most often, Respond now holds the write lock
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.RemoveCard(ctx, 0) }()
	select {
	case err := <-done:
		// Waiting for the lock ends with ctx's error; a write of its
		// own that the host does not read, with a write timeout.
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("RemoveCard = %v, want a deadline exceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("RemoveCard still waits for the stuck write 10 s after its context ended")
		hn.Close()
		<-done
	}
	hn.Close()
	c.Close()
	wg.Wait()
}

// countHandler counts log records by level.
type countHandler struct {
	mu     sync.Mutex
	counts map[slog.Level]int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[r.Level]++
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

func (h *countHandler) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[l]
}

// A host that floods messages the client does not expect gets one warning
// in the client's log, not one per message: a peer must not be able to fill
// the disk through the log.
func TestUnexpectedMessagesWarnOnce(t *testing.T) {
	leaktest.Check(t)
	h := &countHandler{counts: map[slog.Level]int{}}
	c, _, _, w := pipeHost(t, &vscard.ClientConfig{Logger: slog.New(h)})
	for i := range 1000 {
		m := vscard.Message{Type: vscard.MsgType(0x55), Payload: []byte{1, 2, 3}}
		if i%2 == 1 {
			m = vscard.Message{Type: vscard.MsgError, Payload: []byte{1}} // malformed
		}
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteMessage(vscard.Message{Type: vscard.MsgAPDU, Payload: []byte{0, 0xB0, 0, 0}}); err != nil {
		t.Fatal(err)
	}
	<-c.Commands()
	if n := h.count(slog.LevelWarn); n != 1 {
		t.Errorf("%d warnings for 1000 unexpected messages, want 1", n)
	}
	if n := h.count(slog.LevelDebug); n < 999 {
		t.Errorf("%d debug records for the 999 other unexpected messages", n)
	}
}

// Idle returns at once with nothing outstanding, waits while a command is
// unanswered (up to its context), and returns once the answer is written.
func TestClientIdle(t *testing.T) {
	leaktest.Check(t)
	c, _, r, w := pipeHost(t, nil)
	if err := c.Idle(ctxT(t)); err != nil {
		t.Fatalf("Idle with nothing outstanding: %v", err)
	}
	if err := w.WriteMessage(vscard.Message{Type: vscard.MsgAPDU, Payload: []byte{0, 0xB0, 0, 0}}); err != nil {
		t.Fatal(err)
	}
	cmd := <-c.Commands()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Idle(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Idle with a command outstanding: %v", err)
	}
	idle := make(chan error, 1)
	go func() { idle <- c.Idle(ctxT(t)) }()
	answered := make(chan error, 1)
	go func() { answered <- cmd.Respond([]byte{0x90, 0x00}) }()
	if m, err := r.ReadMessage(); err != nil || m.Type != vscard.MsgAPDU {
		t.Fatalf("the answer: %v %v", m, err)
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if err := <-idle; err != nil {
		t.Fatalf("Idle after the answer: %v", err)
	}
}
