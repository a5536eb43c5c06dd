package testcard

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard"
)

// TestInReader runs the card in a real pcscd's vpcd reader and talks to it
// with OpenSC's default driver (-c default), which must accept the ATR.
func TestInReader(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{})
	c := Start(t, p.VPCDAddr(0), Options{})
	present := func() bool {
		_, err := p.OpenSCTool(t, "-r", "0", "--atr")
		return err == nil
	}
	harness.WaitFor(t, 10*time.Second, "the card in reader 0", present)

	out, err := p.OpenSCTool(t, "-r", "0", "-c", "default",
		"-s", "00:A4:04:00:07:F0:76:73:63:6B:69:74",
		"-s", "80:10:00:00:03:01:02:03:00",
		"-s", "80:14:00:00:01:61:00")
	if err != nil {
		t.Fatalf("opensc-tool: %v\n%s", err, out)
	}
	// SHA-256("a") starts CA 97 81 12.
	for _, want := range []string{"01 02 03", "CA 97 81 12"} {
		if !strings.Contains(out, want) {
			t.Fatalf("opensc-tool output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "SW1=0x90, SW2=0x00"); n != 3 {
		t.Fatalf("%d commands answered 9000, want 3:\n%s", n, out)
	}
	if c.Transmits() < 3 || c.PowerOns() < 1 {
		t.Fatalf("card saw %d transmits, %d power-ons", c.Transmits(), c.PowerOns())
	}

	c.Remove()
	harness.WaitFor(t, 10*time.Second, "the card to leave reader 0", func() bool { return !present() })
	if err := c.Insert(p.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	if err := c.Insert(p.VPCDAddr(0)); !errors.Is(err, ErrInserted) {
		t.Fatalf("second Insert: %v", err)
	}
	harness.WaitFor(t, 10*time.Second, "the card back in reader 0", present)
}

// TestATRAcceptedByQEMU announces each ATR to a real QEMU's
// ccid-card-passthru, which answers Error{0} only for an ATR its check
// accepts; a broken ATR shows the check is live.
func TestATRAcceptedByQEMU(t *testing.T) {
	q := harness.StartQEMU(t, harness.QEMUOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cl *vscard.Client
	harness.WaitFor(t, 10*time.Second, "QEMU's chardev to accept", func() bool {
		var err error
		cl, err = vscard.Dial(ctx, "tcp", q.Addr, nil)
		return err == nil
	})
	defer cl.Close()
	cl.RemoveReader(ctx, vscard.MinimalReaderID)
	id, err := cl.AddReader(ctx, "testcard")
	if err != nil {
		t.Fatal(err)
	}
	for name, atr := range map[string][]byte{"ATRT1": ATRT1, "ATRT0": ATRT0, "ATRDual": ATRDual} {
		if err := cl.InsertCard(ctx, id, atr); err != nil {
			t.Errorf("QEMU refused %s (% x): %v", name, atr, err)
		}
	}
	// The same historical bytes with a first byte that QEMU (reading it
	// as TD2) takes for more interface bytes: refused.
	bad := bytes.Clone(ATRT1)
	bad[3] = 0x76
	var he *vscard.HostError
	if err := cl.InsertCard(ctx, id, bad); !errors.As(err, &he) {
		t.Fatalf("QEMU accepted % x: %v", bad, err)
	}
}
