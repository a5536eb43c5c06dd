package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/bridge"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

var atr = []byte{0x3B, 0x80, 0x80, 0x01, 0x01}

// tableCard answers: INS CA -> 1000 bytes + 9000 in one response, INS EE ->
// echo, INS 66 -> an error, anything else -> 9000.
type tableCard struct {
	long   []byte
	resets atomic.Int32
}

func newTableCard() *tableCard {
	long := make([]byte, 1000)
	for i := range long {
		long[i] = byte(i * 13)
	}
	return &tableCard{long: long}
}

func (c *tableCard) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	switch cmd[1] {
	case 0xCA:
		return apdu.Append(c.long, apdu.SWOK), nil
	case 0xEE:
		p, err := apdu.Parse(cmd)
		if err != nil {
			return nil, err
		}
		return apdu.Append(p.Data, apdu.SWOK), nil
	case 0x66:
		return nil, errors.New("card fell over")
	}
	return apdu.SWOK.Bytes(), nil
}

func (c *tableCard) Reset(context.Context) error { c.resets.Add(1); return nil }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// running starts a bridge between src and a fake host; the returned stop
// cancels it and waits for Run to return.
func running(t *testing.T, srv *vscardtest.Server, src bridge.Source) (b *bridge.Bridge, stop func() error) {
	t.Helper()
	b, err := bridge.New(bridge.Config{Address: srv.Addr(), Source: src, MaxBackoff: 200 * time.Millisecond, ReplyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var stopped bool
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	return b, stop
}

func wait(t *testing.T, srv *vscardtest.Server, kinds ...vscardtest.EventKind) vscardtest.Event {
	t.Helper()
	e, err := srv.WaitEvent(ctxT(t), kinds...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestBridgeAnnounceAndServe(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	srv := vscardtest.NewServer()
	defer srv.Close()
	card := newTableCard()
	_, stop := running(t, srv, bridge.NewStatic("Test Reader 00", atr, card))

	if e := wait(t, srv, vscardtest.EventReaderAdded); e.Name != "Test Reader 00" {
		t.Fatalf("reader %q", e.Name)
	}
	if e := wait(t, srv, vscardtest.EventCardInserted); !bytes.Equal(e.ATR, atr) {
		t.Fatalf("ATR %X", e.ATR)
	}
	if card.resets.Load() != 1 {
		t.Fatalf("card reset %d times before the announcement", card.resets.Load())
	}
	resp, err := srv.Transmit(ctx, []byte{0x00, 0xA4, 0x04, 0x00})
	if err != nil || !bytes.Equal(resp, []byte{0x90, 0x00}) {
		t.Fatalf("SELECT: %X %v", resp, err)
	}
	// Extended APDUs go through whole.
	for _, n := range []int{4096, 65000} {
		data := bytes.Repeat([]byte{0xA5, 0x5A, 0x01}, n/3+1)[:n]
		cmd, _ := apdu.Command{INS: 0xEE, Data: data, Ne: 65536}.Bytes()
		resp, err := srv.Transmit(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		// 65000 bytes exceed what QEMU carries to the guest: they come back
		// in pieces; collect them.
		got := collect(t, srv, resp)
		if !bytes.Equal(got, data) {
			t.Fatalf("%d-byte echo came back as %d bytes", n, len(got))
		}
	}
	// A failing card answers Error, not silence.
	if _, err := srv.Transmit(ctx, []byte{0x00, 0x66, 0x00, 0x00}); !errors.As(err, new(*vscardtest.CardError)) {
		t.Fatalf("failing card: %v", err)
	}
	// Flush is answered.
	if err := srv.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Leaving removes the card and the reader.
	wait(t, srv, vscardtest.EventCardRemoved)
	wait(t, srv, vscardtest.EventReaderRemoved)
	if st := srv.Host().State(); st.CardPresent || st.ReaderAdded {
		t.Fatalf("host state after the bridge left: %+v", st)
	}
}

// collect follows 61xx with GET RESPONSE and returns the whole data,
// checking that no piece exceeds what QEMU carries.
func collect(t *testing.T, srv *vscardtest.Server, resp []byte) []byte {
	t.Helper()
	var data []byte
	for i := 0; ; i++ {
		if len(resp) > bridge.QEMUMaxResponse {
			t.Fatalf("a %d-byte response: QEMU cannot carry it", len(resp))
		}
		r := apdu.Response(resp)
		data = append(data, r.Data()...)
		if r.SW()&0xFF00 != apdu.SWBytesRemaining {
			if r.SW() != apdu.SWOK {
				t.Fatalf("final SW %v", r.SW())
			}
			return data
		}
		if i > 1000 {
			t.Fatal("endless 61xx")
		}
		var err error
		resp, err = srv.Transmit(ctxT(t), []byte{0x00, 0xC0, 0x00, 0x00, r.SW().SW2()})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestBridgeSplitsLongResponses(t *testing.T) {
	leaktest.Check(t)
	srv := vscardtest.NewServer()
	defer srv.Close()
	card := newTableCard()
	b, _ := running(t, srv, bridge.NewStatic("r", atr, card))
	wait(t, srv, vscardtest.EventCardInserted)
	resp, err := srv.Transmit(ctxT(t), []byte{0x00, 0xCA, 0x01, 0x00, 0x00})
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, srv, resp); !bytes.Equal(got, card.long) {
		t.Fatalf("reassembled %d bytes, differ", len(got))
	}
	if b.Stats().Split != 1 {
		t.Fatalf("stats %+v", b.Stats())
	}
	// Another command drops what was pending: GET RESPONSE then goes to
	// the card, which answers 9000 here.
	for _, cmd := range [][]byte{{0x00, 0xCA, 0x01, 0x00, 0x00}, {0x00, 0xA4, 0x04, 0x00}} {
		if _, err := srv.Transmit(ctxT(t), cmd); err != nil {
			t.Fatalf("%X: %v", cmd, err)
		}
	}
	resp, err = srv.Transmit(ctxT(t), []byte{0x00, 0xC0, 0x00, 0x00, 0x00})
	if err != nil || !bytes.Equal(resp, []byte{0x90, 0x00}) {
		t.Fatalf("GET RESPONSE after another command: %X %v", resp, err)
	}
}

func TestBridgeFollowsSource(t *testing.T) {
	leaktest.Check(t)
	srv := vscardtest.NewServer()
	defer srv.Close()
	src := bridge.NewStatic("r", atr, newTableCard())
	running(t, srv, src)
	wait(t, srv, vscardtest.EventCardInserted)

	src.Remove()
	wait(t, srv, vscardtest.EventCardRemoved)
	other := []byte{0x3B, 0x00}
	src.Insert(other, newTableCard())
	if e := wait(t, srv, vscardtest.EventCardInserted); !bytes.Equal(e.ATR, other) {
		t.Fatalf("new card ATR %X", e.ATR)
	}
	// Reinsertion of the same card (a reset) is seen as removal + insertion.
	src.Insert(other, newTableCard())
	wait(t, srv, vscardtest.EventCardRemoved)
	wait(t, srv, vscardtest.EventCardInserted)
	// Reader unplugged and back.
	src.SetReader("")
	wait(t, srv, vscardtest.EventReaderRemoved)
	src.SetReader("r2")
	if e := wait(t, srv, vscardtest.EventReaderAdded); e.Name != "r2" {
		t.Fatalf("reader %q", e.Name)
	}
	src.Insert(atr, newTableCard())
	wait(t, srv, vscardtest.EventCardInserted)
}

// The host goes away and comes back on the same port (QEMU restarted): the
// bridge reconnects and redoes the whole announcement.
func TestBridgeReconnects(t *testing.T) {
	leaktest.Check(t)
	srv := vscardtest.NewServer()
	addr := srv.Addr()
	b, _ := running(t, srv, bridge.NewStatic("r", atr, newTableCard()))
	wait(t, srv, vscardtest.EventCardInserted)
	srv.Close()

	// A new host on the same port, a moment later.
	time.Sleep(300 * time.Millisecond)
	srv2, err := vscardtest.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv2.Start()
	defer srv2.Close()
	wait(t, srv2, vscardtest.EventReaderRemoved) // the clearing ReaderRemove
	wait(t, srv2, vscardtest.EventReaderAdded)
	wait(t, srv2, vscardtest.EventCardInserted)
	if _, err := srv2.Transmit(ctxT(t), []byte{0, 0xA4, 0x04, 0}); err != nil {
		t.Fatal(err)
	}
	// A socket reset, same host: reconnect again.
	srv2.CloseClientConnections()
	wait(t, srv2, vscardtest.EventDisconnected)
	wait(t, srv2, vscardtest.EventCardInserted)
	if s := b.Stats().Sessions; s != 3 {
		t.Fatalf("%d sessions, want 3", s)
	}
}

// TestBridgeReannouncesOnNewCardDevice: a new card device on the same
// connection (QEMU's device_del and device_add of the reader) greets the
// client with Init; the bridge announces reader and card again without
// reconnecting, and the card is reset first, as for any new insertion.
func TestBridgeReannouncesOnNewCardDevice(t *testing.T) {
	leaktest.Check(t)
	srv := vscardtest.NewServer()
	defer srv.Close()
	card := newTableCard()
	b, _ := running(t, srv, bridge.NewStatic("Test Reader 00", atr, card))
	wait(t, srv, vscardtest.EventCardInserted)
	for i := range 3 {
		if err := srv.Host().Replug(); err != nil {
			t.Fatal(err)
		}
		wait(t, srv, vscardtest.EventReplugged)
		if e := wait(t, srv, vscardtest.EventReaderAdded, vscardtest.EventDisconnected); e.Kind != vscardtest.EventReaderAdded || e.Name != "Test Reader 00" {
			t.Fatalf("replug %d: got %v %q, want the reader announced again", i, e.Kind, e.Name)
		}
		if e := wait(t, srv, vscardtest.EventCardInserted); !bytes.Equal(e.ATR, atr) {
			t.Fatalf("replug %d: ATR %X", i, e.ATR)
		}
		resp, err := srv.Transmit(ctxT(t), []byte{0x00, 0xA4, 0x04, 0x00})
		if err != nil || !bytes.Equal(resp, apdu.SWOK.Bytes()) {
			t.Fatalf("replug %d: SELECT: %X %v", i, resp, err)
		}
	}
	st := b.Stats()
	if st.Sessions != 1 || st.Reinits != 3 {
		t.Errorf("stats %+v, want 1 session and 3 reinits", st)
	}
	if n := card.resets.Load(); n != 4 {
		t.Errorf("card reset %d times, want 4 (one per announcement)", n)
	}
}
