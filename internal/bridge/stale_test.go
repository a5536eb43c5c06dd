package bridge_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/bridge"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// slowCard answers INS 01 only once release is closed, with AA 90 00, and
// every other command with its P1 P2 and 90 00, so that each answer names
// the command it belongs to.
type slowCard struct {
	got     chan struct{} // closed when INS 01 arrives
	release chan struct{}
}

func (c *slowCard) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if cmd[1] == 0x01 {
		close(c.got)
		select {
		case <-c.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return []byte{0xAA, 0x90, 0x00}, nil
	}
	return []byte{cmd[2], cmd[3], 0x90, 0x00}, nil
}

// The card changes (removed and another inserted, or reset) while a
// command is at the old one. QEMU takes the next answer it gets after the
// new ATR as the answer to the guest's next command, so the old command's
// answer must not reach the host after the new card's ATR: every later
// command would get the answer of the one before it.
func TestBridgeNoAnswerCrossesAReannouncement(t *testing.T) {
	leaktest.Check(t)
	srv := vscardtest.NewServer()
	defer srv.Close()
	old := &slowCard{got: make(chan struct{}), release: make(chan struct{})}
	src := bridge.NewStatic("Test Reader 00", atr, old)
	_, stop := running(t, srv, src)
	wait(t, srv, vscardtest.EventCardInserted)

	first := make(chan error, 1)
	go func() {
		_, err := srv.Transmit(ctxT(t), []byte{0x00, 0x01, 0x00, 0x00})
		first <- err
	}()
	<-old.got
	src.Insert(atr, &slowCard{got: make(chan struct{}), release: make(chan struct{})})
	wait(t, srv, vscardtest.EventCardRemoved)
	go func() {
		time.Sleep(300 * time.Millisecond)
		close(old.release)
	}()
	wait(t, srv, vscardtest.EventCardInserted)
	<-first // ended by the removal
	for _, p := range [][2]byte{{0x11, 0x22}, {0x33, 0x44}} {
		resp, err := srv.Transmit(ctxT(t), []byte{0x00, 0x02, p[0], p[1]})
		if want := []byte{p[0], p[1], 0x90, 0x00}; err != nil || !bytes.Equal(resp, want) {
			t.Fatalf("command %X after the new card: %X %v, want %X", p, resp, err, want)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
