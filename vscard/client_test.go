package vscard_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/vscard"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

var testATR = []byte{0x3B, 0x80, 0x80, 0x01, 0x01}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// announced starts a fake host, dials it and announces a reader and a card.
func announced(t *testing.T) (*vscardtest.Server, *vscard.Client) {
	t.Helper()
	return announcedWith(t, nil)
}

// announcedWith is announced with a dial configuration.
func announcedWith(t *testing.T, cfg *vscard.DialConfig) (*vscardtest.Server, *vscard.Client) {
	t.Helper()
	ctx := ctxT(t)
	srv := vscardtest.NewServer()
	t.Cleanup(srv.Close)
	c, err := vscard.Dial(ctx, "tcp", srv.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.RemoveReader(ctx, vscard.MinimalReaderID); err != nil {
		t.Fatal(err)
	}
	id, err := c.AddReader(ctx, "Test Reader")
	if err != nil || id != vscard.MinimalReaderID {
		t.Fatalf("AddReader = %v, %v", id, err)
	}
	if err := c.InsertCard(ctx, id, testATR); err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// serve answers every command with answer until the connection ends.
func serve(c *vscard.Client, answer func(cmd []byte) []byte) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for cmd := range c.Commands() {
			cmd.Respond(answer(cmd.APDU))
		}
	}()
	return &wg
}

