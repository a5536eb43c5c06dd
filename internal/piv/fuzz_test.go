package piv_test

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// A fuzz input is a session: APDUs, each after a 2-byte big-endian length;
// a zero length is a card reset. When the first byte has its top bit set, the
// store is behind a PIN guard. Sessions stop after maxSessionAPDUs, so that
// no input costs more than that many commands.

const maxSessionAPDUs = 64

func encodeSession(cmds [][]byte) []byte {
	var out []byte
	for _, c := range cmds {
		out = append(out, byte(len(c)>>8), byte(len(c)))
		out = append(out, c...)
	}
	return out
}

func splitSession(in []byte) [][]byte {
	var out [][]byte
	for len(in) >= 2 && len(out) < maxSessionAPDUs {
		n := int(in[0])<<8 | int(in[1])
		in = in[2:]
		n = min(n, len(in))
		out = append(out, in[:n])
		in = in[n:]
	}
	return out
}

// Fuzz keys are small, so that each session is fast: 9A RSA 1024, 9C P-256,
// 9D P-384, 9E P-256.
var (
	fuzzOnce  sync.Once
	fuzzPairs map[piv.Slot]softstore.KeyPair
)

func fuzzKeys(t testing.TB) map[piv.Slot]softstore.KeyPair {
	fuzzOnce.Do(func() {
		fuzzPairs = makePairs(map[piv.Slot]softstore.Algorithm{
			piv.SlotAuthentication:     softstore.RSA1024,
			piv.SlotSignature:          softstore.P256,
			piv.SlotKeyManagement:      softstore.P384,
			piv.SlotCardAuthentication: softstore.P256,
		})
	})
	if fuzzPairs == nil {
		t.Fatal("making the fuzz key pairs failed")
	}
	return fuzzPairs
}

// FuzzTransmit sends random sessions to an applet and checks that every
// response is well formed and no more than 258 bytes, and that no key that
// needs the PIN is used without a VERIFY that succeeded. The seed corpus is
// testdata/fuzz/FuzzTransmit (written by TestFuzzSeeds -update).
func FuzzTransmit(f *testing.F) {
	pairs := fuzzKeys(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, in []byte) {
		store, err := softstore.New(pairs, softstore.Options{MaxTries: 5})
		if err != nil {
			t.Fatal(err)
		}
		var s piv.Store = store
		if len(in) > 0 && in[0]&0x80 != 0 {
			s = piv.NewPINGuard(store, piv.GuardOptions{})
		}
		a := piv.New(s, piv.Options{})
		verified := false // what the responses say about the PIN
		for _, cmd := range splitSession(in) {
			if len(cmd) == 0 {
				a.Reset()
				verified = false
				continue
			}
			resp, err := a.Transmit(ctx, cmd)
			if err != nil {
				t.Fatalf("Transmit(%X): %v", cmd, err)
			}
			r := apdu.Response(resp)
			if len(r) < 2 || len(r) > 258 {
				t.Fatalf("Transmit(%X): %d-byte response", cmd, len(r))
			}
			sw := r.SW()
			if sw&0xFF00 == apdu.SWBytesRemaining && len(r.Data()) == 0 {
				t.Fatalf("Transmit(%X): 61xx without data", cmd)
			}
			if len(cmd) < 4 || cmd[0] != 0x00 {
				continue
			}
			ok := sw == apdu.SWOK || sw&0xFF00 == apdu.SWBytesRemaining
			switch ins, p1, p2 := cmd[1], cmd[2], cmd[3]; {
			case ins == 0x20 && p2 == 0x80 && p1 == 0x00 && len(cmd) > 5 && cmd[4] != 0:
				if ok {
					verified = true
				}
				if sw&0xFFF0 == 0x63C0 || sw == apdu.SWAuthMethodBlocked {
					verified = false
				}
			case ins == 0x20 && p1 == 0xFF && ok:
				verified = false
			case ins == 0x87 && (p2 == 0x9A || p2 == 0x9C || p2 == 0x9D) && ok && !verified:
				t.Fatalf("GENERAL AUTHENTICATE with %02X succeeded without a verified PIN: %X", p2, cmd)
			}
		}
	})
}

