//go:build cgo

// The tests in this file talk to a real pcscd; a build without cgo has no
// PC/SC (nocgo_test.go tests what it does instead).

package reader_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/internal/testcard"
	"github.com/vscardkit/vscardkit/reader"
)

func TestListAndChoose(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	testcard.Start(t, p.VPCDAddr(1), testcard.Options{})
	waitReader(t, p.Readers[1], "the card in slot 1", cardIn)

	rs, err := reader.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Name != p.Readers[0] || rs[1].Name != p.Readers[1] {
		t.Fatalf("List = %+v, want readers %q", rs, p.Readers)
	}
	if rs[0].CardPresent || rs[0].ATR != nil {
		t.Fatalf("slot 0 has a card: %+v", rs[0])
	}
	if !rs[1].CardPresent || !bytes.Equal(rs[1].ATR, testcard.ATRT1) || rs[1].Protocols != reader.T1 {
		t.Fatalf("slot 1: %+v", rs[1])
	}

	for _, tc := range []struct {
		sel  reader.Selector
		want string
	}{
		{reader.Exact(p.Readers[0]), p.Readers[0]},
		{reader.Containing("pcd 00 01"), p.Readers[1]},
		{reader.Index(0), p.Readers[0]},
		{reader.FirstWithCard(), p.Readers[1]},
		{reader.ParseSelector(""), p.Readers[1]},
		{reader.ParseSelector("1"), p.Readers[1]},
		{reader.ParseSelector("00 00"), p.Readers[0]},
	} {
		got, err := reader.Choose(rs, tc.sel)
		if err != nil || got.Name != tc.want {
			t.Errorf("Choose(%v) = %q, %v; want %q", tc.sel, got.Name, err, tc.want)
		}
	}
	got, err := reader.Select(context.Background(), reader.FirstWithCard())
	if err != nil || got.Name != p.Readers[1] {
		t.Fatalf("Select(FirstWithCard) = %q, %v", got.Name, err)
	}

	_, err = reader.Choose(rs, reader.Exact("Gemalto"))
	var nf *reader.NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, reader.ErrNotFound) {
		t.Fatalf("Choose(Exact unknown) = %v", err)
	}
	want := `reader: reader "Gemalto" not found; readers present: ` + p.Readers[0] + ", " + p.Readers[1]
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	var amb *reader.AmbiguousError
	if _, err := reader.Choose(rs, reader.Containing("virtual")); !errors.As(err, &amb) || len(amb.Matches) != 2 {
		t.Fatalf("Choose(Containing ambiguous) = %v", err)
	}
	if _, err := reader.Choose(rs, reader.Index(2)); !errors.Is(err, reader.ErrNotFound) {
		t.Fatalf("Choose(Index(2)) = %v", err)
	}
}

// TestNoService checks the error a user sees when pcscd does not run.
func TestNoService(t *testing.T) {
	harness.RequireRoot(t, "pcscd")
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	p.Kill()
	_, err := reader.List(context.Background())
	if !errors.Is(err, reader.ErrNoService) {
		t.Fatalf("List without pcscd = %v, want ErrNoService", err)
	}
	if !strings.Contains(err.Error(), "no PC/SC service: is pcscd running?") {
		t.Fatalf("message %q", err)
	}
	var pe *reader.PCSCError
	if !errors.As(err, &pe) || reader.CodeName(pe.Code) != "SCARD_E_NO_SERVICE" {
		t.Fatalf("error %#v", err)
	}
	_, err = reader.Connect(context.Background(), p.Readers[0], nil)
	if !errors.Is(err, reader.ErrNoService) {
		t.Fatalf("Connect without pcscd = %v", err)
	}
}

func TestNoCard(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	if _, err := reader.Connect(context.Background(), p.Readers[0], nil); !errors.Is(err, reader.ErrNoCard) {
		t.Fatalf("Connect to an empty reader = %v, want ErrNoCard", err)
	}
	if _, err := reader.Connect(context.Background(), "No Such Reader", nil); !errors.Is(err, reader.ErrReaderGone) {
		t.Fatalf("Connect to an unknown reader = %v, want ErrReaderGone", err)
	}
	rs, err := reader.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Choose(rs, reader.FirstWithCard()); !errors.Is(err, reader.ErrNotFound) {
		t.Fatalf("Choose(FirstWithCard) with no card = %v", err)
	}
}

