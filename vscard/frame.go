package vscard

import (
	"errors"
	"fmt"
	"io"
)

// TooLargeError reports a message whose payload exceeds a limit: a message
// from the peer over the reading side's limit (raised from the header alone,
// before any buffer is sized), or a message the client was asked to send
// that QEMU could not take (nothing is sent).
type TooLargeError struct {
	Type   MsgType
	Length uint64 // payload length claimed or attempted
	Max    int    // the limit
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("vscard: %v payload of %d bytes exceeds the limit of %d", e.Type, e.Length, e.Max)
}

// ReadMessage reads one message from r, for a program that implements the
// host role (or inspects a capture). A payload over maxPayload bytes
// (maxPayload <= 0 means MaxPayload, what QEMU accepts) gives a
// *TooLargeError before anything is allocated for it, and the stream is then
// out of step. At the end of the stream between messages it returns io.EOF;
// a stream that ends inside a message gives io.ErrUnexpectedEOF. Every call
// returns a payload of its own; use a bufio.Reader under it for many small
// reads.
func ReadMessage(r io.Reader, maxPayload int) (Message, error) {
	return newFrameReader(r, maxPayload).readMessage()
}

// frameReader reads framed messages. It keeps one payload buffer, sized on
// demand up to its limit, so that reading allocates nothing in steady state.
type frameReader struct {
	r   io.Reader
	max int
	hdr [HeaderLen]byte
	buf []byte
}

// newFrameReader returns a frameReader on r that refuses payloads over
// maxPayload bytes; maxPayload <= 0 means MaxPayload (what QEMU accepts).
func newFrameReader(r io.Reader, maxPayload int) *frameReader {
	if maxPayload <= 0 {
		maxPayload = MaxPayload
	}
	return &frameReader{r: r, max: maxPayload}
}

// readMessage reads the next message. Its Payload aliases the reader's
// buffer and is valid until the next call; copy it to keep it. Errors are
// as ReadMessage's.
func (r *frameReader) readMessage() (Message, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Message{}, err
	}
	h := parseHeader(r.hdr[:])
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

// frameWriter writes framed messages, each header and payload in a single
// Write call, so that a message never leaves in two TCP segments because of
// Nagle's algorithm. It is not safe for concurrent use.
type frameWriter struct {
	w   io.Writer
	max int
	buf []byte
}

// newFrameWriter returns a frameWriter on w that refuses payloads over
// maxPayload bytes; maxPayload <= 0 means MaxPayload, the most QEMU accepts
// without wedging its card device.
func newFrameWriter(w io.Writer, maxPayload int) *frameWriter {
	if maxPayload <= 0 {
		maxPayload = MaxPayload
	}
	return &frameWriter{w: w, max: maxPayload}
}

// writeMessage writes m in one Write call. A payload over the limit gives a
// *TooLargeError and writes nothing.
func (w *frameWriter) writeMessage(m Message) error {
	if len(m.Payload) > w.max {
		return &TooLargeError{Type: m.Type, Length: uint64(len(m.Payload)), Max: w.max}
	}
	w.buf = m.Append(w.buf[:0])
	_, err := w.w.Write(w.buf)
	return err
}

// WriteMessage writes m to w in a single Write call, so that a message never
// leaves in two TCP segments because of Nagle's algorithm. A payload over
// MaxPayload gives a *TooLargeError and writes nothing: QEMU would stop
// reading its chardev for good.
func WriteMessage(w io.Writer, m Message) error {
	return newFrameWriter(w, 0).writeMessage(m)
}
