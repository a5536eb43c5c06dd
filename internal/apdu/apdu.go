// Package apdu parses and builds ISO/IEC 7816-4 command and response APDUs,
// short and extended, and names the status words vscardkit uses.
//
// Parsing never panics and never allocates from a length the peer merely
// claims: every length is checked against the bytes actually present.
package apdu

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("apdu: malformed")

// Command is a parsed command APDU.
type Command struct {
	CLA, INS, P1, P2 byte
	// Data is the command data (Lc bytes); nil when absent. It aliases the
	// buffer given to Parse.
	Data []byte
	// Ne is the maximum number of response bytes expected: 0 when Le is
	// absent, 256 for a short Le of 00, 65536 for an extended Le of 0000.
	Ne int
	// Extended reports whether Lc/Le used the extended (3-byte/2-byte) form.
	Extended bool
}

// Parse parses a command APDU in any of the ISO 7816-4 cases 1, 2S, 3S, 4S,
// 2E, 3E, 4E. Data in the result aliases b.
func Parse(b []byte) (Command, error) {
	var c Command
	if len(b) < 4 {
		return c, fmt.Errorf("%w: %d bytes, need at least 4", ErrMalformed, len(b))
	}
	c.CLA, c.INS, c.P1, c.P2 = b[0], b[1], b[2], b[3]
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return c, nil
	case len(body) == 1: // case 2S
		c.Ne = shortNe(body[0])
		return c, nil
	case body[0] != 0: // case 3S or 4S
		lc := int(body[0])
		switch len(body) {
		case 1 + lc:
			c.Data = body[1:]
		case 2 + lc:
			c.Data = body[1 : 1+lc]
			c.Ne = shortNe(body[1+lc])
		default:
			return c, fmt.Errorf("%w: short Lc %d does not match %d body bytes", ErrMalformed, lc, len(body))
		}
		return c, nil
	}
	// body[0] == 0 and more than one byte: extended form.
	c.Extended = true
	if len(body) == 3 { // case 2E
		c.Ne = extNe(body[1], body[2])
		return c, nil
	}
	if len(body) < 3 {
		return c, fmt.Errorf("%w: truncated extended length", ErrMalformed)
	}
	lc := int(body[1])<<8 | int(body[2])
	if lc == 0 {
		return c, fmt.Errorf("%w: extended Lc of 0", ErrMalformed)
	}
	switch len(body) {
	case 3 + lc: // case 3E
		c.Data = body[3:]
	case 5 + lc: // case 4E
		c.Data = body[3 : 3+lc]
		c.Ne = extNe(body[3+lc], body[4+lc])
	default:
		return c, fmt.Errorf("%w: extended Lc %d does not match %d body bytes", ErrMalformed, lc, len(body))
	}
	return c, nil
}

func shortNe(le byte) int {
	if le == 0 {
		return 256
	}
	return int(le)
}

func extNe(hi, lo byte) int {
	n := int(hi)<<8 | int(lo)
	if n == 0 {
		return 65536
	}
	return n
}

// Bytes encodes c, choosing the extended form when c.Extended is set or when
// the data or Ne do not fit the short form. It returns an error when Data is
// longer than 65535 bytes or Ne is out of range.
func (c Command) Bytes() ([]byte, error) {
	if len(c.Data) > 65535 {
		return nil, fmt.Errorf("apdu: %d data bytes do not fit an APDU", len(c.Data))
	}
	if c.Ne < 0 || c.Ne > 65536 {
		return nil, fmt.Errorf("apdu: Ne %d out of range", c.Ne)
	}
	ext := c.Extended || len(c.Data) > 255 || c.Ne > 256
	out := make([]byte, 0, 4+3+len(c.Data)+3)
	out = append(out, c.CLA, c.INS, c.P1, c.P2)
	if !ext {
		if len(c.Data) > 0 {
			out = append(out, byte(len(c.Data)))
			out = append(out, c.Data...)
		}
		if c.Ne > 0 {
			out = append(out, byte(c.Ne)) // 256 encodes as 00
		}
		return out, nil
	}
	if len(c.Data) > 0 {
		out = append(out, 0, byte(len(c.Data)>>8), byte(len(c.Data)))
		out = append(out, c.Data...)
	}
	if c.Ne > 0 {
		if len(c.Data) == 0 {
			out = append(out, 0)
		}
		out = append(out, byte(c.Ne>>8), byte(c.Ne)) // 65536 encodes as 0000
	}
	return out, nil
}

// Response is a response APDU: data followed by the status word SW1 SW2.
type Response []byte

// SW returns the status word, or 0 when r is shorter than two bytes.
func (r Response) SW() SW {
	if len(r) < 2 {
		return 0
	}
	return SW(r[len(r)-2])<<8 | SW(r[len(r)-1])
}

// Data returns the response data without the status word.
func (r Response) Data() []byte {
	if len(r) < 2 {
		return nil
	}
	return r[:len(r)-2]
}

// Append returns data followed by sw, in a new slice.
func Append(data []byte, sw SW) Response {
	out := make([]byte, len(data)+2)
	copy(out, data)
	out[len(data)] = byte(sw >> 8)
	out[len(data)+1] = byte(sw)
	return out
}

// SW is a status word (SW1<<8 | SW2).
type SW uint16

// Status words used across vscardkit (ISO/IEC 7816-4 section 5.6, NIST SP
// 800-73-4 part 2 appendix A).
const (
	SWOK                      SW = 0x9000
	SWBytesRemaining          SW = 0x6100 // 61xx: xx more bytes with GET RESPONSE
	SWWarningCounter          SW = 0x63C0 // 63Cx: verification failed, x tries left
	SWMemoryFailure           SW = 0x6581
	SWWrongLength             SW = 0x6700
	SWSecurityNotSatisfied    SW = 0x6982
	SWAuthMethodBlocked       SW = 0x6983
	SWConditionsNotSatisfied  SW = 0x6985
	SWCommandNotAllowed       SW = 0x6986
	SWIncorrectData           SW = 0x6A80
	SWFuncNotSupported        SW = 0x6A81
	SWFileNotFound            SW = 0x6A82
	SWNotEnoughMemory         SW = 0x6A84
	SWIncorrectP1P2           SW = 0x6A86
	SWReferencedDataNotFound  SW = 0x6A88
	SWWrongLe                 SW = 0x6C00 // 6Cxx: wrong Le, xx is the right one
	SWINSNotSupported         SW = 0x6D00
	SWCLANotSupported         SW = 0x6E00
	SWUnknown                 SW = 0x6F00
	SWLastCommandExpected     SW = 0x6883
	SWCommandChainUnsupported SW = 0x6884
)

// Bytes returns the two bytes of sw.
func (sw SW) Bytes() []byte { return []byte{byte(sw >> 8), byte(sw)} }

// SW1 returns the first byte.
func (sw SW) SW1() byte { return byte(sw >> 8) }

// SW2 returns the second byte.
func (sw SW) SW2() byte { return byte(sw) }

func (sw SW) String() string { return fmt.Sprintf("%04X", uint16(sw)) }
