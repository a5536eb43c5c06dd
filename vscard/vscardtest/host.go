package vscardtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/vscardkit/vscardkit/internal/qemuatr"
	"github.com/vscardkit/vscardkit/vscard"
)

// HostConfig configures a Host. A nil *HostConfig means every default.
type HostConfig struct {
	// OnEvent, when set, is called for every event, from the goroutine
	// serving the connection or calling Transmit. It must not block for
	// long: the host does not read while it runs.
	OnEvent func(Event)

	// NoDelay sets TCP_NODELAY on the connections the host serves. The
	// default, false, is what the chardev libvirt creates does (no
	// nodelay=on), which together with the split writes below reproduces
	// the latency a client meets under libvirt.
	NoDelay bool

	// WholeWrites writes each message in one write. By default the host
	// writes the header and the payload in two writes, as QEMU does.
	WholeWrites bool

	// Logger receives what QEMU would print on its stderr. nil discards.
	Logger *slog.Logger
}

// Host is the host end of VSCard as QEMU 7.2's ccid-card-passthru device
// implements it, reply for reply. Like the QEMU device, a Host outlives its
// connections: its input buffer (QEMUInputBuffer bytes), the reader and the
// card survive a client's disconnection, and a new client starts from there.
//
// What a Host does, as QEMU does:
//   - it reads at most 4096 bytes at a time into its 64 KiB input buffer,
//     handles every whole message in it, and rewinds the buffer only when it
//     is fully consumed; bytes of an unfinished message stay for the next
//     connection;
//   - when the buffer is full without a whole message in it, it stops
//     reading for good (EventStalled): nothing more is read or answered, on
//     that connection or any later one, until Reset (a VM restart);
//   - Init (whatever its magic) is answered with Init{VSCD, 0.0.2, [0]} and
//     reader id 0xFFFFFFFF; ReaderAdd with Error{0} and reader id 0 (QEMU 7.2
//     does not refuse a second reader); ReaderRemove and CardRemove with
//     Error{0}; an ATR longer than 40 bytes or whose interface bytes do not
//     add up with Error{1} (ignored), a good one with Error{0}; Flush,
//     FlushComplete and unknown types with Error{1}; APDU and Error answer
//     the guest's pending command and get no reply. Replies other than to
//     ReaderAdd carry the reader id of the message they answer.
//
// Beyond QEMU, Transmit plays the guest sending a command, and Flush sends
// the Flush message QEMU never sends (the matching FlushComplete is then
// taken as its answer rather than refused).
type Host struct {
	cfg HostConfig
	log *slog.Logger

	// The input buffer is touched only by the goroutine in ServeConn.
	in     [vscard.QEMUInputBuffer]byte
	inPos  int
	inHdr  int
	serveM sync.Mutex // held by ServeConn: one connection at a time

	wmu sync.Mutex // serialises writes to conn

	mu          sync.Mutex
	conn        net.Conn
	remote      string
	readerAdded bool
	readerName  string
	card        bool
	atr         []byte
	stalled     bool
	replugged   bool // set by Replug: serve drops what the old device buffered
	buffered    int  // inPos - inHdr, for State
	pending     *pendingCmd
	flushes     []chan struct{}
}

type pendingCmd struct {
	cmd  []byte
	sent time.Time
	ch   chan cmdResult
}

type cmdResult struct {
	resp []byte
	err  error
}

// Errors from Host.Transmit and Host.Flush, matched with errors.Is.
var (
	ErrNoClient    = errors.New("vscardtest: no client connected")
	ErrNoCard      = errors.New("vscardtest: no card inserted")
	ErrBusy        = errors.New("vscardtest: a command is already outstanding")
	ErrCardRemoved = errors.New("vscardtest: card removed while a command was outstanding")
	ErrStalled     = errors.New("vscardtest: host input buffer full; the card device reads nothing more until reset")
)

// CardError is a client's Error reply to a command.
type CardError struct {
	Code vscard.ErrorCode
}

func (e *CardError) Error() string {
	return fmt.Sprintf("vscardtest: card failed the command: %v", e.Code)
}

