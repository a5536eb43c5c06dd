package vpcd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Control codes: the whole payload of a 1-byte frame from the driver
// (VPCD_CTRL_* in vpcd.h).
const (
	CtrlPowerOff byte = 0 // no reply
	CtrlPowerOn  byte = 1 // no reply
	CtrlReset    byte = 2 // no reply
	CtrlGetATR   byte = 4 // reply: the ATR
)

// MaxPayload is the largest payload a frame can carry: its length is a 16-bit
// field.
const MaxPayload = 0xFFFF

// HeaderLen is the size of a frame's length prefix.
const HeaderLen = 2

// DefaultPort is the port vpcd listens on for slot 0 when reader.conf gives
// none (VPCDPORT in vpcd.h); Debian's /etc/reader.conf.d/vpcd uses 0x8C7B,
// the same number.
const DefaultPort = 35963

// ErrFrameTooLong is returned when asked to write a payload longer than
// MaxPayload.
var ErrFrameTooLong = errors.New("vpcd: frame payload longer than 65535 bytes")

// ErrTruncated is wrapped when a stream ends inside a frame.
var ErrTruncated = errors.New("vpcd: truncated frame")

// ReadFrame reads one frame from r and returns its payload. The payload is
// read into buf when it fits (buf's capacity) and into a new slice otherwise;
// the 16-bit length bounds any allocation to MaxPayload bytes. A stream that
// ends cleanly before a frame starts gives io.EOF; one that ends inside a
// frame gives an error wrapping ErrTruncated and io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: in the length prefix: %w", ErrTruncated, err)
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if cap(buf) >= n {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: reading %d payload bytes: %w", ErrTruncated, n, err)
	}
	return buf, nil
}

// DecodeFrame decodes the frame at the start of b without copying: it returns
// the payload (aliasing b) and the bytes after the frame. When b holds less
// than a whole frame it returns an error wrapping ErrTruncated.
func DecodeFrame(b []byte) (payload, rest []byte, err error) {
	if len(b) < HeaderLen {
		return nil, b, fmt.Errorf("%w: %d bytes, the length prefix needs %d", ErrTruncated, len(b), HeaderLen)
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-HeaderLen < n {
		return nil, b, fmt.Errorf("%w: length %d, only %d payload bytes", ErrTruncated, n, len(b)-HeaderLen)
	}
	return b[HeaderLen : HeaderLen+n], b[HeaderLen+n:], nil
}

// AppendFrame appends the frame carrying payload to dst.
func AppendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return dst, fmt.Errorf("%w: %d bytes", ErrFrameTooLong, len(payload))
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(payload)))
	return append(dst, payload...), nil
}

// WriteFrame writes the frame carrying payload to w in a single Write, so
// that the length prefix and the payload leave in one TCP segment where they
// fit.
func WriteFrame(w io.Writer, payload []byte) error {
	b, err := AppendFrame(make([]byte, 0, HeaderLen+len(payload)), payload)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("vpcd: writing a frame: %w", err)
	}
	return nil
}

// Kind says what a frame from the driver asks for.
type Kind int

// The kinds of frame the driver sends.
const (
	KindEmpty          Kind = iota // zero-length payload: not sent by vpcd; ignored
	KindPowerOff                   // CtrlPowerOff
	KindPowerOn                    // CtrlPowerOn
	KindReset                      // CtrlReset
	KindGetATR                     // CtrlGetATR
	KindUnknownControl             // another 1-byte payload: ignored, as vicc does
	KindAPDU                       // two or more bytes: a command APDU
)

var kindNames = [...]string{"empty", "power off", "power on", "reset", "get ATR", "unknown control", "APDU"}

// String returns the kind in words ("get ATR").
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Classify says what the payload of a frame from the driver asks for.
func Classify(payload []byte) Kind {
	switch len(payload) {
	case 0:
		return KindEmpty
	case 1:
		switch payload[0] {
		case CtrlPowerOff:
			return KindPowerOff
		case CtrlPowerOn:
			return KindPowerOn
		case CtrlReset:
			return KindReset
		case CtrlGetATR:
			return KindGetATR
		}
		return KindUnknownControl
	}
	return KindAPDU
}

// Replies reports whether a frame of kind k gets a reply.
func (k Kind) Replies() bool { return k == KindGetATR || k == KindAPDU }
