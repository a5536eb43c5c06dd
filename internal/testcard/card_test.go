package testcard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

func h(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func transmit(t *testing.T, c *Card, cmd []byte) []byte {
	t.Helper()
	r, err := c.Transmit(context.Background(), cmd)
	if err != nil {
		t.Fatalf("Transmit(% x): %v", cmd, err)
	}
	return r
}

func sw(r []byte) string { return hex.EncodeToString(r[len(r)-2:]) }

// extended builds an extended case-4 APDU 80 INS 00 00 with data.
func extended(ins byte, data []byte) []byte {
	out := []byte{0x80, ins, 0, 0, 0, byte(len(data) >> 8), byte(len(data))}
	return append(append(out, data...), 0, 0)
}

func TestATRs(t *testing.T) {
	want := map[string]string{
		"T1":   "3b8b010056767363617264009000" + "5d",
		"T0":   "3b0b0056767363617264009000",
		"Dual": "3b8b80010056767363617264009000" + "dd",
	}
	for name, atr := range map[string][]byte{"T1": ATRT1, "T0": ATRT0, "Dual": ATRDual} {
		if got := hex.EncodeToString(atr); got != want[name] {
			t.Errorf("ATR%s = %s, want %s", name, got, want[name])
		}
		if n, err := atrLen(atr); err != nil || n != len(atr) {
			t.Errorf("ATR%s: ISO 7816-3 length %d (%v), have %d bytes", name, n, err, len(atr))
		}
	}
}

// atrLen returns the length ISO/IEC 7816-3 gives the ATR from its format
// bytes: TS, T0, the interface bytes Y announces, K historical bytes, and TCK
// when a protocol other than T=0 is offered.
func atrLen(atr []byte) (int, error) {
	n := 2
	y := atr[1] >> 4
	k := int(atr[1] & 0x0F)
	tck := false
	for y != 0 {
		td := -1
		for bit := 0; bit < 4; bit++ {
			if y&(1<<bit) != 0 {
				if bit == 3 {
					td = n
				}
				n++
			}
		}
		if td < 0 {
			break
		}
		if atr[td]&0x0F != 0 {
			tck = true
		}
		y = atr[td] >> 4
	}
	n += k
	if tck {
		var x byte
		for _, b := range atr[1:] {
			x ^= b
		}
		if x != 0 {
			return 0, errBadTCK
		}
		n++
	}
	return n, nil
}

type strErr string

func (e strErr) Error() string { return string(e) }

const errBadTCK = strErr("TCK does not check")

func TestTable(t *testing.T) {
	c := New(Options{})
	if r := transmit(t, c, append(h("00A4040007"), TestAID...)); sw(r) != "9000" || len(r) != 2 || !c.Selected() {
		t.Fatalf("SELECT test AID: % x, selected %v", r, c.Selected())
	}
	if r := transmit(t, c, h("00A4040003A00000")); sw(r) != "6a82" || c.Selected() {
		t.Fatalf("SELECT other AID: % x", r)
	}
	// ECHO, short and extended.
	if r := transmit(t, c, h("8010000003CAFE4200")); !bytes.Equal(r, h("CAFE429000")) {
		t.Fatalf("ECHO: % x", r)
	}
	for _, n := range []int{4096, 65000} {
		data := Pattern(n)
		r := transmit(t, c, extended(INSEcho, data))
		if !bytes.Equal(r[:len(r)-2], data) || sw(r) != "9000" {
			t.Fatalf("extended ECHO of %d bytes: got %d bytes, SW %s", n, len(r)-2, sw(r))
		}
	}
	// LONG: one response, no 61xx.
	if r := transmit(t, c, h("8012000000")); len(r) != 1002 || !bytes.Equal(r[:1000], Pattern(1000)) || sw(r) != "9000" {
		t.Fatalf("LONG: %d bytes, SW %s", len(r), sw(r))
	}
	if r := transmit(t, c, h("8012012C")); len(r) != 302 || sw(r) != "9000" {
		t.Fatalf("LONG 300: %d bytes", len(r))
	}
	if r := transmit(t, c, h("8012FFFF")); sw(r) != "6700" {
		t.Fatalf("LONG 65535: SW %s, want 6700", sw(r))
	}
	// DIGEST.
	sum := sha256.Sum256(Pattern(4096))
	if r := transmit(t, c, extended(INSDigest, Pattern(4096))); !bytes.Equal(r, append(sum[:], 0x90, 0x00)) {
		t.Fatalf("DIGEST: % x", r)
	}
	// CHAINED LONG and GET RESPONSE.
	r := transmit(t, c, h("8016000000"))
	var got []byte
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("too many GET RESPONSE rounds")
		}
		got = append(got, r[:len(r)-2]...)
		if sw(r) == "9000" {
			break
		}
		if r[len(r)-2] != 0x61 || len(r)-2 > 256 {
			t.Fatalf("piece of %d bytes, SW %s", len(r)-2, sw(r))
		}
		r = transmit(t, c, []byte{0x00, 0xC0, 0x00, 0x00, r[len(r)-1]})
	}
	if !bytes.Equal(got, Pattern(1000)) {
		t.Fatalf("CHAINED LONG reassembled %d bytes that differ", len(got))
	}
	if r := transmit(t, c, h("00C0000000")); sw(r) != "6985" {
		t.Fatalf("GET RESPONSE with nothing pending: SW %s", sw(r))
	}
	// Unknown commands.
	if r := transmit(t, c, h("80FE0000")); sw(r) != "6d00" {
		t.Fatalf("unknown INS: %s", sw(r))
	}
	if r := transmit(t, c, h("A0100000")); sw(r) != "6e00" {
		t.Fatalf("unknown CLA: %s", sw(r))
	}
	if r := transmit(t, c, h("80")); sw(r) != "6700" {
		t.Fatalf("one-byte APDU: %s", sw(r))
	}
	// STATUS counts every APDU, itself included.
	n := c.Transmits()
	if r := transmit(t, c, h("8018000005")); !bytes.Equal(r, []byte{0, 0, 0, byte(n + 1), 0, 0x90, 0x00}) {
		t.Fatalf("STATUS after %d transmits: % x", n, r)
	}
}

