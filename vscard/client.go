package vscard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ClientConfig configures a Client. A nil *ClientConfig, like the zero
// value, means every default.
type ClientConfig struct {
	// Capabilities are sent in the client's Init; nil sends the single
	// word 0, as QEMU and libcacard do.
	Capabilities []uint32

	// MaxPayload bounds the payload of a message from the host; 0 means
	// MaxPayload (65524 bytes: the most QEMU's buffer holds). A larger
	// message ends the connection with a *TooLargeError.
	MaxPayload int

	// WriteTimeout bounds every write (a write may end up to a tenth of
	// it, at most a second, sooner). A host that stops reading for this
	// long is treated as gone, so a wedged host never makes the client
	// buffer without bound. 0 means 10 s; negative means no timeout.
	WriteTimeout time.Duration

	// Handler, when set, answers the host's commands: the client calls it
	// on its read loop, one command at a time, in the host's order, with no
	// goroutine hand-off in between (the fast path). When nil, commands
	// arrive on Client.Commands instead.
	Handler Handler

	// CommandQueue is how many host commands may wait, in Commands or for a
	// Handler still busy with an earlier one, before the client stops
	// reading from the host (and TCP pushes back). 0 means 16.
	CommandQueue int

	// Logger receives protocol anomalies at debug and warn level (the
	// first ignored message of a connection at warn, the others at debug)
	// and, from Dial, the TLS session at debug. It never receives APDU
	// contents. nil discards.
	Logger *slog.Logger
}

func (c *ClientConfig) writeTimeout() time.Duration {
	switch {
	case c == nil || c.WriteTimeout == 0:
		return 10 * time.Second
	case c.WriteTimeout < 0:
		return 0
	}
	return c.WriteTimeout
}