// NewHost returns a Host in the state of a freshly started QEMU: no reader,
// no card, an empty input buffer.
func NewHost(cfg *HostConfig) *Host {
	h := &Host{}
	if cfg != nil {
		h.cfg = *cfg
	}
	h.log = h.cfg.Logger
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// HostState is a snapshot of a Host.
type HostState struct {
	Connected   bool
	Remote      string
	ReaderAdded bool
	ReaderName  string
	CardPresent bool
	ATR         []byte
	Stalled     bool
	Buffered    int // bytes of an unfinished message in the input buffer
}

// State returns a snapshot of h.
func (h *Host) State() HostState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HostState{
		Connected:   h.conn != nil,
		Remote:      h.remote,
		ReaderAdded: h.readerAdded,
		ReaderName:  h.readerName,
		CardPresent: h.card,
		ATR:         append([]byte(nil), h.atr...),
		Stalled:     h.stalled,
		Buffered:    h.buffered,
	}
}

// Reset returns h to the state of a freshly started QEMU, as a VM restart
// does. It fails while a connection is being served.
func (h *Host) Reset() error {
	if !h.serveM.TryLock() {
		return errors.New("vscardtest: cannot reset a host while it serves a connection")
	}
	defer h.serveM.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.in = [vscard.QEMUInputBuffer]byte{}
	h.inPos, h.inHdr = 0, 0
	h.readerAdded, h.readerName, h.card, h.atr, h.stalled, h.buffered, h.replugged = false, "", false, nil, false, 0, false
	h.failPendingLocked(ErrCardRemoved)
	return nil
}

// errReplugStalled is Replug's error on a stalled host.
var errReplugStalled = errors.New("vscardtest: cannot replug a stalled host (its connection is no longer read); Reset it with no client connected")

// Replug does what QMP device_del and device_add of the card device (or of
// its usb-ccid reader) on the same chardev do in QEMU while a client stays
// connected: the new device has no reader, no card and an empty input
// buffer, the guest's pending command fails with ErrCardRemoved, and the
// device sends Init on the connection (EventReplugged). It fails with
// ErrNoClient when no client is connected, and on a stalled host.
func (h *Host) Replug() error {
	h.mu.Lock()
	if h.conn == nil {
		h.mu.Unlock()
		return ErrNoClient
	}
	if h.stalled {
		h.mu.Unlock()
		return errReplugStalled
	}
	wasCard, wasReader := h.card, h.readerAdded
	h.readerAdded, h.readerName, h.card, h.atr = false, "", false, nil
	h.replugged = true
	h.failPendingLocked(ErrCardRemoved)
	h.mu.Unlock()
	if wasCard {
		h.emit(Event{Kind: EventCardRemoved, ReaderID: vscard.MinimalReaderID})
	}
	if wasReader {
		h.emit(Event{Kind: EventReaderRemoved, ReaderID: vscard.MinimalReaderID})
	}
	h.emit(Event{Kind: EventReplugged})
	return h.send(vscard.Message{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)})
}

func (h *Host) emit(e Event) {
	if h.cfg.OnEvent == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	h.cfg.OnEvent(e)
}

