package reader

import (
	"fmt"
	"strings"
)

// Protocol is a set of smart card transmission protocols (the PC/SC
// SCARD_PROTOCOL_* bits).
type Protocol uint32

// Protocols.
const (
	T0  Protocol = 0x0001
	T1  Protocol = 0x0002
	Any          = T0 | T1 // let the reader and card choose
)

// String returns the protocols as "T=0", "T=1", "T=0|T=1" or "none".
func (p Protocol) String() string {
	var parts []string
	if p&T0 != 0 {
		parts = append(parts, "T=0")
	}
	if p&T1 != 0 {
		parts = append(parts, "T=1")
	}
	if rest := p &^ Any; rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%X", uint32(rest)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// ATRProtocols returns the protocols an ATR offers (ISO/IEC 7816-3 section
// 8.2.3): T=0 when no TD byte names a protocol, otherwise every T=0 or T=1
// that a TDi names. It returns 0 for an ATR too short or malformed to tell.
func ATRProtocols(atr []byte) Protocol {
	if len(atr) < 2 || (atr[0] != 0x3B && atr[0] != 0x3F) {
		return 0
	}
	var p Protocol
	named := false
	i := 1 // index of the byte holding Y (T0, then each TD)
	for {
		y := atr[i] >> 4
		next := i
		for bit := byte(1); bit <= 4; bit <<= 1 { // TA, TB, TC
			if y&bit != 0 {
				next++
			}
		}
		if y&8 == 0 {
			break
		}
		next++ // TD
		if next >= len(atr) {
			return 0
		}
		i = next
		switch atr[i] & 0x0F {
		case 0:
			p |= T0
		case 1:
			p |= T1
		}
		named = true
	}
	if !named {
		return T0
	}
	return p
}