func TestProgramAndReset(t *testing.T) {
	c := New(Options{})
	c.Program(h("80FE0000"), h("01029000"))
	if r := transmit(t, c, h("80FE0000")); !bytes.Equal(r, h("01029000")) {
		t.Fatalf("programmed command: % x", r)
	}
	c.Program(h("8010000001AA"), h("6A80"))
	if r := transmit(t, c, h("8010000001AA")); !bytes.Equal(r, h("6A80")) {
		t.Fatalf("program does not take precedence: % x", r)
	}
	c.ClearProgram()
	if r := transmit(t, c, h("80FE0000")); sw(r) != "6d00" {
		t.Fatalf("after ClearProgram: % x", r)
	}
	transmit(t, c, append(h("00A4040007"), TestAID...))
	transmit(t, c, h("8016000000"))
	c.Reset()
	if c.Selected() || c.Resets() != 1 {
		t.Fatal("Reset kept the selection")
	}
	if r := transmit(t, c, h("00C0000000")); sw(r) != "6985" {
		t.Fatalf("GET RESPONSE after reset: %s", sw(r))
	}
	c.PowerOn()
	if c.PowerOns() != 1 {
		t.Fatalf("PowerOns = %d", c.PowerOns())
	}
}

func TestMute(t *testing.T) {
	c := New(Options{})
	c.Mute(true)
	res := make(chan []byte, 1)
	go func() {
		r, _ := c.Transmit(context.Background(), h("8010000001AA"))
		res <- r
	}()
	select {
	case r := <-res:
		t.Fatalf("a mute card answered % x", r)
	case <-time.After(50 * time.Millisecond):
	}
	c.Mute(false)
	if r := <-res; !bytes.Equal(r, h("AA9000")) {
		t.Fatalf("answer after unmute: % x", r)
	}

	c.Mute(true)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Transmit(ctx, h("8010000001AA"))
		errc <- err
	}()
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("mute Transmit after cancel: %v", err)
	}
}
