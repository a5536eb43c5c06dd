package apdu

// INSGetResponse is the instruction byte of GET RESPONSE (ISO/IEC 7816-4
// section 7.6.1).
const INSGetResponse = 0xC0

// MaxShortData is the most data a short response carries (Ne = 256).
const MaxShortData = 256

// IsGetResponse reports whether c is a GET RESPONSE command (any CLA whose
// chaining and secure-messaging bits are clear, INS C0, P1 P2 00 00).
func IsGetResponse(c Command) bool {
	return c.INS == INSGetResponse && c.P1 == 0 && c.P2 == 0 && c.CLA&0x1C == 0 && c.Data == nil
}

// Splitter hands out a long response in pieces: the first piece and every
// GET RESPONSE answer carry at most Max data bytes and end in 61xx while more
// remains (xx is the number left, 00 meaning 256 or more); the last piece
// carries the response's own status word. This is how a card keeps each
// response within what the transport carries (QEMU's usb-ccid passes at most
// 374 bytes per response to the guest).
//
// The zero value is ready to use with Max = MaxShortData. A Splitter is not
// safe for concurrent use.
type Splitter struct {
	// Max is the most data bytes per piece; 0 means MaxShortData. Values
	// above MaxShortData are lowered to it for GET RESPONSE answers, since a
	// short Le cannot ask for more.
	Max int

	rest []byte
	sw   SW
}

func (s *Splitter) max() int {
	if s.Max <= 0 || s.Max > MaxShortData {
		return MaxShortData
	}
	return s.Max
}

// Pending reports whether data is waiting for GET RESPONSE.
func (s *Splitter) Pending() bool { return s.rest != nil }

// Reset drops any waiting data.
func (s *Splitter) Reset() { s.rest, s.sw = nil, 0 }

// Start begins a response of data and final status word sw and returns its
// first piece. When data fits in one piece the whole response is returned and
// nothing is kept. Start copies what it keeps.
func (s *Splitter) Start(data []byte, sw SW) Response {
	s.Reset()
	return s.first(data, sw, s.max())
}

// StartWithin is Start, but with a first piece of up to firstMax data bytes
// (which may exceed MaxShortData when the command's Ne allowed it); later
// pieces obey Max.
func (s *Splitter) StartWithin(data []byte, sw SW, firstMax int) Response {
	s.Reset()
	return s.first(data, sw, firstMax)
}

func (s *Splitter) first(data []byte, sw SW, n int) Response {
	if n <= 0 {
		n = s.max()
	}
	if len(data) <= n {
		return Append(data, sw)
	}
	s.rest = append([]byte(nil), data[n:]...)
	s.sw = sw
	return Append(data[:n], s.remainingSW())
}

func (s *Splitter) remainingSW() SW {
	if len(s.rest) >= 256 {
		return SWBytesRemaining // 6100: 256 or more
	}
	return SWBytesRemaining | SW(len(s.rest))
}

// Next answers a GET RESPONSE command c while data is pending: at most
// min(c.Ne, Max) bytes, then 61xx or the final status word. With nothing
// pending it returns 6985 (conditions of use not satisfied) and false.
func (s *Splitter) Next(c Command) (Response, bool) {
	if s.rest == nil {
		return SWConditionsNotSatisfied.Bytes(), false
	}
	n := c.Ne
	if n == 0 || n > s.max() {
		n = s.max()
	}
	if n >= len(s.rest) {
		out := Append(s.rest, s.sw)
		s.Reset()
		return out, true
	}
	chunk := s.rest[:n]
	s.rest = s.rest[n:]
	return Append(chunk, s.remainingSW()), true
}