func TestTransmit(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	tc := testcard.Start(t, p.VPCDAddr(0), testcard.Options{})
	c := connectWhenPresent(t, p.Readers[0], nil)
	ctx := context.Background()
	if c.Protocol() != reader.T1 || !bytes.Equal(c.ATR(), testcard.ATRT1) || c.Reader() != p.Readers[0] {
		t.Fatalf("card: protocol %v ATR % X reader %q", c.Protocol(), c.ATR(), c.Reader())
	}
	transmit := func(cmd []byte) []byte {
		t.Helper()
		r, err := c.Transmit(ctx, cmd)
		if err != nil {
			t.Fatalf("Transmit(%d bytes): %v", len(cmd), err)
		}
		return r
	}
	sel := append([]byte{0x00, 0xA4, 0x04, 0x00, byte(len(testcard.TestAID))}, testcard.TestAID...)
	if r := transmit(sel); !bytes.Equal(r, []byte{0x90, 0x00}) {
		t.Fatalf("SELECT: % X", r)
	}
	for _, n := range []int{1, 255, 256, 4096, 65000} {
		data := testcard.Pattern(n)
		for i := range data {
			data[i] ^= byte(n) // a different pattern for each size
		}
		r := transmit(extendedAPDU(testcard.INSEcho, data))
		if !bytes.Equal(r, append(data, 0x90, 0x00)) {
			t.Fatalf("extended ECHO of %d bytes: %d bytes back, not byte-exact", n, len(r))
		}
	}
	if r := transmit([]byte{0x80, testcard.INSLong, 0, 0}); len(r) != 1002 || !bytes.Equal(r[:1000], testcard.Pattern(1000)) || !bytes.Equal(r[1000:], []byte{0x90, 0x00}) {
		t.Fatalf("LONG: %d bytes", len(r))
	}
	if r := transmit([]byte{0x80, testcard.INSLong, 0xFF, 0xFD}); len(r) != 65535 {
		t.Fatalf("LONG of 65533 data bytes: %d bytes", len(r))
	}
	sum := sha256.Sum256(testcard.Pattern(4096))
	if r := transmit(extendedAPDU(testcard.INSDigest, testcard.Pattern(4096))); !bytes.Equal(r, append(sum[:], 0x90, 0x00)) {
		t.Fatalf("DIGEST: % X", r)
	}
	// 61xx is passed through as the card sent it.
	if r := transmit([]byte{0x80, testcard.INSChainedLong, 0, 0, 0}); len(r) != 258 || r[256] != 0x61 {
		t.Fatalf("CHAINED LONG first piece: %d bytes, SW % X", len(r), r[len(r)-2:])
	}
	for _, bad := range [][]byte{nil, {0x00, 0xA4, 0x04}, make([]byte, reader.MaxCommand+1)} {
		if _, err := c.Transmit(ctx, bad); err == nil {
			t.Fatalf("Transmit(%d bytes) succeeded", len(bad))
		}
	}
	if n := tc.Transmits(); n != 10 {
		t.Fatalf("the card saw %d commands, want 10 (invalid ones must not reach it)", n)
	}
}

