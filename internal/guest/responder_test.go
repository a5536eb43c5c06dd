package guest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file holds a deliberately tiny VSCard client (the role vscclient-go
// plays): enough of the protocol to insert a card into QEMU's
// ccid-card-passthru and answer the guest's APDUs, written from
// libcacard's vscard_common.h with only net and encoding/binary, so that
// the guest path can be proven before the real client exists.

// VSCard message types (vscard_common.h).
const (
	vscInit       = 1
	vscError      = 2
	vscReaderAdd  = 3
	vscATR        = 5
	vscCardRemove = 6
	vscAPDU       = 7
)

const (
	vscUndefinedReader = 0xffffffff
	vscVersion         = 2       // 0.0.2
	vscMaxPayload      = 1 << 16 // never allocate more than QEMU's buffer
)

// testATR is a T=1 ATR with one historical byte that QEMU accepts.
var testATR = []byte{0x3b, 0x80, 0x80, 0x01, 0x01}

// ackMode is what the responder does about delayed ACKs on its socket.
type ackMode int

const (
	ackNothing     ackMode = iota // what a naive client does
	ackQuick                      // TCP_QUICKACK=1 after every read (header and payload)
	ackQuickOne                   // TCP_QUICKACK=1 once, after connecting
	ackQuickHeader                // TCP_QUICKACK=1 after reading a header only
	ackQuickWrite                 // TCP_QUICKACK=1 after every write (before the next read)
)

func (m ackMode) String() string {
	return [...]string{"nothing", "quickack-every-read", "quickack-once", "quickack-after-header", "quickack-after-write"}[m]
}

// responder is the test's VSCard client. Its answer function returns the
// response APDU (data and status word) for a command APDU.
type responder struct {
	atr    []byte
	conn   *net.TCPConn
	raw    syscall.RawConn
	mode   ackMode
	br     *bufio.Reader
	answer func(cmd []byte) []byte
	// splitNagle makes the client write header and payload separately
	// with Nagle's algorithm on (TCP_NODELAY off), as a careless client
	// might: the same trap in the other direction.
	splitNagle bool

	mu      sync.Mutex
	wmu     sync.Mutex // serialises writes
	apdus   [][]byte
	arrived []time.Time     // when each APDU was read in full
	sent    []time.Time     // when each response was written
	held    []time.Duration // for each APDU, from reading its header to reading its payload

	done chan struct{}
	err  error // why serve stopped; set before done is closed
}

// dialResponder connects to QEMU's chardev at addr, does the handshake
// (Init, ReaderAdd, ATR) and starts answering APDUs with answer.
func dialResponder(ctx context.Context, addr string, mode ackMode, splitNagle bool, atr []byte, answer func([]byte) []byte) (*responder, error) {
	if atr == nil {
		atr = testATR
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	raw, err := tc.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	r := &responder{atr: atr, conn: tc, raw: raw, mode: mode, br: bufio.NewReader(tc), answer: answer, splitNagle: splitNagle, done: make(chan struct{})}
	if splitNagle {
		tc.SetNoDelay(false)
	}
	if mode == ackQuickOne {
		r.quickAck()
	}
	if deadline, ok := ctx.Deadline(); ok {
		tc.SetDeadline(deadline)
	}
	if err := r.handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("vscard handshake with QEMU: %w", err)
	}
	tc.SetDeadline(time.Time{})
	go r.serve()
	return r, nil
}

// quickAck sets TCP_QUICKACK: Linux then ACKs what it has received at once
// (and leaves its delayed-ACK "pingpong" mode until the next time it
// decides it is in an interactive exchange).
func (r *responder) quickAck() {
	r.raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}

func (r *responder) handshake() error {
	init := make([]byte, 12)
	copy(init, "VSCD")
	binary.BigEndian.PutUint32(init[4:], vscVersion)
	// init[8:12]: one capability word, 0.
	if err := r.send(vscInit, vscUndefinedReader, init); err != nil {
		return err
	}
	typ, _, payload, err := r.read()
	if err != nil {
		return err
	}
	if typ != vscInit || len(payload) < 8 || string(payload[:4]) != "VSCD" {
		return fmt.Errorf("expected QEMU's Init, got type %d payload %x", typ, payload)
	}
	if err := r.send(vscReaderAdd, vscUndefinedReader, []byte("vscardkit guest test")); err != nil {
		return err
	}
	if err := r.expectOK("ReaderAdd"); err != nil {
		return err
	}
	if err := r.send(vscATR, 0, r.atr); err != nil {
		return err
	}
	return r.expectOK("ATR")
}

// expectOK reads QEMU's Error{0} answer to what.
func (r *responder) expectOK(what string) error {
	typ, _, payload, err := r.read()
	if err != nil {
		return err
	}
	if typ != vscError || len(payload) != 4 || binary.BigEndian.Uint32(payload) != 0 {
		return fmt.Errorf("QEMU answered %s with type %d payload %x, expected Error{0}", what, typ, payload)
	}
	return nil
}

// read reads one message, applying the ACK mode after each read. held is
// the time between having the header and having the payload.
func (r *responder) read() (typ, reader uint32, payload []byte, err error) {
	typ, reader, payload, _, err = r.readTimed()
	return typ, reader, payload, err
}

func (r *responder) readTimed() (typ, reader uint32, payload []byte, held time.Duration, err error) {
	var h [12]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, 0, nil, 0, err
	}
	hdrAt := time.Now()
	if r.mode == ackQuick || r.mode == ackQuickHeader {
		r.quickAck()
	}
	typ = binary.BigEndian.Uint32(h[0:])
	reader = binary.BigEndian.Uint32(h[4:])
	n := binary.BigEndian.Uint32(h[8:])
	if n > vscMaxPayload {
		return 0, 0, nil, 0, fmt.Errorf("message type %d claims %d payload bytes", typ, n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		return 0, 0, nil, 0, err
	}
	held = time.Since(hdrAt)
	if r.mode == ackQuick && n > 0 {
		r.quickAck()
	}
	return typ, reader, payload, held, nil
}

// send writes one message with a single write.
func (r *responder) send(typ, reader uint32, payload []byte) error {
	b := make([]byte, 12+len(payload))
	binary.BigEndian.PutUint32(b[0:], typ)
	binary.BigEndian.PutUint32(b[4:], reader)
	binary.BigEndian.PutUint32(b[8:], uint32(len(payload)))
	copy(b[12:], payload)
	r.wmu.Lock()
	defer r.wmu.Unlock()
	var err error
	if r.splitNagle {
		if _, err = r.conn.Write(b[:12]); err == nil {
			_, err = r.conn.Write(b[12:])
		}
	} else {
		_, err = r.conn.Write(b)
	}
	if r.mode == ackQuickWrite {
		r.quickAck()
	}
	return err
}

// serve answers APDUs until the connection ends.
func (r *responder) serve() {
	defer close(r.done)
	for {
		typ, _, payload, held, err := r.readTimed()
		if err != nil {
			r.err = err
			return
		}
		now := time.Now()
		switch typ {
		case vscAPDU:
			resp := r.answer(payload)
			if err := r.send(vscAPDU, 0, resp); err != nil {
				r.err = err
				return
			}
			r.mu.Lock()
			r.apdus = append(r.apdus, payload)
			r.held = append(r.held, held)
			r.arrived = append(r.arrived, now)
			r.sent = append(r.sent, time.Now())
			r.mu.Unlock()
		case vscError:
			// QEMU's answers to CardRemove and ATR.
		default:
			r.err = fmt.Errorf("unexpected message type %d from QEMU", typ)
			return
		}
	}
}

// removeCard sends CardRemove; insertCard sends the ATR again.
func (r *responder) removeCard() error { return r.send(vscCardRemove, 0, nil) }
func (r *responder) insertCard() error { return r.send(vscATR, 0, r.atr) }

// received returns the APDUs received so far.
func (r *responder) received() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.apdus...)
}

