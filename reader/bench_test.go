//go:build cgo

// The tests in this file talk to a real pcscd; a build without cgo has no
// PC/SC (nocgo_test.go tests what it does instead).

package reader_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/testcard"
)

// BenchmarkTransmitDirect measures APDU round trips through pcscd, the vpcd
// driver and internal/testcard with direct SCardTransmit calls: the baseline
// for the vscclient-go path. Sub-benchmarks: a 7-byte ECHO (the typical
// short APDU), a 4 KiB extended ECHO, and LONG (a 1000-byte response).
func BenchmarkTransmitDirect(b *testing.B) {
	p := harness.StartPCSCD(b, harness.PCSCDOptions{InProcess: true})
	testcard.Start(b, p.VPCDAddr(0), testcard.Options{})
	card := connectWhenPresent(b, p.Readers[0], nil)
	ctx := context.Background()
	cases := []struct {
		name string
		cmd  []byte
		want int
	}{
		{"echo-short", []byte{0x80, testcard.INSEcho, 0, 0, 2, 0xAB, 0xCD}, 4},
		{"echo-4KiB", extendedAPDU(testcard.INSEcho, testcard.Pattern(4096)), 4098},
		{"long-1000", []byte{0x80, testcard.INSLong, 0, 0}, 1002},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.cmd) + tc.want))
			harness.BenchRoundTrips(b, func() error {
				r, err := card.Transmit(ctx, tc.cmd)
				if err != nil {
					return err
				}
				if len(r) != tc.want || !bytes.Equal(r[len(r)-2:], []byte{0x90, 0x00}) {
					return fmt.Errorf("response of %d bytes, want %d", len(r), tc.want)
				}
				return nil
			})
		})
	}
}
