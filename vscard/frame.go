package vscard

import (
	"errors"
	"fmt"
	"io"
)

// TooLargeError reports a message whose payload exceeds the limit of the
// Reader or Writer that met it. A Reader raises it from the header alone,
// before sizing any buffer.
type TooLargeError struct {
	Type   MsgType
	Length uint64 // payload length claimed or attempted
	Max    int    // the limit
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("vscard: %v payload of %d bytes exceeds the limit of %d", e.Type, e.Length, e.Max)
}

// Reader reads framed messages. It keeps one payload buffer, sized on demand
// up to its limit, so that reading allocates nothing in steady state.
type Reader struct {
	r   io.Reader
	max int
	hdr [HeaderLen]byte
	buf []byte
}

// NewReader returns a Reader on r that refuses payloads over maxPayload
// bytes; maxPayload <= 0 means MaxPayload (what QEMU accepts).
func NewReader(r io.Reader, maxPayload int) *Reader {
	if maxPayload <= 0 {
		maxPayload = MaxPayload
	}
	return &Reader{r: r, max: maxPayload}
}

// Max returns the payload limit.
func (r *Reader) Max() int { return r.max }

// ReadMessage reads the next message. Its Payload aliases the Reader's
// buffer and is valid until the next call; copy it to keep it.
//
// At the end of the stream between messages it returns io.EOF; a stream that
// ends inside a message gives io.ErrUnexpectedEOF. A payload over the limit
// gives a *TooLargeError, and the stream is then out of step: the caller
// must drop the connection.
func (r *Reader) ReadMessage() (Message, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Message{}, err
	}
	h, _ := ParseHeader(r.hdr[:])
	if uint64(h.Length) > uint64(r.max) {
		return Message{}, &TooLargeError{Type: h.Type, Length: uint64(h.Length), Max: r.max}
	}
	n := int(h.Length)
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Message{}, err
	}
	return Message{Type: h.Type, ReaderID: h.ReaderID, Payload: p}, nil
}

// Writer writes framed messages, each header and payload in a single Write
// call, so that a message never leaves in two TCP segments because of
// Nagle's algorithm. It is not safe for concurrent use.
type Writer struct {
	w   io.Writer
	max int
	buf []byte
}

// NewWriter returns a Writer on w that refuses payloads over maxPayload
// bytes; maxPayload <= 0 means MaxPayload, the most QEMU accepts without
// wedging its card device.
func NewWriter(w io.Writer, maxPayload int) *Writer {
	if maxPayload <= 0 {
		maxPayload = MaxPayload
	}
	return &Writer{w: w, max: maxPayload}
}

// WriteMessage writes m in one Write call. A payload over the limit gives a
// *TooLargeError and writes nothing.
func (w *Writer) WriteMessage(m Message) error {
	if len(m.Payload) > w.max {
		return &TooLargeError{Type: m.Type, Length: uint64(len(m.Payload)), Max: w.max}
	}
	w.buf = m.Append(w.buf[:0])
	_, err := w.w.Write(w.buf)
	return err
}
