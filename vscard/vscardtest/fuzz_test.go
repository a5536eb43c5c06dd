package vscardtest

import (
	"testing"

	"github.com/vscardkit/vscardkit/internal/conformance"
)

// FuzzHost feeds arbitrary byte streams, in arbitrary pieces, to the
// QEMU-faithful host's input buffer: no panic, and the buffer never
// overflows.
func FuzzHost(f *testing.F) {
	seeds, err := conformance.Seeds("../../testdata/conformance")
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range seeds {
		f.Add(c, uint16(4096))
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint16) {
		h := NewHost(nil)
		n := int(chunk)%qemuReadChunk + 1
		for len(stream) > 0 {
			room := len(h.in) - h.inPos
			if room == 0 {
				return // stalled, as QEMU would be
			}
			k := min(n, room, len(stream))
			copy(h.in[h.inPos:], stream[:k])
			h.inPos += k
			stream = stream[k:]
			h.process()
			if h.inHdr > h.inPos || h.inPos > len(h.in) {
				t.Fatalf("buffer state pos %d hdr %d", h.inPos, h.inHdr)
			}
		}
	})
}
