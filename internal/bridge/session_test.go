package bridge_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/bridge"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// sleepyCard takes its time over every command, and counts the calls under
// way.
type sleepyCard struct {
	took    time.Duration
	running atomic.Int32
	calls   atomic.Int32
}

func (c *sleepyCard) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	c.running.Add(1)
	defer c.running.Add(-1)
	c.calls.Add(1)
	time.Sleep(c.took) // a card that does not watch ctx (PC/SC, a key generation)
	return apdu.SWOK.Bytes(), nil
}

func (c *sleepyCard) Reset(context.Context) error { return nil }

// TestRunWaitsForTheCard: Run returns only once no card call is under way,
// so that whoever owns the card may release it; a command that was queued
// behind the slow one is not given to the card after the session ended.
func TestRunWaitsForTheCard(t *testing.T) {
	leaktest.Check(t)
	srv := vscardtest.NewServer()
	defer srv.Close()
	card := &sleepyCard{took: 500 * time.Millisecond}
	_, stop := running(t, srv, bridge.NewStatic("Test Reader 00", atr, card))
	wait(t, srv, vscardtest.EventCardInserted)

	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	for range 2 { // the second queues behind the first
		go srv.Transmit(ctx, []byte{0x00, 0xA4, 0x04, 0x00})
	}
	time.Sleep(100 * time.Millisecond)
	if card.running.Load() != 1 {
		t.Fatalf("%d card calls under way, want 1", card.running.Load())
	}
	stop()
	if n := card.running.Load(); n != 0 {
		t.Errorf("Run returned with %d card calls under way", n)
	}
	time.Sleep(600 * time.Millisecond)
	if n := card.calls.Load(); n != 1 {
		t.Errorf("the card got %d commands, want 1: the queued one came after the session ended", n)
	}
}
