package piv

import (
	"bytes"
	"testing"
)

// FuzzTLV parses arbitrary bytes as BER-TLV lists and as dynamic
// authentication templates: no panic, values within the input, and every
// element it accepts encodes back to the bytes it came from.
func FuzzTLV(f *testing.F) {
	for _, seed := range [][]byte{
		{0x7C, 0x04, 0x82, 0x00, 0x81, 0x00},
		{0x7C, 0x81, 0x03, 0x82, 0x01, 0xAA},
		{0x5C, 0x03, 0x5F, 0xC1, 0x05},
		{0x53, 0x82, 0x01, 0x00},
		{0x7C, 0x06, 0x85, 0x04, 0x04, 0x01, 0x02, 0x03},
		{0x5F, 0xC1, 0x02, 0x01, 0x00},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rest := b
		for len(rest) > 0 {
			el, next, err := readTLV(rest)
			if err != nil {
				break
			}
			if len(next) >= len(rest) {
				t.Fatalf("readTLV made no progress on %x", rest)
			}
			consumed := rest[:len(rest)-len(next)]
			if !bytes.HasSuffix(consumed, el.value) {
				t.Fatalf("value %x is not the tail of the element %x", el.value, consumed)
			}
			if enc := appendTLV(nil, el.tag, el.value); len(enc) > len(consumed) {
				t.Fatalf("element %x re-encodes longer: %x", consumed, enc)
			}
			rest = next
		}
		if d, err := parseDynAuth(b); err == nil {
			for tag := byte(0x80); tag <= 0x85; tag++ {
				if v := d.get(tag); len(v) > len(b) || v != nil && !d.present(tag) {
					t.Fatalf("template %x: tag %X value %x", b, tag, v)
				}
			}
		}
	})
}