// gaps returns, for each APDU after the first, the time from sending the
// previous response to the arrival of this command: the round trip the
// host's TCP and the guest add per APDU, excluding the responder's own
// work.
func (r *responder) gaps() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var g []time.Duration
	for i := 1; i < len(r.arrived); i++ {
		g = append(g, r.arrived[i].Sub(r.sent[i-1]))
	}
	return g
}

// payloadWaits returns, for each APDU, how long the payload came after the
// header: Nagle holding QEMU's second write shows here.
func (r *responder) payloadWaits() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.held...)
}

// Close closes the connection and waits for serve to stop.
func (r *responder) Close() error {
	r.conn.Close()
	<-r.done
	if r.err != nil && !errors.Is(r.err, net.ErrClosed) && !errors.Is(r.err, io.EOF) {
		return r.err
	}
	return nil
}

// answer9000 answers every command with 90 00, except the test's echo
// command (INS EE), whose data comes back followed by 90 00.
func answer9000(cmd []byte) []byte {
	if len(cmd) > 5 && cmd[1] == 0xee {
		lc := int(cmd[4])
		if 5+lc <= len(cmd) {
			return append(append([]byte(nil), cmd[5:5+lc]...), 0x90, 0x00)
		}
	}
	return []byte{0x90, 0x00}
}

func TestResponderUnit(t *testing.T) {
	// answer9000 is the test card; make sure its echo is right before the
	// guest tests rely on it.
	got := answer9000([]byte{0x80, 0xee, 0, 0, 3, 1, 2, 3, 0})
	if string(got) != string([]byte{1, 2, 3, 0x90, 0}) {
		t.Fatalf("echo answer = % x", got)
	}
	if got := answer9000([]byte{0, 0xa4, 4, 0}); string(got) != "\x90\x00" {
		t.Fatalf("SELECT answer = % x", got)
	}
}
