package harness

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/vscard"
)

// RawHost is a VSCard host a test or benchmark drives message by message,
// with nothing else in the way: it lets a client in as QEMU does (Init, then
// Error{0} for each control message until the card is inserted) and then
// does whatever the caller wants, including what QEMU never does. Unlike
// vscardtest's faithful Host it keeps no state and records nothing, which
// makes it the host of latency benchmarks.
type RawHost struct {
	l *net.TCPListener
	// SplitWrites writes each message's header and payload in two writes,
	// as QEMU does; with the connection's default (no TCP_NODELAY, as
	// libvirt's chardev) that is the latency trap a client must defuse.
	SplitWrites bool
	// NoDelay sets TCP_NODELAY on accepted connections, as QEMU's
	// nodelay=on does.
	NoDelay bool
}

// NewRawHost listens on 127.0.0.1 and a free port until t ends.
func NewRawHost(t testing.TB) *RawHost {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &RawHost{l: l}
}

// Addr is the host's address, 127.0.0.1:port.
func (h *RawHost) Addr() string { return h.l.Addr().String() }

// RawConn is one client connection of a RawHost.
type RawConn struct {
	NC    *net.TCPConn
	R     *bufio.Reader
	ATR   []byte // the ATR the client inserted
	split bool
	buf   []byte
}

// Accept waits up to d for a client and lets it in: it answers the client's
// Init and acknowledges its control messages until the card is inserted.
func (h *RawHost) Accept(t testing.TB, d time.Duration) *RawConn {
	t.Helper()
	h.l.SetDeadline(time.Now().Add(d))
	nc, err := h.l.AcceptTCP()
	if err != nil {
		t.Fatalf("raw host: no client: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetNoDelay(h.NoDelay)
	c := &RawConn{NC: nc, R: bufio.NewReader(nc), split: h.SplitWrites}
	nc.SetDeadline(time.Now().Add(d))
	defer nc.SetDeadline(time.Time{})
	for {
		m, err := vscard.ReadMessage(c.R, 0)
		if err != nil {
			t.Fatalf("raw host: letting the client in: %v", err)
		}
		switch m.Type {
		case vscard.MsgInit:
			c.Send(t, vscard.Message{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)})
		case vscard.MsgReaderAdd:
			c.Ack(t, vscard.MinimalReaderID)
		case vscard.MsgReaderRemove, vscard.MsgCardRemove:
			c.Ack(t, m.ReaderID)
		case vscard.MsgATR:
			c.ATR = append([]byte(nil), m.Payload...)
			c.Ack(t, m.ReaderID)
			return c
		default:
			t.Fatalf("raw host: unexpected %v while letting the client in", m.Type)
		}
	}
}

// Ack answers a control message with Error{0}.
func (c *RawConn) Ack(t testing.TB, id vscard.ReaderID) {
	t.Helper()
	c.Send(t, vscard.Message{Type: vscard.MsgError, ReaderID: id, Payload: vscard.AppendError(nil, vscard.ErrCodeSuccess)})
}

// Send writes m or fails t.
func (c *RawConn) Send(t testing.TB, m vscard.Message) {
	t.Helper()
	if err := c.write(m); err != nil {
		t.Fatalf("raw host: sending %v: %v", m.Type, err)
	}
}

func (c *RawConn) write(m vscard.Message) error {
	c.buf = m.Append(c.buf[:0])
	if !c.split || len(m.Payload) == 0 {
		_, err := c.NC.Write(c.buf)
		return err
	}
	if _, err := c.NC.Write(c.buf[:vscard.HeaderLen]); err != nil {
		return err
	}
	_, err := c.NC.Write(c.buf[vscard.HeaderLen:])
	return err
}

// Transmit sends one APDU and returns the client's answer (an APDU or an
// Error message), skipping nothing: the caller knows what is outstanding.
func (c *RawConn) Transmit(t testing.TB, cmd []byte, d time.Duration) vscard.Message {
	t.Helper()
	c.NC.SetReadDeadline(time.Now().Add(d))
	defer c.NC.SetReadDeadline(time.Time{})
	m, err := c.RoundTrip(cmd)
	if err != nil {
		t.Fatalf("raw host: waiting for the answer to %X: %v", cmd[:min(len(cmd), 8)], err)
	}
	return m
}

// RoundTrip sends one APDU and reads the next message, with no deadline:
// the loop of a benchmark. The answer's payload is its own.
func (c *RawConn) RoundTrip(cmd []byte) (vscard.Message, error) {
	if err := c.write(vscard.Message{Type: vscard.MsgAPDU, ReaderID: vscard.MinimalReaderID, Payload: cmd}); err != nil {
		return vscard.Message{}, err
	}
	return vscard.ReadMessage(c.R, 0)
}
