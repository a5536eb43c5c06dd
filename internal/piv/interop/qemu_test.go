package interop_test

import (
	"context"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/vscard"
)

// TestQEMUAcceptsATR inserts the card into a real QEMU's ccid-card-passthru:
// QEMU checks the ATR (ccid-card-passthru.c, check_atr) and answers a bad
// one with Error{1}, which the client reports as a *vscard.HostError.
func TestQEMUAcceptsATR(t *testing.T) {
	if err := vscard.CheckATR(piv.ATR()); err != nil {
		t.Fatalf("vscard.CheckATR: %v", err)
	}
	q := harness.StartQEMU(t, harness.QEMUOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := vscard.Dial(ctx, "tcp", q.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, err := c.AddReader(ctx, "vscardkit PIV")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.InsertCard(ctx, id, piv.ATR()); err != nil {
		t.Fatalf("QEMU refused the ATR %X: %v", piv.ATR(), err)
	}
	// A broken ATR is refused, so the check above can fail.
	bad := append([]byte{0x3B, 0x8F}, piv.ATR()[2:]...)
	if err := c.InsertCard(ctx, id, bad); err == nil {
		t.Fatalf("QEMU accepted the inconsistent ATR %X", bad)
	}
}
