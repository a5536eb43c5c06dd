package reader

import "unicode/utf16"

// The portable halves of the per-OS status contexts (sys_*.go): reading
// SCardListReaders' multi-string, and the PnP pseudo-reader's state on
// Windows. They are here, in no build-tagged file, so that they are tested
// on every platform.

// multiStringUnit is a character of a PC/SC multi-string: a byte
// (pcsc-lite, macOS: UTF-8) or a UTF-16 code unit (SCardListReadersW).
type multiStringUnit interface{ ~byte | ~uint16 }

// listMultiString runs SCardListReaders' two calls: call(nil, &n) asks for
// the length n (in units), call(buf, &n) fills buf and sets n to the
// length written. It starts over when a reader appeared between the two
// (SCARD_E_INSUFFICIENT_BUFFER), and returns nil for no readers
// (SCARD_E_NO_READERS_AVAILABLE, or an empty list). op names the call in
// errors.
func listMultiString[T multiStringUnit](op string, call func(buf []T, n *uint32) uint32) ([]T, error) {
	for {
		var n uint32
		rv := call(nil, &n)
		if rv == codeNoReaders {
			return nil, nil
		}
		if err := pcscErr(op, rv); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]T, n)
		rv = call(buf, &n)
		switch rv {
		case codeNoReaders:
			return nil, nil
		case codeInsufficientBuffer:
			continue // a reader appeared between the two calls
		}
		if err := pcscErr(op, rv); err != nil {
			return nil, err
		}
		return buf[:min(int(n), len(buf))], nil
	}
}

// splitMultiString splits a PC/SC multi-string (NUL-separated names ending
// with an empty one) of bytes.
func splitMultiString(b []byte) []string {
	var out []string
	for _, name := range splitUnits(b) {
		out = append(out, string(name))
	}
	return out
}

// splitMultiStringUTF16 splits a UTF-16 multi-string, as
// SCardListReadersW returns it; unpaired surrogates become U+FFFD.
func splitMultiStringUTF16(u []uint16) []string {
	var out []string
	for _, name := range splitUnits(u) {
		out = append(out, string(utf16.Decode(name)))
	}
	return out
}

// splitUnits splits a multi-string at its NULs, stopping at the first
// empty name or the end of s (a missing final NUL is tolerated).
func splitUnits[T multiStringUnit](s []T) [][]T {
	var out [][]T
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != 0 {
			i++
		}
		if i == 0 {
			break
		}
		out = append(out, s[:i])
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return out
}

// pnpTracker keeps what the PnP pseudo-reader last reported, for Windows:
// there the upper 16 bits of its event state count the readers, and a call
// whose current state for it does not carry that count returns at once
// (Microsoft's documentation says to pass zero; a watcher that does so
// wakes up again and again while a reader is attached). pcsc-lite waits
// either way. The zero value knows nothing yet.
type pnpTracker struct {
	last uint32 // the last event state, CHANGED cleared
}

// current returns the state to pass for st: st.current, except for the PnP
// pseudo-reader when the caller passes "unaware", which gets the state the
// tracker saw last.
func (p *pnpTracker) current(st readerState) uint32 {
	if st.name == pnpReader && st.current == stateUnaware {
		return p.last
	}
	return st.current
}

// observe records the PnP pseudo-reader's event state from a finished
// call.
func (p *pnpTracker) observe(st readerState) {
	if st.name == pnpReader {
		p.last = st.event &^ stateChanged
	}
}