func (c *ClientConfig) logger() *slog.Logger {
	if c == nil || c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Errors a Client returns, matched with errors.Is.
var (
	// ErrClosed: the client was closed by its owner.
	ErrClosed = errors.New("vscard: client closed")
	// ErrHostClosed: the host ended the connection.
	ErrHostClosed = errors.New("vscard: host closed the connection")
	// ErrAnswered: a command was answered twice.
	ErrAnswered = errors.New("vscard: command already answered")
)

// Handler answers the host's commands (the guest's APDUs).
//
// ServeAPDU answers cmd with cmd.Respond or cmd.Fail, exactly once, before
// it returns or later from another goroutine. The client calls it for one
// command at a time, in the order the host sent them, normally on its read
// loop. ServeAPDU may block (a PC/SC card, an on-card key generation): when
// a call lasts longer than a millisecond the client hands reading over to a
// new goroutine, so that the host's other messages (replies to control
// messages, Flush, a re-created card device's Init) are still read and
// Close returns, and calls ServeAPDU for the commands that arrive meanwhile
// from the goroutine of the call that blocked, once it returns.
type Handler interface {
	ServeAPDU(cmd *Command)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(cmd *Command)

// ServeAPDU calls f(cmd).
func (f HandlerFunc) ServeAPDU(cmd *Command) { f(cmd) }

// handoffDelay is how often, while commands come, the client checks whether
// a Handler call has lasted since the last check; if one has (between one
// and two delays), reading goes to another goroutine.
const handoffDelay = time.Millisecond

// HostError is a host's refusal of a control message: its Error reply with
// a non-zero code.
type HostError struct {
	Op   MsgType   // what the client sent
	Code ErrorCode // what the host answered
}

func (e *HostError) Error() string {
	return fmt.Sprintf("vscard: host refused %v: %v", e.Op, e.Code)
}

// Client is the client (card owner) end of a VSCard connection. Create one
// with NewClient or Dial; both complete the Init handshake before returning.
//
// A Client has one read loop goroutine, started by NewClient and stopped by
// Close or by the end of the connection. Control methods (AddReader,
// InsertCard, ...) send a message and wait for the host's acknowledgement;
// the host's commands arrive on Commands and are answered with
// Command.Respond or Command.Fail. All methods are safe for concurrent use.
type Client struct {
	nc       net.Conn
	log      *slog.Logger
	wtimeout time.Duration
	hostInit Init

	// wsem serialises writes (a one-slot semaphore rather than a mutex,
	// so that a control message can give up waiting for a write stuck on
	// a host that stopped reading); taken before mu.
	wsem chan struct{}
	w    *frameWriter
	wset time.Time // the write deadline set on nc (zero: none); guarded by wsem

	mu           sync.Mutex
	waiters      []chan reply    // control messages awaiting the host's Error, in wire order
	outstanding  int             // commands delivered and not yet answered
	flushPending int             // Flush messages waiting for outstanding to reach 0
	idle         []chan struct{} // Idle calls waiting for outstanding to reach 0
	err          error           // why the connection ended; set once

	anomalies int // messages from the host ignored so far; read loop only

	// The read role: rd is read by one goroutine at a time, the read loop,
	// which hands the role over (handoff) when a Handler call lasts.
	rd      *frameReader
	handler Handler
	// The hand-off watch: a timer that ticks every handoffDelay while
	// commands come and stops when none came for a tick, rather than one
	// armed and stopped around every call (two timer operations per
	// command, each waking the network poller).
	handoff  *time.Timer
	armed    atomic.Bool   // the timer ticks
	call     atomic.Uint64 // 2n: inline call n under way; 0: none; handedOver: the watch took reading over
	calls    atomic.Uint64 // inline calls so far
	lastCall atomic.Uint64 // call as the previous tick saw it
	lastN    atomic.Uint64 // calls as the previous tick saw it

	smu     sync.Mutex
	serving bool // a Handler call is under way (inline, or on the goroutine that handed reading over)
	waiting int  // commands sent (or being sent) to queued for that goroutine to serve
	queued  chan *Command

	cmds    chan *Command
	reinits chan Init // the host's later Inits; capacity 1, latest kept
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
}

type reply struct {
	id   ReaderID
	code ErrorCode
	err  error
}

// NewClient runs the client side of the handshake on nc (sends Init, waits
// for the host's Init) and starts the read loop. ctx bounds the handshake
// only. On error nc is closed.
func NewClient(ctx context.Context, nc net.Conn, cfg *ClientConfig) (*Client, error) {
	maxPayload, queue := 0, 16
	var caps []uint32
	if cfg != nil {
		maxPayload, caps = cfg.MaxPayload, cfg.Capabilities
		if cfg.CommandQueue > 0 {
			queue = cfg.CommandQueue
		}
	}
	var handler Handler
	if cfg != nil {
		handler = cfg.Handler
	}
	c := &Client{
		handler:  handler,
		nc:       nc,
		log:      cfg.logger(),
		wtimeout: cfg.writeTimeout(),
		w:        newFrameWriter(nc, 0),
		wsem:     make(chan struct{}, 1),
		cmds:     make(chan *Command, queue),
		queued:   make(chan *Command, queue),
		reinits:  make(chan Init, 1),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	c.rd = newFrameReader(bufio.NewReaderSize(nc, 4096), maxPayload)
	if err := c.handshake(ctx, c.rd, caps); err != nil {
		nc.Close()
		return nil, err
	}
	if c.handler != nil {
		c.handoff = time.AfterFunc(time.Hour, c.watch)
		c.handoff.Stop()
	}
	go c.readLoop()
	return c, nil
}

func (c *Client) handshake(ctx context.Context, r *frameReader, caps []uint32) error {
	// Bound the handshake by ctx: a host that accepts and says nothing (a
	// QEMU whose card device is wedged) must not hang the caller.
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	err := c.exchangeInit(r, caps)
	if !stop() {
		// ctx ended: the deadline is (being) forced into the past.
		return fmt.Errorf("vscard: handshake: %w", ctx.Err())
	}
	c.nc.SetDeadline(time.Time{})
	c.wset = time.Time{} // cleared with the rest
	return err
}

func (c *Client) exchangeInit(r *frameReader, caps []uint32) error {
	in := DefaultInit()
	if caps != nil {
		in.Capabilities = caps
	}
	if err := c.write(Message{Type: MsgInit, ReaderID: UndefinedReaderID, Payload: in.Append(nil)}, time.Time{}); err != nil {
		return fmt.Errorf("vscard: sending Init: %w", err)
	}
	for {
		m, err := r.readMessage()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = ErrHostClosed
			}
			return fmt.Errorf("vscard: waiting for the host's Init: %w", err)
		}
		if m.Type != MsgInit {
			// Replies to what an earlier client left in the host's buffer.
			c.log.Debug("vscard: ignoring message before the host's Init", "type", m.Type)
			continue
		}
		hi, err := ParseInit(m.Payload)
		if err == nil {
			err = hi.Check()
		}
		if err != nil {
			return fmt.Errorf("vscard: host's Init: %w", err)
		}
		c.hostInit = hi
		return nil
	}
}

// HostInit returns the Init the host sent in the handshake.
func (c *Client) HostInit() Init { return c.hostInit }

// HostReinits receives the Init a host sends after the handshake, on the
// same connection. QEMU does so when a new ccid-card-passthru device is
// created on the chardev the client is connected to (QMP device_del and
// device_add of the usb-ccid reader, or of the card device alone): the new
// device has no reader and no card, and answers nothing for the old one, so
// the owner announces its reader and card again. Only the latest Init waits
// to be received; the channel is never closed (select on Done as well).
func (c *Client) HostReinits() <-chan Init { return c.reinits }

// RemoteAddr returns the host's address.
func (c *Client) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// write sends m; the caller holds the write lock or owns the connection
// alone. A non-zero deadline earlier than the write timeout bounds the write.
func (c *Client) write(m Message, deadline time.Time) error {
	if c.wtimeout > 0 {
		if d := time.Now().Add(c.wtimeout); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	// Setting a deadline is a timer operation that may wake the network
	// poller: the write timeout's deadline is moved only once it is more
	// than a tenth of the timeout (at most a second) old, so a write gets
	// between 90% and 100% of it. A shorter deadline always applies.
	slack := min(c.wtimeout/10, time.Second)
	if deadline.IsZero() != c.wset.IsZero() || deadline.Before(c.wset) || deadline.Sub(c.wset) > slack {
		c.nc.SetWriteDeadline(deadline) // zero clears the last one
		c.wset = deadline
	}
	return c.w.writeMessage(m)
}

func (c *Client) lockWrite()   { c.wsem <- struct{}{} }
func (c *Client) unlockWrite() { <-c.wsem }

// lockWriteCtx takes the write lock unless ctx ends or the connection does
// first.
func (c *Client) lockWriteCtx(ctx context.Context) error {
	select {
	case c.wsem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closing:
		return c.Err()
	}
}

// sendLocked writes m (by deadline, when not zero); the caller holds the
// write lock. A failed write ends the connection: a message may be half
// written.
func (c *Client) sendLocked(m Message, deadline time.Time) error {
	if err := c.Err(); err != nil {
		return err
	}
	if err := c.write(m, deadline); err != nil {
		var tl *TooLargeError
		if errors.As(err, &tl) {
			return err // nothing was written; the connection is fine
		}
		err = fmt.Errorf("vscard: sending %v: %w", m.Type, err)
		c.fail(err)
		return err
	}
	return nil
}

// request sends a control message and waits for the host's Error reply.
func (c *Client) request(ctx context.Context, m Message) (ReaderID, error) {
	if len(m.Payload) > MaxPayload {
		// Refused before a reply waiter is queued: a waiter for a message
		// never sent would take the next request's reply.
		return 0, &TooLargeError{Type: m.Type, Length: uint64(len(m.Payload)), Max: MaxPayload}
	}
	ch := make(chan reply, 1)
	// Another goroutine's write may be stuck on a host that stopped
	// reading (until the write timeout): wait for it only as long as ctx
	// allows, and bound this write by ctx's deadline too.
	if err := c.lockWriteCtx(ctx); err != nil {
		return 0, fmt.Errorf("vscard: sending %v: %w", m.Type, err)
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		c.unlockWrite()
		return 0, err
	}
	c.waiters = append(c.waiters, ch)
	c.mu.Unlock()
	deadline, _ := ctx.Deadline()
	err := c.sendLocked(m, deadline)
	c.unlockWrite()
	if err != nil {
		return 0, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return 0, r.err
		}
		if r.code != ErrCodeSuccess {
			return r.id, &HostError{Op: m.Type, Code: r.code}
		}
		return r.id, nil
	case <-ctx.Done():
		// The waiter stays queued so that the reply, if it comes, is not
		// taken for the next request's.
		return 0, fmt.Errorf("vscard: waiting for the host to acknowledge %v: %w", m.Type, ctx.Err())
	}
}

// AddReader announces a reader named name and returns the id the host gave
// it (QEMU always gives 0).
func (c *Client) AddReader(ctx context.Context, name string) (ReaderID, error) {
	return c.request(ctx, Message{Type: MsgReaderAdd, ReaderID: UndefinedReaderID, Payload: []byte(name)})
}

// RemoveReader withdraws reader id (and its card). Removing a reader the
// host does not know is harmless with QEMU, which is how a client clears
// what an earlier, uncleanly ended session left.
func (c *Client) RemoveReader(ctx context.Context, id ReaderID) error {
	_, err := c.request(ctx, Message{Type: MsgReaderRemove, ReaderID: id})
	return err
}

// InsertCard inserts (or resets) the card in reader id with its answer to
// reset. QEMU refuses an ATR it finds inconsistent (see CheckATR) with a
// *HostError.
func (c *Client) InsertCard(ctx context.Context, id ReaderID, atr []byte) error {
	_, err := c.request(ctx, Message{Type: MsgATR, ReaderID: id, Payload: atr})
	return err
}

// RemoveCard removes the card from reader id.
func (c *Client) RemoveCard(ctx context.Context, id ReaderID) error {
	_, err := c.request(ctx, Message{Type: MsgCardRemove, ReaderID: id})
	return err
}

// Commands returns the channel on which the host's commands arrive. It is
// closed when the connection ends. Every command must be answered, with
// Respond or Fail; until then a Flush from the host stays pending.
func (c *Client) Commands() <-chan *Command { return c.cmds }

// Idle waits until every command delivered on Commands so far has been
// answered, so that what the client sends next reaches the host after those
// answers. It returns ctx's error if ctx ends first, and why the connection
// ended if it ends first.
//
// QEMU takes whatever answer comes next as the answer to the guest's
// pending command; once a new card is announced, that is a command for the
// new card. A client that announces a new card (or the same one after a
// reset) therefore calls Idle first, once the host has acknowledged the
// removal of the old card (any command for the old card came before that
// acknowledgement, so it has been delivered).
func (c *Client) Idle(ctx context.Context) error {
	c.mu.Lock()
	if c.outstanding == 0 {
		c.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	c.idle = append(c.idle, ch)
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-c.closing:
		return c.Err()
	case <-ctx.Done():
		return fmt.Errorf("vscard: waiting for the outstanding commands' answers: %w", ctx.Err())
	}
}

// Done is closed when the connection has ended and the read loop stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Wait waits for the connection to end and returns why: ErrClosed after
// Close, an error wrapping ErrHostClosed when the host hung up, or the
// read or write error that ended it.
func (c *Client) Wait() error {
	<-c.done
	return c.Err()
}

// Close ends the connection and waits for the read loop to stop. It sends
// nothing: to leave cleanly, remove the card and reader first.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	<-c.done
	return nil
}

