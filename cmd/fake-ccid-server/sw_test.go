package main

import (
	"testing"

	"github.com/vscardkit/vscardkit/internal/apdu"
)

func TestSWMeaning(t *testing.T) {
	verify := []byte{0x00, 0x20, 0x00, 0x80, 0x08, 1, 2, 3, 4, 5, 6, 7, 8}
	query := []byte{0x00, 0x20, 0x00, 0x80}
	selectPIV := []byte{0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00}
	for _, tc := range []struct {
		cmd  []byte
		sw   apdu.SW
		want string
	}{
		{selectPIV, 0x9000, "success"},
		{verify, 0x63C1, "wrong PIN, 1 try left"},
		{verify, 0x63C3, "wrong PIN, 3 tries left"},
		{verify, 0x63C0, "wrong PIN, no tries left"},
		{query, 0x63C2, "PIN not verified, 2 tries left"},
		{selectPIV, 0x63C2, "verification failed, 2 tries left"},
		{selectPIV, 0x616F, "111 more bytes to come (GET RESPONSE)"},
		{selectPIV, 0x6100, "256 or more bytes to come (GET RESPONSE)"},
		{selectPIV, 0x6C10, "wrong Le: the card has 16 bytes"},
		{verify, 0x6982, "security status not satisfied: VERIFY the PIN first"},
		{verify, 0x6983, "PIN (or key) blocked"},
		{selectPIV, 0x6A82, "file or application not found"},
		{selectPIV, 0x6D00, "instruction not supported"},
		{selectPIV, 0x6E00, "class not supported"},
		{selectPIV, 0x6A88, "referenced data (key, object) not found"},
		{selectPIV, 0x6310, ""},
		{selectPIV, 0x1234, ""},
	} {
		if got := swMeaning(tc.cmd, tc.sw); got != tc.want {
			t.Errorf("%X after %X: %q, want %q", uint16(tc.sw), tc.cmd, got, tc.want)
		}
	}
}