func TestProtocols(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	testcard.Start(t, p.VPCDAddr(0), testcard.Options{ATR: testcard.ATRDual})
	testcard.Start(t, p.VPCDAddr(1), testcard.Options{ATR: testcard.ATRT1})
	waitReader(t, p.Readers[0], "the dual-protocol card", cardIn)
	waitReader(t, p.Readers[1], "the T=1 card", cardIn)
	ctx := context.Background()
	// pcsc-lite keeps the protocol the first connection negotiated until
	// the card is reset, so each connection resets the card when it closes.
	for _, want := range []reader.Protocol{reader.T0, reader.T1} {
		c, err := reader.Connect(ctx, p.Readers[0], &reader.ConnectOptions{Protocol: want, ResetOnClose: true})
		if err != nil {
			t.Fatalf("Connect(%v): %v", want, err)
		}
		r, err := c.Transmit(ctx, []byte{0x80, testcard.INSEcho, 0, 0, 1, 0x42})
		if c.Protocol() != want || err != nil || !bytes.Equal(r, []byte{0x42, 0x90, 0x00}) {
			t.Fatalf("%v: protocol %v, % X, %v", want, c.Protocol(), r, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reader.Connect(ctx, p.Readers[1], &reader.ConnectOptions{Protocol: reader.T0}); !errors.Is(err, reader.ErrProtocol) {
		t.Fatalf("T=0 to a T=1-only card: %v, want ErrProtocol", err)
	}
	// Without the reset, the negotiated protocol sticks.
	c, err := reader.Connect(ctx, p.Readers[0], &reader.ConnectOptions{Protocol: reader.T0})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := reader.Connect(ctx, p.Readers[0], &reader.ConnectOptions{Protocol: reader.T1}); !errors.Is(err, reader.ErrProtocol) {
		t.Fatalf("T=1 after a T=0 connection without reset: %v, want ErrProtocol", err)
	}
}

func TestSharing(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	testcard.Start(t, p.VPCDAddr(0), testcard.Options{})
	a := connectWhenPresent(t, p.Readers[0], nil)
	if _, err := reader.Connect(context.Background(), p.Readers[0], &reader.ConnectOptions{Shared: true}); !errors.Is(err, reader.ErrSharing) {
		t.Fatalf("second connection to an exclusive card: %v, want ErrSharing", err)
	}
	rs, _ := reader.List(context.Background())
	if !rs[0].Exclusive {
		t.Fatalf("List does not show the exclusive use: %+v", rs[0])
	}
	a.Close()
	s1 := connectWhenPresent(t, p.Readers[0], &reader.ConnectOptions{Shared: true})
	s2 := connectWhenPresent(t, p.Readers[0], &reader.ConnectOptions{Shared: true})
	for _, c := range []*reader.Card{s1, s2} {
		if _, err := c.Transmit(context.Background(), []byte{0x80, testcard.INSStatus, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResetByAnother checks that a reset by another connection is
// reconnected and reported, and that the next command goes through.
func TestResetByAnother(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	tc := testcard.Start(t, p.VPCDAddr(0), testcard.Options{})
	a := connectWhenPresent(t, p.Readers[0], &reader.ConnectOptions{Shared: true})
	b := connectWhenPresent(t, p.Readers[0], &reader.ConnectOptions{Shared: true})
	ctx := context.Background()
	status := []byte{0x80, testcard.INSStatus, 0, 0}
	if _, err := a.Transmit(ctx, status); err != nil {
		t.Fatal(err)
	}
	resets := tc.Resets()
	if err := b.Reconnect(ctx, true); err != nil {
		t.Fatalf("Reconnect(reset): %v", err)
	}
	if tc.Resets() != resets+1 {
		t.Fatalf("the card saw %d resets, want %d", tc.Resets(), resets+1)
	}
	n := tc.Transmits()
	_, err := a.Transmit(ctx, status)
	var re *reader.ResetError
	if !errors.Is(err, reader.ErrCardReset) || !errors.As(err, &re) || re.Replaced || !bytes.Equal(re.ATR, testcard.ATRT1) {
		t.Fatalf("Transmit after another's reset = %v, want a ResetError", err)
	}
	if tc.Transmits() != n {
		t.Fatal("the command was sent after the reset")
	}
	if _, err := a.Transmit(ctx, status); err != nil {
		t.Fatalf("Transmit after reconnecting: %v", err)
	}
}

// TestCardPulledAndReinserted checks Transmit across a card removal: no card
// gives ErrNoCard, a card back gives a ResetError with Replaced, then work.
func TestCardPulledAndReinserted(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	tc := testcard.Start(t, p.VPCDAddr(0), testcard.Options{})
	c := connectWhenPresent(t, p.Readers[0], nil)
	ctx := context.Background()
	echo := []byte{0x80, testcard.INSEcho, 0, 0, 1, 0x11}

	tc.Remove()
	waitReader(t, p.Readers[0], "the card to leave", cardOut)
	if _, err := c.Transmit(ctx, echo); !errors.Is(err, reader.ErrNoCard) {
		t.Fatalf("Transmit with the card out = %v, want ErrNoCard", err)
	}
	tc.SetATR(testcard.ATRDual)
	if err := tc.Insert(p.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	waitReader(t, p.Readers[0], "the card back", cardIn)
	_, err := c.Transmit(ctx, echo)
	var re *reader.ResetError
	if errors.As(err, &re) {
		// The card left after the last command: first W_REMOVED_CARD.
		if !re.Replaced || !bytes.Equal(re.ATR, testcard.ATRDual) {
			t.Fatalf("ResetError %+v", re)
		}
	} else if !errors.Is(err, reader.ErrNoCard) {
		t.Fatalf("Transmit with a new card = %v", err)
	} else if err := c.Reconnect(ctx, false); err != nil {
		// The earlier ErrNoCard left the handle invalid: reconnect.
		t.Fatalf("Reconnect: %v", err)
	}
	if !bytes.Equal(c.ATR(), testcard.ATRDual) {
		t.Fatalf("ATR after reconnecting % X", c.ATR())
	}
	if r, err := c.Transmit(ctx, echo); err != nil || !bytes.Equal(r, []byte{0x11, 0x90, 0x00}) {
		t.Fatalf("Transmit after reconnecting: % X %v", r, err)
	}
}

// TestTransmitCancel checks that a Transmit to a card that does not answer
// returns when its context ends, and that the card is usable once it
// answers again.
func TestTransmitCancel(t *testing.T) {
	leaktest.Check(t)
	p := harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true})
	tc := testcard.Start(t, p.VPCDAddr(0), testcard.Options{})
	c := connectWhenPresent(t, p.Readers[0], nil)
	tc.Mute(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Transmit(ctx, []byte{0x80, testcard.INSEcho, 0, 0, 1, 0x22})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Transmit to a mute card = %v, want DeadlineExceeded", err)
	}
	// The next call waits for the one in progress, within its own context.
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := c.Transmit(short, []byte{0x80, testcard.INSStatus, 0, 0}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Transmit while the previous one runs = %v", err)
	}
	tc.Mute(false)
	r, err := c.Transmit(context.Background(), []byte{0x80, testcard.INSEcho, 0, 0, 1, 0x33})
	if err != nil || !bytes.Equal(r, []byte{0x33, 0x90, 0x00}) {
		t.Fatalf("Transmit after unmute: % X %v", r, err)
	}
	if got := tc.Transmits(); got != 2 {
		t.Fatalf("card saw %d commands, want 2 (the cancelled one still reached it; the one that never got the card did not)", got)
	}
}