// fail records why the connection ends (first reason wins), closes it and
// fails every waiting request.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	waiters := c.waiters
	c.waiters = nil
	c.mu.Unlock()
	c.once.Do(func() { close(c.closing) })
	c.nc.Close()
	for _, w := range waiters {
		w <- reply{err: err}
	}
}

// readLoop reads and handles the host's messages until the connection ends,
// or until a Handler call it made lasted so long that reading moved to a
// new goroutine (which runs readLoop again, from the handoff timer). The
// goroutine that reads last closes Commands and Done.
func (c *Client) readLoop() {
	if c.read() {
		return // another goroutine reads now
	}
	close(c.cmds)
	close(c.done)
}

// handedOver is the value of call once the watch has taken reading over
// from a call that lasted.
const handedOver = 1

// watch is the hand-off timer's tick. When the same inline call is still
// under way as at the previous tick, it takes the read role over and runs
// the read loop on its own goroutine; the call's goroutine, when it
// returns, serves what the new reader queued. Otherwise it ticks again,
// unless no command came since the previous tick.
func (c *Client) watch() {
	v := c.call.Load()
	if v != 0 && v != handedOver && v == c.lastCall.Load() && c.call.CompareAndSwap(v, handedOver) {
		// The CAS observed the call's store of call, which followed
		// everything its goroutine did with the reader: reading here is
		// ordered after it.
		c.lastCall.Store(0)
		c.rearm()
		c.readLoop()
		return
	}
	c.lastCall.Store(v)
	n := c.calls.Load()
	if v == 0 && n == c.lastN.Load() {
		// Idle for a tick: stop, unless a call began meanwhile (it saw
		// armed still set and did not arm the timer itself).
		c.armed.Store(false)
		if c.call.Load() == 0 && c.calls.Load() == n || !c.armed.CompareAndSwap(false, true) {
			return
		}
	}
	c.lastN.Store(n)
	c.handoff.Reset(handoffDelay)
}

