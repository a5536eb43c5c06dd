package piv

import "errors"

// BER-TLV as PIV uses it (SP 800-73-4 part 2, appendix A; ISO/IEC 7816-4
// section 5.2.2): one- to three-byte tags, lengths of at most three bytes
// (82 xx xx, so values up to 65535 bytes).

// errTLV is returned by the parser for any malformed TLV; the applet answers
// it with 6A80.
var errTLV = errors.New("piv: malformed BER-TLV")

// maxTLVLen is the longest value appendTLV encodes.
const maxTLVLen = 0xFFFF

// appendTLV appends tag (1-3 bytes, big-endian, as written in the spec) and
// value to dst. Values longer than maxTLVLen are a programming error caught
// by the callers, which bound what they encode.
func appendTLV(dst []byte, tag uint32, value []byte) []byte {
	dst = appendTag(dst, tag)
	dst = appendLen(dst, len(value))
	return append(dst, value...)
}

func appendTag(dst []byte, tag uint32) []byte {
	switch {
	case tag > 0xFFFF:
		return append(dst, byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xFF:
		return append(dst, byte(tag>>8), byte(tag))
	default:
		return append(dst, byte(tag))
	}
}

func appendLen(dst []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n <= 0xFF:
		return append(dst, 0x81, byte(n))
	default:
		return append(dst, 0x82, byte(n>>8), byte(n))
	}
}

// tlv is one parsed element; value aliases the parsed buffer.
type tlv struct {
	tag   uint32
	value []byte
}

// readTLV parses the element at the start of b and returns it and the bytes
// after it. It never reads past b and never allocates.
func readTLV(b []byte) (tlv, []byte, error) {
	var t tlv
	if len(b) < 2 {
		return t, nil, errTLV
	}
	i := 0
	t.tag = uint32(b[0])
	i++
	if b[0]&0x1F == 0x1F { // multi-byte tag: more bytes while bit 8 is set
		for n := 0; ; n++ {
			if i >= len(b) || n == 2 {
				return t, nil, errTLV
			}
			t.tag = t.tag<<8 | uint32(b[i])
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return t, nil, errTLV
	}
	l := int(b[i])
	i++
	switch {
	case l < 0x80:
	case l == 0x81:
		if i >= len(b) {
			return t, nil, errTLV
		}
		l = int(b[i])
		i++
	case l == 0x82:
		if i+1 >= len(b) {
			return t, nil, errTLV
		}
		l = int(b[i])<<8 | int(b[i+1])
		i += 2
	default:
		return t, nil, errTLV
	}
	if l > len(b)-i {
		return t, nil, errTLV
	}
	t.value = b[i : i+l]
	return t, b[i+l:], nil
}

// readOnlyTLV parses b as exactly one element with nothing after it.
func readOnlyTLV(b []byte) (tlv, error) {
	t, rest, err := readTLV(b)
	if err != nil {
		return t, err
	}
	if len(rest) != 0 {
		return t, errTLV
	}
	return t, nil
}
