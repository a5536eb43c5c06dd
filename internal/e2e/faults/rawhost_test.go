package faults_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/vscard"
)

// rawHost is a host the test drives message by message: it lets a client
// in as QEMU does (Init, then Error{0} for each control message until the
// card is inserted) and then does whatever the test wants, including what
// QEMU never does.
type rawHost struct {
	l *net.TCPListener
}

func newRawHost(t *testing.T) *rawHost {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &rawHost{l: l}
}

func (h *rawHost) Addr() string { return h.l.Addr().String() }

// rawConn is one client connection of a rawHost.
type rawConn struct {
	nc  *net.TCPConn
	r   *bufio.Reader
	atr []byte
}

// accept waits up to d for a client and lets it in: it answers the client's
// Init and acknowledges its control messages until the card is inserted.
func (h *rawHost) accept(t *testing.T, d time.Duration) *rawConn {
	t.Helper()
	h.l.SetDeadline(time.Now().Add(d))
	nc, err := h.l.AcceptTCP()
	if err != nil {
		t.Fatalf("raw host: no client: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawConn{nc: nc, r: bufio.NewReader(nc)}
	nc.SetDeadline(time.Now().Add(d))
	defer nc.SetDeadline(time.Time{})
	for {
		m, err := vscard.ReadMessage(c.r, 0)
		if err != nil {
			t.Fatalf("raw host: letting the client in: %v", err)
		}
		switch m.Type {
		case vscard.MsgInit:
			c.send(t, vscard.Message{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)})
		case vscard.MsgReaderAdd:
			c.ack(t, vscard.MinimalReaderID)
		case vscard.MsgReaderRemove, vscard.MsgCardRemove:
			c.ack(t, m.ReaderID)
		case vscard.MsgATR:
			c.atr = append([]byte(nil), m.Payload...)
			c.ack(t, m.ReaderID)
			return c
		default:
			t.Fatalf("raw host: unexpected %v while letting the client in", m.Type)
		}
	}
}

func (c *rawConn) ack(t *testing.T, id vscard.ReaderID) {
	t.Helper()
	c.send(t, vscard.Message{Type: vscard.MsgError, ReaderID: id, Payload: vscard.AppendError(nil, vscard.ErrCodeSuccess)})
}

func (c *rawConn) send(t *testing.T, m vscard.Message) {
	t.Helper()
	if err := vscard.WriteMessage(c.nc, m); err != nil {
		t.Fatalf("raw host: sending %v: %v", m.Type, err)
	}
}

// transmit sends one APDU and returns the client's answer (an APDU or an
// Error message), skipping nothing: the caller knows what is outstanding.
func (c *rawConn) transmit(t *testing.T, cmd []byte, d time.Duration) vscard.Message {
	t.Helper()
	c.send(t, vscard.Message{Type: vscard.MsgAPDU, ReaderID: vscard.MinimalReaderID, Payload: cmd})
	c.nc.SetReadDeadline(time.Now().Add(d))
	defer c.nc.SetReadDeadline(time.Time{})
	m, err := vscard.ReadMessage(c.r, 0)
	if err != nil {
		t.Fatalf("raw host: waiting for the answer to %X: %v", cmd[:min(len(cmd), 8)], err)
	}
	m.Payload = append([]byte(nil), m.Payload...)
	return m
}