// rearm makes the watch tick again after it took reading over: the new
// reader's calls need watching too.
func (c *Client) rearm() {
	c.lastN.Store(c.calls.Load())
	c.armed.Store(true)
	c.handoff.Reset(handoffDelay)
}

// read runs the read role; true means it was handed over.
func (c *Client) read() (handedOver bool) {
	for {
		m, err := c.rd.readMessage()
		if err != nil {
			select {
			case <-c.closing:
			default:
				if errors.Is(err, io.EOF) {
					err = ErrHostClosed
				} else {
					err = fmt.Errorf("vscard: reading from host: %w", err)
				}
				c.fail(err)
			}
			return false
		}
		if m.Type == MsgAPDU && c.handler != nil {
			if stop, moved := c.serve(m); stop || moved {
				return moved
			}
			continue
		}
		if !c.dispatch(m) {
			return false
		}
	}
}

// serve hands a host command to the Handler: at once, on this goroutine,
// when no earlier command is still being served, else through queued to
// the goroutine serving it. moved reports that reading was handed over
// meanwhile; stop that the connection ended.
func (c *Client) serve(m Message) (stop, moved bool) {
	cmd := c.newCommand(m)
	c.smu.Lock()
	if c.serving {
		c.waiting++
		c.smu.Unlock()
		select {
		case c.queued <- cmd:
			return false, false
		case <-c.closing:
			return true, false
		}
	}
	c.serving = true
	c.smu.Unlock()
	n := c.calls.Add(1)
	c.call.Store(2 * n)
	if c.armed.CompareAndSwap(false, true) {
		c.handoff.Reset(handoffDelay)
	}
	c.handler.ServeAPDU(cmd)
	if c.call.CompareAndSwap(2*n, 0) {
		// Still the reader: nobody queued anything.
		c.smu.Lock()
		c.serving = false
		c.smu.Unlock()
		return false, false
	}
	// The watch took reading over: another goroutine reads now, and queues
	// what arrives for this one to serve, in order.
	for {
		c.smu.Lock()
		if c.waiting == 0 {
			c.call.CompareAndSwap(handedOver, 0) // no call under way: the watch may rest
			c.serving = false
			c.smu.Unlock()
			return false, true
		}
		c.waiting--
		c.smu.Unlock()
		select {
		case next := <-c.queued:
			c.handler.ServeAPDU(next)
		case <-c.closing:
			return false, true
		}
	}
}