// seedSessions are the fuzz seeds: what OpenSC, piv-go and Windows send,
// and the errors a confused client makes.
func seedSessions() map[string][][]byte {
	g := elliptic.P384().Params()
	p384G := append([]byte{0x04}, append(g.Gx.FillBytes(make([]byte, 48)), g.Gy.FillBytes(make([]byte, 48))...)...)
	rsaBlock := append(h("0001"), bytes.Repeat([]byte{0xFF}, 126)...)
	digest := bytes.Repeat([]byte{0x5A}, 32)
	ga := func(alg, slot byte, tag byte, in []byte) []byte {
		c, _ := apdu.Command{INS: 0x87, P1: alg, P2: slot, Data: dynAuth(tag, in), Ne: 256}.Bytes()
		return c
	}
	x := func(s ...string) [][]byte {
		var out [][]byte
		for _, c := range s {
			out = append(out, h(c))
		}
		return out
	}
	verify := verifyCmd("123456")
	sign9A := dynAuth(0x81, rsaBlock)
	return map[string][][]byte{
		"opensc": append(x(
			"00CB3FFF035C017E00",
			"00A4040009A0000003080000100000",
			"00CB3FFF055C035FC10708", "00C0000000",
			"00CB3FFF055C035FC10C08",
			"00CB3FFF055C035FC10208", "00C0000000",
			"00CB3FFF055C035FC10508", "00C0000000", "00C0000000",
			"00200080",
		), verify, ga(0x06, 0x9A, 0x81, rsaBlock), verify, ga(0x11, 0x9C, 0x81, digest),
			ga(0x14, 0x9D, 0x85, p384G), h("0087009B047C02810000")),
		"piv-go": append(x(
			"00A4040005A000000308",
			"00FD000000",
			"00CB3FFF055C035FC10A",
			"0020008000",
			"00F99C0000",
		), verify,
			// piv-go chains at 255 bytes; an RSA 1024 template is shorter,
			// so the seed chains at 100 to have a chain.
			append(h("1087069A 64"), sign9A[:100]...),
			append([]byte{0x00, 0x87, 0x06, 0x9A, byte(len(sign9A) - 100)}, sign9A[100:]...)),
		"windows": x(
			"00A404000BA0000003974349445F0100",
			"00A40000023F00",
			"00A40400 09 A00000030800001000 00",
			"00CB3FFF055C035FC102",
			"00CB3FFF055C035FC10C",
			"00CB3FFF035C017E",
			"00CB3FFF055C035FC101",
			"00200080",
		),
		"errors": append(x(
			"80A4040005A000000308", "0CA4040005A000000308", "01A4040005A000000308",
			"00A404", "00A4040008A000000308", "00B0000000",
			"0020008008303030303030FFFF", "0020008008303030303030FFFF", "0020008008303030303030FFFF",
			"00200080",
			"00240080103132333435363738FFFFFFFFFFFFFFFF",
			"002C0080103132333435363738313233343536FFFF",
			"0087119E 00 0800"+strings.Repeat("00", 0x800),
			"1087119E 00 0800"+strings.Repeat("00", 0x800),
			"1087119E 00 0800"+strings.Repeat("00", 0x800),
			"1087119E 01 00",
			"00C0000000",
		), nil, verify, ga(0x14, 0x9D, 0x85, p384G[:49]), ga(0x07, 0x9A, 0x81, rsaBlock)),
	}
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzTransmit in step with seedSessions:
// -update writes the files, otherwise they must match.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzTransmit")
	for name, cmds := range seedSessions() {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", encodeSession(cmds))
		path := filepath.Join(dir, name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestFuzzSeeds -update ./internal/piv)", err)
		}
		if string(got) != want {
			t.Errorf("%s is stale (run go test -run TestFuzzSeeds -update ./internal/piv)", path)
		}
	}
}

// The seed sessions do what their names say: the good ones succeed.
func TestSeedSessions(t *testing.T) {
	pairs := fuzzKeys(t)
	for _, name := range []string{"opensc", "piv-go", "windows"} {
		store, _ := softstore.New(pairs, softstore.Options{})
		c := newCard(t, store, piv.Options{})
		var last apdu.SW
		for _, cmd := range seedSessions()[name] {
			last = c.send(cmd).SW()
			if last&0xFF00 != 0x9000 && last&0xFF00 != 0x6100 && last != 0x63C3 && last != apdu.SWFileNotFound && last != apdu.SWINSNotSupported {
				t.Errorf("%s: %X answered %v", name, cmd, last)
			}
		}
		if last != apdu.SWOK && !(name == "windows" && last == 0x63C3) {
			t.Errorf("%s: last command answered %v", name, last)
		}
	}
}