// ServeConn serves one client connection until it ends, the host stalls and
// the client leaves, or ctx is done; it closes nc before returning. Like
// QEMU's chardev, a Host serves one connection at a time: a second
// ServeConn waits for the first.
func (h *Host) ServeConn(ctx context.Context, nc net.Conn) error {
	h.serveM.Lock()
	defer h.serveM.Unlock()
	defer nc.Close()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(h.cfg.NoDelay)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()

	remote := nc.RemoteAddr().String()
	h.mu.Lock()
	h.conn, h.remote = nc, remote
	h.mu.Unlock()
	h.emit(Event{Kind: EventConnected, Remote: remote})
	err := h.serve(ctx, nc)
	h.mu.Lock()
	h.conn = nil
	h.mu.Unlock()
	if ctx.Err() != nil || errors.Is(err, io.EOF) {
		err = nil // the host itself hung up, or the client left cleanly
	}
	h.emit(Event{Kind: EventDisconnected, Remote: remote, Err: err})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// qemuReadChunk is the most QEMU's socket chardev reads at once
// (CHR_READ_BUF_LEN).
const qemuReadChunk = 4096

func (h *Host) serve(ctx context.Context, nc net.Conn) error {
	for {
		room := len(h.in) - h.inPos
		if room == 0 {
			h.mu.Lock()
			first := !h.stalled
			h.stalled = true
			h.mu.Unlock()
			if first {
				h.log.Error("vscardtest: host input buffer full without a whole message; the card device reads nothing more until the VM restarts")
				h.emit(Event{Kind: EventStalled, Err: ErrStalled})
			}
			return waitClosed(ctx, nc)
		}
		n, err := nc.Read(h.in[h.inPos : h.inPos+min(room, qemuReadChunk)])
		h.mu.Lock()
		fresh := h.replugged
		h.replugged = false
		h.mu.Unlock()
		if fresh {
			// A new device: what the old one buffered is gone; what
			// was just read is the new device's first input.
			copy(h.in[:], h.in[h.inPos:h.inPos+n])
			h.inPos, h.inHdr = 0, 0
		}
		h.inPos += n
		h.process()
		h.mu.Lock()
		h.buffered = h.inPos - h.inHdr
		h.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// process handles every whole message in the input buffer, as QEMU's
// ccid_card_vscard_read does, including its in-place byte swapping of the
// header (which an inconsistent ATR's interface bytes may read back).
func (h *Host) process() {
	for {
		avail := h.inPos - h.inHdr
		if avail < vscard.HeaderLen {
			break
		}
		hdr := parseHeader(h.in[h.inHdr:])
		if uint64(avail) < vscard.HeaderLen+uint64(hdr.Length) {
			break
		}
		// QEMU converts the header to host order in place (x86: little
		// endian) before handling the message.
		binary.LittleEndian.PutUint32(h.in[h.inHdr:], uint32(hdr.Type))
		binary.LittleEndian.PutUint32(h.in[h.inHdr+4:], uint32(hdr.ReaderID))
		binary.LittleEndian.PutUint32(h.in[h.inHdr+8:], hdr.Length)
		h.handle(hdr, h.inHdr+vscard.HeaderLen)
		h.inHdr += vscard.HeaderLen + int(hdr.Length)
	}
	if h.inHdr == h.inPos {
		h.inPos, h.inHdr = 0, 0
	}
}

func (h *Host) handle(hdr header, off int) {
	payload := h.in[off : off+int(hdr.Length)]
	switch hdr.Type {
	case vscard.MsgATR:
		if hdr.Length > qemuatr.MaxLen || !qemuatr.Check(h.in[:], off, int(hdr.Length)) {
			h.log.Error("vscardtest: ATR is inconsistent, ignoring", "atr", fmt.Sprintf("%X", payload))
			h.emit(Event{Kind: EventATRRejected, ReaderID: hdr.ReaderID, ATR: clone(payload)})
			h.reply(hdr.ReaderID, vscard.ErrCodeGeneral)
			return
		}
		h.mu.Lock()
		h.card, h.atr = true, clone(payload)
		h.mu.Unlock()
		h.emit(Event{Kind: EventCardInserted, ReaderID: hdr.ReaderID, ATR: clone(payload)})
		h.reply(hdr.ReaderID, vscard.ErrCodeSuccess)
	case vscard.MsgAPDU:
		h.answer(hdr, clone(payload), nil)
	case vscard.MsgCardRemove:
		h.mu.Lock()
		h.card = false
		h.failPendingLocked(ErrCardRemoved)
		h.mu.Unlock()
		h.emit(Event{Kind: EventCardRemoved, ReaderID: hdr.ReaderID})
		h.reply(hdr.ReaderID, vscard.ErrCodeSuccess)
	case vscard.MsgInit:
		h.handleInit(hdr, off)
	case vscard.MsgError:
		// QEMU reads the code without checking the length.
		code := vscard.ErrorCode(0)
		if hdr.Length >= 4 {
			code = vscard.ErrorCode(binary.BigEndian.Uint32(payload))
		}
		h.answer(hdr, nil, &CardError{Code: code})
	case vscard.MsgReaderAdd:
		h.mu.Lock()
		h.readerAdded, h.readerName = true, string(payload)
		h.mu.Unlock()
		h.emit(Event{Kind: EventReaderAdded, ReaderID: vscard.MinimalReaderID, Name: string(payload)})
		h.reply(vscard.MinimalReaderID, vscard.ErrCodeSuccess)
	case vscard.MsgReaderRemove:
		h.mu.Lock()
		wasCard := h.card
		h.readerAdded, h.readerName, h.card = false, "", false
		h.failPendingLocked(ErrCardRemoved)
		h.mu.Unlock()
		if wasCard {
			h.emit(Event{Kind: EventCardRemoved, ReaderID: hdr.ReaderID})
		}
		h.emit(Event{Kind: EventReaderRemoved, ReaderID: hdr.ReaderID})
		h.reply(hdr.ReaderID, vscard.ErrCodeSuccess)
	default:
		if done := h.takeFlush(hdr.Type); done != nil {
			// The event first: once Flush returns, its event is
			// recorded.
			h.emit(Event{Kind: EventFlushComplete, ReaderID: hdr.ReaderID})
			close(done)
			return
		}
		h.log.Warn(fmt.Sprintf("usb-ccid: chardev: unexpected message of type %X", uint32(hdr.Type)))
		h.emit(Event{Kind: EventUnexpected, Type: hdr.Type, ReaderID: hdr.ReaderID})
		h.reply(hdr.ReaderID, vscard.ErrCodeGeneral)
	}
}

// handleInit answers Init as QEMU does, whatever the payload, after
// byte-swapping the version and capabilities in place as QEMU does.
func (h *Host) handleInit(hdr header, off int) {
	var in vscard.Init
	if off+8 <= len(h.in) {
		copy(in.Magic[:], h.in[off:])
		v := binary.BigEndian.Uint32(h.in[off+4:])
		in.Version = vscard.Version(v)
		binary.LittleEndian.PutUint32(h.in[off+4:], v)
	}
	if hdr.Length >= 12 {
		n := 1 + (int(hdr.Length)-12)/4
		for i := range n {
			p := off + 8 + 4*i
			if p+4 > len(h.in) {
				break
			}
			c := binary.BigEndian.Uint32(h.in[p:])
			if i < maxCapabilities {
				in.Capabilities = append(in.Capabilities, c)
			}
			binary.LittleEndian.PutUint32(h.in[p:], c)
		}
	}
	if string(in.Magic[:]) != vscard.Magic {
		h.log.Error("vscardtest: wrong magic")
	}
	h.emit(Event{Kind: EventInit, ReaderID: hdr.ReaderID, Init: in})
	h.send(vscard.Message{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)})
}

// answer completes the guest's pending command with a response or an error.
func (h *Host) answer(hdr header, resp []byte, cerr *CardError) {
	h.mu.Lock()
	p := h.pending
	h.pending = nil
	h.mu.Unlock()
	if p == nil {
		// QEMU: "got an APDU without pending answers"; dropped.
		h.emit(Event{Kind: EventUnexpected, Type: hdr.Type, ReaderID: hdr.ReaderID})
		return
	}
	rtt := time.Since(p.sent)
	if cerr != nil {
		h.emit(Event{Kind: EventCardError, ReaderID: hdr.ReaderID, Command: p.cmd, Code: cerr.Code, RTT: rtt})
		p.ch <- cmdResult{err: cerr}
		return
	}
	h.emit(Event{Kind: EventAPDU, ReaderID: hdr.ReaderID, Command: p.cmd, Response: resp, RTT: rtt})
	p.ch <- cmdResult{resp: resp}
}

func (h *Host) failPendingLocked(err error) {
	if h.pending != nil {
		h.pending.ch <- cmdResult{err: err}
		h.pending = nil
	}
}

// takeFlush returns the oldest Flush waiting for the FlushComplete of type
// t, or nil when t is not FlushComplete or no Flush waits.
func (h *Host) takeFlush(t vscard.MsgType) chan struct{} {
	if t != vscard.MsgFlushComplete {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.flushes) == 0 {
		return nil
	}
	done := h.flushes[0]
	h.flushes = h.flushes[1:]
	return done
}

func (h *Host) reply(id vscard.ReaderID, code vscard.ErrorCode) {
	h.send(vscard.Message{Type: vscard.MsgError, ReaderID: id, Payload: vscard.AppendError(nil, code)})
}

// send writes m to the current connection, in two writes unless
// WholeWrites. Write errors surface as the connection's read error.
func (h *Host) send(m vscard.Message) error {
	h.mu.Lock()
	nc := h.conn
	h.mu.Unlock()
	if nc == nil {
		return ErrNoClient
	}
	h.wmu.Lock()
	defer h.wmu.Unlock()
	b := m.Append(make([]byte, 0, vscard.HeaderLen+len(m.Payload)))
	if h.cfg.WholeWrites || len(m.Payload) == 0 {
		_, err := nc.Write(b)
		return err
	}
	if _, err := nc.Write(b[:vscard.HeaderLen]); err != nil {
		return err
	}
	_, err := nc.Write(b[vscard.HeaderLen:])
	return err
}

// Transmit plays the guest: it sends cmd to the client as an APDU message
// (reader id 0) and waits for the response. It fails with ErrNoClient,
// ErrNoCard or ErrBusy as QEMU's usb-ccid would refuse the guest, with a
// *CardError when the client answers Error, and with ErrCardRemoved when the
// card goes while the command is outstanding. When ctx ends first, the
// command is abandoned (a late response is dropped).
func (h *Host) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if len(cmd) > vscard.MaxPayload {
		return nil, &vscard.TooLargeError{Type: vscard.MsgAPDU, Length: uint64(len(cmd)), Max: vscard.MaxPayload}
	}
	h.mu.Lock()
	switch {
	case h.conn == nil:
		h.mu.Unlock()
		return nil, ErrNoClient
	case !h.card:
		h.mu.Unlock()
		return nil, ErrNoCard
	case h.pending != nil:
		h.mu.Unlock()
		return nil, ErrBusy
	}
	p := &pendingCmd{cmd: clone(cmd), sent: time.Now(), ch: make(chan cmdResult, 1)}
	h.pending = p
	h.mu.Unlock()
	if err := h.send(vscard.Message{Type: vscard.MsgAPDU, ReaderID: vscard.MinimalReaderID, Payload: cmd}); err != nil {
		h.abandon(p)
		return nil, fmt.Errorf("vscardtest: sending APDU: %w", err)
	}
	select {
	case r := <-p.ch:
		return r.resp, r.err
	case <-ctx.Done():
		h.abandon(p)
		return nil, ctx.Err()
	}
}

func (h *Host) abandon(p *pendingCmd) {
	h.mu.Lock()
	if h.pending == p {
		h.pending = nil
	}
	h.mu.Unlock()
}

// Flush sends a Flush message and waits for the client's FlushComplete.
func (h *Host) Flush(ctx context.Context) error {
	done := make(chan struct{})
	h.mu.Lock()
	if h.conn == nil {
		h.mu.Unlock()
		return ErrNoClient
	}
	h.flushes = append(h.flushes, done)
	h.mu.Unlock()
	if err := h.send(vscard.Message{Type: vscard.MsgFlush, ReaderID: vscard.MinimalReaderID}); err != nil {
		return fmt.Errorf("vscardtest: sending Flush: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitClosed waits, without reading, until the peer closes nc or ctx ends:
// a stalled QEMU reads nothing more, yet notices the client leaving.
func waitClosed(ctx context.Context, nc net.Conn) error {
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = u.NetConn() // TLS: watch the socket underneath
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		<-ctx.Done()
		return ErrStalled
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		<-ctx.Done()
		return ErrStalled
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	buf := make([]byte, 1)
	for {
		closed := false
		rc.Control(func(fd uintptr) { closed = peerClosed(fd, buf) })
		if closed {
			return ErrStalled
		}
		select {
		case <-ctx.Done():
			return ErrStalled
		case <-t.C:
		}
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// header is a message header as QEMU reads it.
type header struct {
	Type     vscard.MsgType
	ReaderID vscard.ReaderID
	Length   uint32 // payload length, not counting the header
}

// parseHeader decodes the big-endian header at the start of b, which holds
// at least vscard.HeaderLen bytes.
func parseHeader(b []byte) header {
	return header{
		Type:     vscard.MsgType(binary.BigEndian.Uint32(b[0:])),
		ReaderID: vscard.ReaderID(binary.BigEndian.Uint32(b[4:])),
		Length:   binary.BigEndian.Uint32(b[8:]),
	}
}

// maxCapabilities bounds the capability words an Init event keeps, as
// vscard.ParseInit does.
const maxCapabilities = 64