// newCommand makes a command of an APDU message, counted as outstanding.
func (c *Client) newCommand(m Message) *Command {
	cmd := &Command{ReaderID: m.ReaderID, APDU: append([]byte(nil), m.Payload...), c: c}
	c.mu.Lock()
	c.outstanding++
	c.mu.Unlock()
	return cmd
}

// dispatch handles one message from the host; false ends the loop.
func (c *Client) dispatch(m Message) bool {
	switch m.Type {
	case MsgError:
		code, err := ParseError(m.Payload)
		if err != nil {
			c.anomaly("vscard: ignoring malformed Error from host", "err", err)
			return true
		}
		c.mu.Lock()
		var w chan reply
		if len(c.waiters) > 0 {
			w = c.waiters[0]
			c.waiters = c.waiters[1:]
		}
		c.mu.Unlock()
		if w == nil {
			c.log.Debug("vscard: unsolicited Error from host", "code", code, "reader", m.ReaderID)
			return true
		}
		w <- reply{id: m.ReaderID, code: code}
	case MsgAPDU:
		cmd := c.newCommand(m)
		select {
		case c.cmds <- cmd:
		case <-c.closing:
			return false
		}
	case MsgFlush:
		c.lockWrite()
		c.mu.Lock()
		now := c.outstanding == 0
		if !now {
			c.flushPending++
		}
		c.mu.Unlock()
		var err error
		if now {
			err = c.sendLocked(Message{Type: MsgFlushComplete, ReaderID: m.ReaderID}, time.Time{})
		}
		c.unlockWrite()
		if err != nil {
			return false
		}
	case MsgInit:
		hi, err := ParseInit(m.Payload)
		if err != nil {
			c.anomaly("vscard: ignoring malformed Init from host", "err", err)
			return true
		}
		c.log.Debug("vscard: the host sent Init again: its card device was re-created on this connection and knows no reader or card")
		// Keep only the latest: the owner announces once whatever the
		// number of re-creations it missed.
		select {
		case <-c.reinits:
		default:
		}
		c.reinits <- hi
	default:
		c.anomaly("vscard: ignoring unexpected message from host", "type", m.Type, "reader", m.ReaderID, "len", len(m.Payload))
	}
	return true
}

