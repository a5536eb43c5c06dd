package pcscsource

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/vscardkit/vscardkit/internal/testcard"
	"github.com/vscardkit/vscardkit/vscard"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestForGuest(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		// The test card's T=1-only ATR becomes its dual-protocol one.
		{"testcard T=1", hex.EncodeToString(testcard.ATRT1), hex.EncodeToString(testcard.ATRDual)},
		// YubiKey 5 (T=1 only): 3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40
		{"YubiKey", "3bfd1300008131fe158073c021c057597562694b657940", "3bfd130000808131fe158073c021c057597562694b6579c0"},
		// Already offering T=0: unchanged.
		{"T=0 only", hex.EncodeToString(testcard.ATRT0), hex.EncodeToString(testcard.ATRT0)},
		{"no TD", "3b00", "3b00"},
		{"dual", hex.EncodeToString(testcard.ATRDual), hex.EncodeToString(testcard.ATRDual)},
		// TD1 announcing TA2 (specific mode): left alone.
		{"TA2 follows", "3b8011" + "01" + "10", "3b801101" + "10"},
		// Malformed: left alone.
		{"truncated", "3b8f", "3b8f"},
	} {
		got, changed := ForGuest(unhex(t, tc.in))
		if hex.EncodeToString(got) != tc.want {
			t.Errorf("%s: ForGuest(%s) = %x, want %s", tc.name, tc.in, got, tc.want)
		}
		if changed != (tc.in != tc.want) {
			t.Errorf("%s: changed = %v", tc.name, changed)
		}
		if changed {
			if err := vscard.CheckATR(got); err != nil {
				t.Errorf("%s: QEMU would refuse %x: %v", tc.name, got, err)
			}
			info, err := parseATR(got)
			if err != nil || info.protocols[0] != 0 || !bytes.Contains(got[info.histStart:], unhex(t, tc.in)[len(unhex(t, tc.in))-1-info.hist:len(unhex(t, tc.in))-1]) {
				t.Errorf("%s: %x: %+v %v", tc.name, got, info, err)
			}
		}
	}
}
