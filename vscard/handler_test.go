package vscard_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/vscard"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

func handlerConfig(h vscard.HandlerFunc) *vscard.DialConfig {
	return &vscard.DialConfig{ClientConfig: vscard.ClientConfig{Handler: h}}
}

// A Handler answers every command, in order, and Commands stays silent.
func TestHandlerAnswers(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	var n int
	srv, c := announcedWith(t, handlerConfig(func(cmd *vscard.Command) {
		n++ // one call at a time: no lock needed
		cmd.Respond(append(append([]byte(nil), cmd.APDU[4:]...), 0x90, 0x00))
	}))
	for i := range 500 {
		cmd := []byte{0x00, 0xEE, 0x00, 0x00, byte(i), byte(i >> 8)}
		resp, err := srv.Transmit(ctx, cmd)
		if err != nil || !bytes.Equal(resp, []byte{byte(i), byte(i >> 8), 0x90, 0x00}) {
			t.Fatalf("command %d: %X, %v", i, resp, err)
		}
	}
	select {
	case cmd := <-c.Commands():
		t.Fatalf("a command on Commands with a Handler set: %X", cmd.APDU)
	default:
	}
	c.Close()
	if n != 500 {
		t.Fatalf("handler called %d times, want 500", n)
	}
	if _, ok := <-c.Commands(); ok {
		t.Fatal("Commands still open after Close")
	}
}

// While a Handler blocks, the client goes on reading: a control message is
// acknowledged, and a Flush completes only after the blocked command's
// answer, as the protocol wants.
func TestHandlerBlockingKeepsReading(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv, c := announcedWith(t, handlerConfig(func(cmd *vscard.Command) {
		entered <- struct{}{}
		<-release
		cmd.Respond([]byte{0x90, 0x00})
	}))
	respDone := make(chan error, 1)
	go func() {
		_, err := srv.Transmit(ctx, []byte{0x00, 0xB0, 0x00, 0x00})
		respDone <- err
	}()
	<-entered
	flushDone := make(chan error, 1)
	go func() { flushDone <- srv.Flush(ctx) }()
	// The reply to a control message is read while the handler blocks.
	if _, err := c.AddReader(ctx, "Second Reader"); err != nil {
		t.Fatalf("AddReader while the handler blocks: %v", err)
	}
	select {
	case err := <-flushDone:
		t.Fatalf("Flush completed with a command outstanding: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-respDone; err != nil {
		t.Fatal(err)
	}
	if err := <-flushDone; err != nil {
		t.Fatal(err)
	}
	ev, err := srv.WaitEvent(ctx, vscardtest.EventAPDU, vscardtest.EventFlushComplete)
	if err != nil || ev.Kind != vscardtest.EventAPDU {
		t.Fatalf("first of APDU/FlushComplete: %v, %v", ev.Kind, err)
	}
	// And the fast path is back: the next command is answered.
	if _, err := srv.Transmit(ctx, []byte{0x00, 0xB0, 0x00, 0x00}); err != nil {
		t.Fatal(err)
	}
}

// Close returns while a Handler still blocks; the handler's later answer
// fails with the connection's error.
func TestHandlerCloseWhileBlocked(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	release := make(chan struct{})
	entered := make(chan struct{})
	answered := make(chan error, 1)
	srv, c := announcedWith(t, handlerConfig(func(cmd *vscard.Command) {
		close(entered)
		<-release
		answered <- cmd.Respond([]byte{0x90, 0x00})
	}))
	go srv.Transmit(ctx, []byte{0x00, 0xB0, 0x00, 0x00})
	<-entered
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a blocked Handler")
	}
	close(release)
	if err := <-answered; !errors.Is(err, vscard.ErrClosed) {
		t.Fatalf("answer after Close = %v, want ErrClosed", err)
	}
}

// Commands that arrive while a Handler blocks are served after it, in the
// host's order, and their answers leave in that order.
func TestHandlerOrderAcrossHandoff(t *testing.T) {
	leaktest.Check(t)
	var (
		mu     sync.Mutex
		served []byte
	)
	c, hn, r, w := pipeHost(t, &vscard.ClientConfig{Handler: vscard.HandlerFunc(func(cmd *vscard.Command) {
		if cmd.APDU[4]%10 == 0 {
			time.Sleep(5 * time.Millisecond) // longer than the hand-off delay
		}
		mu.Lock()
		served = append(served, cmd.APDU[4])
		mu.Unlock()
		cmd.Respond([]byte{cmd.APDU[4], 0x90, 0x00})
	})})
	const n = 60
	go func() {
		for i := range n {
			if err := w.WriteMessage(vscard.Message{Type: vscard.MsgAPDU, Payload: []byte{0x00, 0xB0, 0x00, 0x00, byte(i)}}); err != nil {
				return
			}
		}
	}()
	for i := range n {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if m.Type != vscard.MsgAPDU || !bytes.Equal(m.Payload, []byte{byte(i), 0x90, 0x00}) {
			t.Fatalf("answer %d: %v %X", i, m.Type, m.Payload)
		}
	}
	mu.Lock()
	for i, b := range served {
		if int(b) != i {
			t.Fatalf("served in the order %v", served)
		}
	}
	mu.Unlock()
	hn.Close()
	c.Close()
}

// A control message too large to send is refused before a reply waiter is
// queued: the next request still gets its own reply.
func TestRequestTooLargeKeepsRepliesPaired(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	srv, c := announced(t)
	var tl *vscard.TooLargeError
	if _, err := c.AddReader(ctx, string(make([]byte, 70000))); !errors.As(err, &tl) {
		t.Fatalf("AddReader with a 70,000-byte name = %v, want *TooLargeError", err)
	}
	// QEMU refuses this ATR with Error{1}: that reply must reach InsertCard.
	err := c.InsertCard(ctx, vscard.MinimalReaderID, []byte{0x3B, 0x02, 0x01})
	var he *vscard.HostError
	if !errors.As(err, &he) || he.Code != vscard.ErrCodeGeneral {
		t.Fatalf("InsertCard after a refused AddReader = %v, want a *HostError", err)
	}
	if err := c.RemoveCard(ctx, vscard.MinimalReaderID); err != nil {
		t.Fatalf("RemoveCard: %v", err)
	}
	if st := srv.Host().State(); st.CardPresent || st.Stalled {
		t.Fatalf("host state %+v", st)
	}
}