func TestClientAnnounce(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	srv, c := announced(t)
	if got := c.HostInit(); got.Version != vscard.CurrentVersion || string(got.Magic[:]) != vscard.Magic {
		t.Fatalf("host Init %+v", got)
	}
	ev, err := srv.WaitEvent(ctx, vscardtest.EventReaderAdded)
	if err != nil || ev.Name != "Test Reader" {
		t.Fatalf("reader event %+v, %v", ev, err)
	}
	ev, err = srv.WaitEvent(ctx, vscardtest.EventCardInserted)
	if err != nil || !bytes.Equal(ev.ATR, testATR) {
		t.Fatalf("card event %+v, %v", ev, err)
	}
	// QEMU refuses an inconsistent ATR, and the client says so.
	err = c.InsertCard(ctx, 0, []byte{0x3B, 0x02, 0x01})
	var he *vscard.HostError
	if !errors.As(err, &he) || he.Op != vscard.MsgATR || he.Code != vscard.ErrCodeGeneral {
		t.Fatalf("bad ATR: %v", err)
	}
	if st := srv.Host().State(); !st.CardPresent || !bytes.Equal(st.ATR, testATR) {
		t.Fatalf("state after a refused ATR: %+v", st)
	}
	if err := c.RemoveCard(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveReader(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if st := srv.Host().State(); st.CardPresent || st.ReaderAdded {
		t.Fatalf("state after removal: %+v", st)
	}
	c.Close()
	if err := c.Wait(); !errors.Is(err, vscard.ErrClosed) {
		t.Fatalf("Wait after Close = %v", err)
	}
}

func TestClientCommands(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	srv, c := announced(t)
	wg := serve(c, func(cmd []byte) []byte {
		if cmd[1] == 0xEE { // echo, for the extended APDUs
			return append(append([]byte(nil), cmd[7:]...), 0x90, 0x00)
		}
		return []byte{0x90, 0x00}
	})
	resp, err := srv.Transmit(ctx, []byte{0x00, 0xA4, 0x04, 0x00})
	if err != nil || !bytes.Equal(resp, []byte{0x90, 0x00}) {
		t.Fatalf("Transmit = %x, %v", resp, err)
	}
	for _, n := range []int{4096, 65000} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		cmd := append([]byte{0x00, 0xEE, 0x00, 0x00, 0x00, byte(n >> 8), byte(n)}, data...)
		resp, err := srv.Transmit(ctx, cmd)
		if err != nil || !bytes.Equal(resp[:len(resp)-2], data) {
			t.Fatalf("%d-byte echo: %d bytes back, %v", n, len(resp), err)
		}
	}
	ev, err := srv.WaitEvent(ctx, vscardtest.EventAPDU)
	if err != nil || ev.RTT <= 0 {
		t.Fatalf("APDU event %+v, %v", ev, err)
	}
	c.Close()
	wg.Wait()
}

func TestClientFailCommand(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	srv, c := announced(t)
	go func() {
		cmd := <-c.Commands()
		cmd.Fail(vscard.ErrCodeGeneral)
		if err := cmd.Respond([]byte{0x90, 0x00}); !errors.Is(err, vscard.ErrAnswered) {
			t.Errorf("second answer: %v", err)
		}
	}()
	_, err := srv.Transmit(ctx, []byte{0x00, 0xB0, 0x00, 0x00})
	var ce *vscardtest.CardError
	if !errors.As(err, &ce) || ce.Code != vscard.ErrCodeGeneral {
		t.Fatalf("Transmit = %v, want CardError", err)
	}
}

func TestClientRefusesOversizedResponse(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	srv, c := announced(t)
	go func() {
		cmd := <-c.Commands()
		var tl *vscard.TooLargeError
		if err := cmd.Respond(make([]byte, vscard.MaxPayload+1)); !errors.As(err, &tl) {
			t.Errorf("oversized response: %v", err)
		}
		cmd.Fail(vscard.ErrCodeGeneral) // still answerable
	}()
	if _, err := srv.Transmit(ctx, []byte{0, 0xB0, 0, 0}); err == nil {
		t.Fatal("Transmit succeeded")
	}
	if st := srv.Host().State(); st.Stalled {
		t.Fatal("the host stalled: an oversized message was sent")
	}
}

func TestClientFlush(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	srv, c := announced(t)
	// Nothing outstanding: answered at once.
	if err := srv.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Events()
	// One command outstanding: FlushComplete follows its answer.
	respDone := make(chan error, 1)
	go func() {
		_, err := srv.Transmit(ctx, []byte{0, 0xB0, 0, 0})
		respDone <- err
	}()
	cmd := <-c.Commands()
	flushDone := make(chan error, 1)
	go func() { flushDone <- srv.Flush(ctx) }()
	select {
	case err := <-flushDone:
		t.Fatalf("Flush completed with a command outstanding: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	cmd.Respond([]byte{0x90, 0x00})
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
}

func TestClientHostCloses(t *testing.T) {
	leaktest.Check(t)
	srv, c := announced(t)
	srv.CloseClientConnections()
	if err := c.Wait(); !errors.Is(err, vscard.ErrHostClosed) {
		t.Fatalf("Wait = %v, want ErrHostClosed", err)
	}
	if _, ok := <-c.Commands(); ok {
		t.Fatal("Commands still open")
	}
	if err := c.RemoveCard(ctxT(t), 0); !errors.Is(err, vscard.ErrHostClosed) {
		t.Fatalf("RemoveCard after the end: %v", err)
	}
}

// A host that accepts but never answers Init (a wedged QEMU) does not hang
// Dial beyond its context.
func TestDialSilentHost(t *testing.T) {
	leaktest.Check(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, _ := l.Accept()
		accepted <- nc
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = vscard.Dial(ctx, "tcp", l.Addr().String(), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want DeadlineExceeded", err)
	}
	if nc := <-accepted; nc != nil {
		nc.Close()
	}
}

// A host that stops reading makes writes fail after WriteTimeout rather
// than buffer without bound.
func TestClientWriteTimeout(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hostSide := make(chan net.Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			hostSide <- nil
			return
		}
		hdr := make([]byte, 24)
		if _, err := io.ReadFull(nc, hdr); err == nil {
			init := vscard.Message{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)}
			nc.Write(init.Append(nil))
			// Many commands, then read nothing more.
			for range 1000 {
				nc.Write(vscard.Message{Type: vscard.MsgAPDU, Payload: []byte{0, 0xB0, 0, 0}}.Append(nil))
			}
		}
		hostSide <- nc
	}()
	c, err := vscard.Dial(ctx, "tcp", l.Addr().String(), &vscard.DialConfig{ClientConfig: vscard.ClientConfig{WriteTimeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nc := <-hostSide
	if nc == nil {
		t.Fatal("accept failed")
	}
	defer nc.Close()
	big := make([]byte, vscard.MaxPayload)
	var werr error
	for cmd := range c.Commands() {
		if werr = cmd.Respond(big); werr != nil {
			break
		}
	}
	if !errors.Is(werr, os.ErrDeadlineExceeded) {
		t.Fatalf("answering a host that reads nothing: %v, want a write timeout", werr)
	}
	if err := c.Wait(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait = %v", err)
	}
}

func TestDialIPv6AndUnix(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	for _, tc := range []struct{ network, addr string }{
		{"tcp", "[::1]:0"},
		{"unix", t.TempDir() + "/vscard.sock"},
	} {
		srv, err := vscardtest.Listen(tc.network, tc.addr)
		if err != nil {
			if tc.network == "tcp" {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Fatal(err)
		}
		srv.Start()
		c, err := vscard.Dial(ctx, tc.network, srv.Addr(), nil)
		if err != nil {
			srv.Close()
			t.Fatalf("%s %s: %v", tc.network, srv.Addr(), err)
		}
		if _, err := c.AddReader(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		c.Close()
		srv.Close()
	}
}

// Control messages from many goroutines, while commands flow, each get
// their own acknowledgement.
func TestClientConcurrent(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	srv, c := announced(t)
	wg := serve(c, func(cmd []byte) []byte { return append(cmd[:0:0], 0x90, 0x00) })
	var g sync.WaitGroup
	for i := range 8 {
		g.Add(1)
		go func() {
			defer g.Done()
			for range 50 {
				atr := testATR
				if i%2 == 1 {
					atr = []byte{0x3B, 0x02, 0x01} // refused
				}
				err := c.InsertCard(ctx, 0, atr)
				var he *vscard.HostError
				if (i%2 == 0) != (err == nil) || err != nil && !errors.As(err, &he) {
					t.Errorf("goroutine %d: %v", i, err)
					return
				}
			}
		}()
	}
	for range 100 {
		if _, err := srv.Transmit(ctx, []byte{0, 0xCA, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	g.Wait()
	c.Close()
	wg.Wait()
}

// TestClientHostReinits: a new card device on the connection (Host.Replug,
// as QEMU's device_del and device_add of the reader) fails the guest's
// pending command, forgets reader and card, and greets the client with
// Init, which the client hands to its owner on HostReinits.
func TestClientHostReinits(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	srv, c := announced(t)
	srv.Host().Replug() // nothing pending yet; drained below
	select {
	case in := <-c.HostReinits():
		if string(in.Magic[:]) != vscard.Magic {
			t.Fatalf("reinit %+v", in)
		}
	case <-ctx.Done():
		t.Fatal("no reinit")
	}
	if st := srv.Host().State(); st.ReaderAdded || st.CardPresent || !st.Connected {
		t.Fatalf("after Replug: %+v", st)
	}
	// The owner announces again, on the same connection.
	id, err := c.AddReader(ctx, "Test Reader")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.InsertCard(ctx, id, testATR); err != nil {
		t.Fatal(err)
	}
	// A command outstanding when the device goes fails as a removal.
	res := make(chan error, 1)
	go func() { _, err := srv.Transmit(ctx, []byte{0, 0xA4, 4, 0}); res <- err }()
	cmd := <-c.Commands()
	if err := srv.Host().Replug(); err != nil {
		t.Fatal(err)
	}
	if err := <-res; !errors.Is(err, vscardtest.ErrCardRemoved) {
		t.Fatalf("pending command: %v, want ErrCardRemoved", err)
	}
	// Several re-creations before the owner looks come as one. (A
	// control exchange afterwards makes sure the client read both Inits.)
	srv.Host().Replug()
	if err := c.RemoveReader(ctx, vscard.MinimalReaderID); err != nil {
		t.Fatal(err)
	}
	<-c.HostReinits()
	select {
	case <-c.HostReinits():
		t.Fatal("a second reinit was kept")
	case <-time.After(50 * time.Millisecond):
	}
	// The late answer is dropped by the new device, and harms nothing.
	if err := cmd.Respond([]byte{0x90, 0}); err != nil {
		t.Fatal(err)
	}
	if err := c.Idle(ctx); err != nil {
		t.Fatal(err)
	}
}