// anomaly logs a message from the host that the client ignores: the first
// of a connection at warn level, the others at debug level, so that a host
// cannot flood the log. It runs on the read loop.
func (c *Client) anomaly(msg string, args ...any) {
	c.anomalies++
	if c.anomalies == 1 {
		c.log.Warn(msg, append(args, "note", "further ignored messages on this connection are logged at debug level")...)
		return
	}
	c.log.Debug(msg, args...)
}

// Command is a command APDU the host sent (the guest's command). Answer it
// exactly once, with Respond or Fail.
type Command struct {
	ReaderID ReaderID
	APDU     []byte

	c        *Client
	answered bool // guarded by the client's write lock
}

// Respond sends the card's response to the host.
func (cmd *Command) Respond(resp []byte) error {
	return cmd.answer(Message{Type: MsgAPDU, ReaderID: cmd.ReaderID, Payload: resp})
}

// Fail tells the host the card could not answer the command (an Error
// message with code), so the guest gets an error rather than silence.
func (cmd *Command) Fail(code ErrorCode) error {
	return cmd.answer(Message{Type: MsgError, ReaderID: cmd.ReaderID, Payload: AppendError(nil, code)})
}

func (cmd *Command) answer(m Message) error {
	c := cmd.c
	c.lockWrite()
	defer c.unlockWrite()
	if cmd.answered {
		return ErrAnswered
	}
	err := c.sendLocked(m, time.Time{})
	var tl *TooLargeError
	if errors.As(err, &tl) {
		return err // not answered: the caller may still Fail it
	}
	cmd.answered = true
	c.mu.Lock()
	c.outstanding--
	flushes := 0
	var idle []chan struct{}
	if c.outstanding == 0 {
		flushes, c.flushPending = c.flushPending, 0
		idle, c.idle = c.idle, nil
	}
	c.mu.Unlock()
	for ; err == nil && flushes > 0; flushes-- {
		err = c.sendLocked(Message{Type: MsgFlushComplete, ReaderID: cmd.ReaderID}, time.Time{})
	}
	for _, ch := range idle {
		close(ch)
	}
	return err
}
