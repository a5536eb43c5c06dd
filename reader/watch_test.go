//go:build cgo

// The tests in this file talk to a real pcscd; a build without cgo has no
// PC/SC (nocgo_test.go tests what it does instead).

package reader_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/internal/testcard"
	"github.com/vscardkit/vscardkit/reader"
)

// expect reads the watcher's next events and checks their kinds, readers
// and (when want has one) ATRs, in order.
func expect(t *testing.T, w *reader.Watcher, want ...reader.Event) []reader.Event {
	t.Helper()
	var got []reader.Event
	for i, we := range want {
		select {
		case e, ok := <-w.Events():
			if !ok {
				t.Fatalf("events closed after %v; want %v", got, want[i:])
			}
			got = append(got, e)
			if e.Kind != we.Kind || e.Reader != we.Reader || (we.ATR != nil && !bytes.Equal(e.ATR, we.ATR)) {
				t.Fatalf("event %d: got %v; want %v (events so far: %v)", i, e, we, got)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no event after %v; want %v", got, want[i:])
		}
	}
	return got
}

// expectQuiet checks that no event arrives for a while.
func expectQuiet(t *testing.T, w *reader.Watcher, d time.Duration) {
	t.Helper()
	select {
	case e := <-w.Events():
		t.Fatalf("unexpected event %v", e)
	case <-time.After(d):
	}
}

func TestWatchCards(t *testing.T) {
	leaktest.Check(t)
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	w := reader.Watch(context.Background(), nil)
	defer w.Close()
	r0, r1 := p.Readers[0], p.Readers[1]
	expect(t, w,
		reader.Event{Kind: reader.ServiceUp},
		reader.Event{Kind: reader.ReaderAdded, Reader: r0},
		reader.Event{Kind: reader.ReaderAdded, Reader: r1})

	tc := testcard.Start(t, p.VPCDAddr(1), testcard.Options{})
	expect(t, w, reader.Event{Kind: reader.CardInserted, Reader: r1, ATR: testcard.ATRT1})
	if rs := w.Readers(); len(rs) != 2 || !rs[1].CardPresent || rs[0].CardPresent {
		t.Fatalf("Readers() = %+v", rs)
	}

	tc.Remove()
	expect(t, w, reader.Event{Kind: reader.CardRemoved, Reader: r1})
	tc.SetATR(testcard.ATRDual)
	tc.Insert(p.VPCDAddr(1))
	expect(t, w, reader.Event{Kind: reader.CardInserted, Reader: r1, ATR: testcard.ATRDual})

	// Pulled and put back at once: still a removal and an insertion.
	tc.Remove()
	tc.Insert(p.VPCDAddr(1))
	expect(t, w,
		reader.Event{Kind: reader.CardRemoved, Reader: r1},
		reader.Event{Kind: reader.CardInserted, Reader: r1})

	// Using the card is not an event.
	c, err := reader.Connect(context.Background(), r1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transmit(context.Background(), []byte{0x80, testcard.INSStatus, 0, 0}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	expectQuiet(t, w, time.Second)

	w.Close()
	if _, ok := <-w.Events(); ok {
		t.Fatal("events still open after Close")
	}
	if err := w.Err(); err != nil {
		t.Fatalf("Err after Close = %v", err)
	}
}

// TestWatchServiceRestart kills pcscd under a watcher and a connected card
// and starts it again: everything is reported gone, then back, and the
// card works again after a new Connect.
func TestWatchServiceRestart(t *testing.T) {
	leaktest.Check(t)
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	r0, r1 := p.Readers[0], p.Readers[1]
	tc := testcard.Start(t, p.VPCDAddr(0), testcard.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := reader.Watch(ctx, &reader.WatchOptions{MaxBackoff: 300 * time.Millisecond})
	expect(t, w,
		reader.Event{Kind: reader.ServiceUp},
		reader.Event{Kind: reader.ReaderAdded, Reader: r0},
		reader.Event{Kind: reader.ReaderAdded, Reader: r1},
		reader.Event{Kind: reader.CardInserted, Reader: r0, ATR: testcard.ATRT1})
	c := connectWhenPresent(t, r0, nil)

	p.Kill()
	got := expect(t, w,
		reader.Event{Kind: reader.CardRemoved, Reader: r0},
		reader.Event{Kind: reader.ReaderRemoved, Reader: r0},
		reader.Event{Kind: reader.ReaderRemoved, Reader: r1},
		reader.Event{Kind: reader.ServiceDown})
	if !errors.Is(got[3].Err, reader.ErrNoService) {
		t.Fatalf("ServiceDown error %v, want ErrNoService", got[3].Err)
	}
	if _, err := c.Transmit(context.Background(), []byte{0x80, testcard.INSStatus, 0, 0}); !errors.Is(err, reader.ErrNoService) {
		t.Fatalf("Transmit with pcscd gone = %v, want ErrNoService", err)
	}
	if len(w.Readers()) != 0 {
		t.Fatalf("Readers() with pcscd gone = %v", w.Readers())
	}
	// While the service is down, the watcher waits without events.
	expectQuiet(t, w, 700*time.Millisecond)

	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	expect(t, w,
		reader.Event{Kind: reader.ServiceUp},
		reader.Event{Kind: reader.ReaderAdded, Reader: r0},
		reader.Event{Kind: reader.ReaderAdded, Reader: r1},
		reader.Event{Kind: reader.CardInserted, Reader: r0, ATR: testcard.ATRT1})
	c2 := connectWhenPresent(t, r0, nil)
	if _, err := c2.Transmit(context.Background(), []byte{0x80, testcard.INSStatus, 0, 0}); err != nil {
		t.Fatalf("Transmit after the restart: %v", err)
	}
	if tc.Transmits() < 1 {
		t.Fatal("the card saw nothing")
	}

	cancel() // ending ctx stops the watcher
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("watcher still running 10 s after its context ended")
	}
}

// TestWatchWithoutService starts a watcher with no pcscd, then starts one.
func TestWatchWithoutService(t *testing.T) {
	leaktest.Check(t)
	harness.RequireRoot(t, "pcscd")
	w := reader.Watch(context.Background(), &reader.WatchOptions{MaxBackoff: 200 * time.Millisecond})
	defer w.Close()
	got := expect(t, w, reader.Event{Kind: reader.ServiceDown})
	if !errors.Is(got[0].Err, reader.ErrNoService) {
		t.Fatalf("ServiceDown error %v", got[0].Err)
	}
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	expect(t, w,
		reader.Event{Kind: reader.ServiceUp},
		reader.Event{Kind: reader.ReaderAdded, Reader: p.Readers[0]},
		reader.Event{Kind: reader.ReaderAdded, Reader: p.Readers[1]})
}

// TestWatchReadersReplaced changes the set of readers under a watcher. With
// no USB on the test machine and pcscd 1.9.9 unable to add or remove a
// reader.conf reader while it runs, the only way to make readers go and
// others come is a pcscd restart with a different configuration: the
// watcher must report the old readers gone and the new ones (with the card
// that reconnects to the same vpcd port) there. What this cannot cover is a
// reader leaving while pcscd keeps running (the PnP notification path);
// TestWatcherBookkeeping covers the bookkeeping of that case.
func TestWatchReadersReplaced(t *testing.T) {
	leaktest.Check(t)
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true, FriendlyName: "Reader Before"})
	old := p.Readers
	testcard.Start(t, p.VPCDAddr(0), testcard.Options{})
	w := reader.Watch(context.Background(), &reader.WatchOptions{MaxBackoff: 200 * time.Millisecond})
	defer w.Close()
	expect(t, w,
		reader.Event{Kind: reader.ServiceUp},
		reader.Event{Kind: reader.ReaderAdded, Reader: old[0]},
		reader.Event{Kind: reader.ReaderAdded, Reader: old[1]},
		reader.Event{Kind: reader.CardInserted, Reader: old[0]})
	if err := p.RestartAs("Reader After"); err != nil {
		t.Fatal(err)
	}
	expect(t, w,
		reader.Event{Kind: reader.CardRemoved, Reader: old[0]},
		reader.Event{Kind: reader.ReaderRemoved, Reader: old[0]},
		reader.Event{Kind: reader.ReaderRemoved, Reader: old[1]},
		reader.Event{Kind: reader.ServiceDown},
		reader.Event{Kind: reader.ServiceUp},
		reader.Event{Kind: reader.ReaderAdded, Reader: p.Readers[0]},
		reader.Event{Kind: reader.ReaderAdded, Reader: p.Readers[1]},
		reader.Event{Kind: reader.CardInserted, Reader: p.Readers[0], ATR: testcard.ATRT1})
	rs := w.Readers()
	if len(rs) != 2 || rs[0].Name != "Reader After 00 00" || !rs[0].CardPresent {
		t.Fatalf("Readers() = %+v", rs)
	}
}
