// Package bridge joins a card source (a PC/SC reader, an emulated PIV card)
// to a VSCard host (QEMU's ccid-card-passthru): it announces the source's
// reader and card, carries every guest command to the card and its response
// back, follows the source's changes, and reconnects when the host goes away.
//
// The bridge does what libcacard's vscclient does not:
//   - a card error answers the command with an Error message, never silence;
//   - responses QEMU cannot carry to the guest (over 374 bytes with the
//     status word) are handed out in pieces with 61xx + GET RESPONSE, which
//     the bridge serves itself;
//   - when the host goes away or stops answering it reconnects with capped
//     exponential backoff and redoes the whole announcement;
//   - it leaves cleanly (CardRemove, ReaderRemove) when its context ends.
package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/vscard"
)

// Card is a card the bridge sends the guest's commands to.
type Card interface {
	// Transmit sends a command APDU and returns the response APDU (data
	// and status word).
	Transmit(ctx context.Context, cmd []byte) ([]byte, error)
}

// DeadlineIgnorer is implemented by cards whose Transmit does not watch its
// context once a command has started (an emulated card, whose key
// operations take no context): the bridge calls them without CardTimeout's
// per-command deadline, which would bound nothing and cost an allocation
// and a timer per command.
type DeadlineIgnorer interface {
	IgnoresDeadline()
}

// Resetter is implemented by cards that can be reset. The bridge resets the
// card whenever it (re)announces it to a host, so that a new guest session
// never inherits the last one's state (a verified PIN, a selected applet).
type Resetter interface {
	Reset(ctx context.Context) error
}

// State is what a source presents now.
type State struct {
	// Reader is the name of the reader presented to the guest; "" means no
	// reader.
	Reader string
	// ATR is the card's answer to reset; nil means no card.
	ATR []byte
	// Card answers commands; set when ATR is.
	Card Card
	// Generation changes whenever the card is inserted or reset, so that
	// the bridge re-announces a card even when its ATR is the same.
	Generation uint64
}

func (s State) hasCard() bool { return s.Reader != "" && s.ATR != nil && s.Card != nil }

// Source presents a reader and its card, and reports changes.
type Source interface {
	// Run reports the source's state through update, first the initial
	// state and then every change, until ctx ends. update never blocks.
	// Run returns ctx.Err() when ctx ends, or an error if the source
	// fails for good.
	Run(ctx context.Context, update func(State)) error
}

// Target is where a host listens.
type Target struct {
	// Network and Address locate the host: "tcp" and "host:port", or
	// "unix" and a socket path.
	Network, Address string
	// TLS: the host speaks TLS (Config.Dial.TLS says how).
	TLS bool
}

func (t Target) String() string {
	switch {
	case t.Network == "unix":
		return "unix:" + t.Address
	case t.TLS:
		return "tls://" + t.Address
	}
	return "tcp://" + t.Address
}

// Config configures Run.
type Config struct {
	// Network and Address locate the host: "tcp" and "host:port", or
	// "unix" and a socket path; with TLS when Dial.TLS is set. When Address
	// is empty the host is whatever SetTarget says (a libvirt domain
	// followed through its restarts), and none until it is called.
	Network, Address string
	// Dial configures the VSCard connection (TLS, timeouts).
	Dial *vscard.DialConfig
	// Source is the card source. Required.
	Source Source

	// Logger receives what the bridge does. nil discards.
	Logger *slog.Logger
	// APDUTrace logs every command and response at info level, with the
	// data of PIN commands redacted unless TraceSecrets is set.
	APDUTrace    bool
	TraceSecrets bool

	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts; 0 means 50 ms and 1 s.
	MinBackoff, MaxBackoff time.Duration
	// ReplyTimeout bounds the wait for the host to acknowledge a control
	// message (and to answer Init); a host that does not is treated as
	// gone. 0 means 5 s.
	ReplyTimeout time.Duration
	// CardTimeout bounds one command's round trip to a card that watches
	// its context (not a DeadlineIgnorer); 0 means 2 min (on-card key
	// generation is slow).
	CardTimeout time.Duration
	// DialHint, when set, explains a failure to reach the host (what the
	// user can do about it); the first failure's warning carries it.
	DialHint func(Target, error) string
	// OnStatus, when set, is called with the bridge's status whenever it
	// changes (a target, a connection, an announcement, a loss). It must
	// not block.
	OnStatus func(Status)
	// MaxResponse is the most bytes (data and status word) one response to
	// the guest may carry; longer ones are split with 61xx + GET RESPONSE.
	// 0 means 374, what QEMU's usb-ccid passes to the guest.
	MaxResponse int
}

// MinMaxBackoff is the shortest Config.MaxBackoff the bridge takes: a
// shorter one is raised to it.
const MinMaxBackoff = 100 * time.Millisecond

// QEMUMaxResponse is the largest response QEMU's usb-ccid carries to the
// guest: its 384-byte bulk-in buffer less the 10-byte CCID header.
const QEMUMaxResponse = 384 - 10

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 50 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Second
	}
	// A tighter loop only burns CPU against a host that is not there.
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff, MinMaxBackoff)
	if c.ReplyTimeout <= 0 {
		c.ReplyTimeout = 5 * time.Second
	}
	if c.CardTimeout <= 0 {
		c.CardTimeout = 2 * time.Minute
	}
	if c.MaxResponse <= 0 {
		c.MaxResponse = QEMUMaxResponse
	}
	if c.Network == "" {
		c.Network = "tcp"
	}
}

// Bridge joins a Source to a host. Create it with New and run it with Run.
type Bridge struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	state   State
	changed chan struct{} // signalled when state changes
	stats   Stats
	target  *Target       // nil: no host to reach
	retgt   chan struct{} // signalled when target changes
	status  Status
}

// Status is what a bridge is doing.
type Status struct {
	// Target is the host the bridge reaches for, nil when it has none
	// (the VM is off).
	Target *Target
	// Connected: a connection to Target completed the handshake and has
	// not ended.
	Connected bool
	// Reader and Card are what the host was told: the reader's name ("":
	// none) and whether a card is in it.
	Reader string
	Card   bool
	// Synced: the host has been told what the source presents (a card,
	// an empty reader, or nothing) since the connection began.
	Synced bool
	// Attempts counts the failed connection attempts since the last
	// connection (or target), and Err is the last one's error.
	Attempts int
	Err      error
	// Since is when Connected, or Target, last changed.
	Since time.Time
	Stats
}

// Stats counts what a bridge did.
type Stats struct {
	Sessions   int // connections that completed the handshake
	Commands   int // guest commands answered
	CardErrors int // commands answered with Error
	Split      int // responses split with 61xx
	Reinits    int // new card devices on a live connection (re-announced)
}

// New returns a bridge for cfg.
func New(cfg Config) (*Bridge, error) {
	if cfg.Source == nil {
		return nil, errors.New("bridge: no card source")
	}
	cfg.defaults()
	b := &Bridge{cfg: cfg, log: cfg.Logger, changed: make(chan struct{}, 1), retgt: make(chan struct{}, 1)}
	if cfg.Address != "" {
		b.target = &Target{Network: cfg.Network, Address: cfg.Address, TLS: cfg.Dial != nil && cfg.Dial.TLS != nil}
	}
	b.status = Status{Target: b.target, Since: time.Now()}
	return b, nil
}

// SetTarget sets the host the bridge reaches for; nil means none (the VM is
// off): the bridge leaves the host it is connected to, if any, and waits
// without retrying. A new target is tried at once. Safe to call at any
// time, before Run too.
func (b *Bridge) SetTarget(t *Target) {
	b.mu.Lock()
	if t == nil && b.target == nil || t != nil && b.target != nil && *t == *b.target {
		b.mu.Unlock()
		return
	}
	if t != nil {
		t2 := *t
		t = &t2
	}
	b.target = t
	b.status.Target, b.status.Attempts, b.status.Err, b.status.Since = t, 0, nil, time.Now()
	b.mu.Unlock()
	b.statusChanged()
	select {
	case b.retgt <- struct{}{}:
	default:
	}
}

func (b *Bridge) currentTarget() *Target {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.target
}

// Status returns what the bridge is doing now.
func (b *Bridge) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.status
	st.Stats = b.stats
	return st
}

// setStatus changes the status under the lock and reports it.
func (b *Bridge) setStatus(f func(*Status)) {
	b.mu.Lock()
	f(&b.status)
	b.mu.Unlock()
	b.statusChanged()
}

func (b *Bridge) statusChanged() {
	if b.cfg.OnStatus != nil {
		b.cfg.OnStatus(b.Status())
	}
}

// Stats returns counters of what the bridge did so far.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

func (b *Bridge) update(s State) {
	b.mu.Lock()
	b.state = s
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

func (b *Bridge) current() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// Run runs the bridge until ctx ends: it runs the source, connects to the
// host, announces, serves, and reconnects whenever the host goes away. When
// ctx ends it removes the card and the reader from the host, closes the
// connection and returns nil. It returns an error only when the source
// fails for good.
func (b *Bridge) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	srcDone := make(chan error, 1)
	go func() {
		err := b.cfg.Source.Run(ctx, b.update)
		if ctx.Err() == nil {
			cancel(fmt.Errorf("bridge: card source: %w", err))
		}
		srcDone <- err
	}()
	defer func() { <-srcDone }()

	backoff := b.cfg.MinBackoff
	var (
		failures  int
		downSince time.Time     // first failed attempt since the last connection
		remindAt  time.Duration // how long after downSince to say "still trying"
	)
	for {
		t := b.currentTarget()
		if t == nil {
			// No host (the VM is off): wait, without retrying.
			select {
			case <-ctx.Done():
				return b.sourceErr(ctx)
			case <-b.retgt:
				backoff, failures = b.cfg.MinBackoff, 0
				continue
			}
		}
		c, h, err := b.dial(ctx, *t)
		if err == nil {
			if failures > 0 {
				b.log.Info("connected to the host again", "host", t.Address, "after_attempts", failures)
			} else {
				b.log.Info("connected to the host", "host", t.Address)
			}
			failures = 0
			b.setStatus(func(s *Status) { s.Connected, s.Attempts, s.Err, s.Since = true, 0, nil, time.Now() })
			start := time.Now()
			err = b.session(ctx, c, *t)
			c.Close()
			h.end()
			b.setStatus(func(s *Status) {
				s.Connected, s.Reader, s.Card, s.Synced, s.Since = false, "", false, false, time.Now()
			})
			if ctx.Err() != nil {
				return b.sourceErr(ctx)
			}
			if errors.Is(err, errTargetChanged) {
				backoff = b.cfg.MinBackoff
				continue
			}
			b.log.Warn("lost the host; reconnecting", "host", t.Address, "reason", err)
			if time.Since(start) > 10*time.Second {
				backoff = b.cfg.MinBackoff
			}
		} else {
			if ctx.Err() != nil {
				return b.sourceErr(ctx)
			}
			failures++
			b.setStatus(func(s *Status) { s.Attempts, s.Err = failures, err })
			switch down := time.Since(downSince); {
			case failures == 1:
				downSince, remindAt = time.Now(), time.Minute
				if h := b.dialHint(*t, err); h != "" {
					b.log.Warn("cannot reach the host; retrying", "host", t.Address, "err", err, "hint", h)
				} else {
					b.log.Warn("cannot reach the host; retrying", "host", t.Address, "err", err)
				}
			case down >= remindAt:
				remindAt = nextReminder(remindAt)
				b.log.Warn("still trying to reach the host", "host", t.Address, "attempts", failures, "for", down.Round(time.Second).String(), "err", err)
			default:
				b.log.Debug("cannot reach the host", "host", t.Address, "attempt", failures, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return b.sourceErr(ctx)
		case <-time.After(backoff):
			backoff = min(2*backoff, b.cfg.MaxBackoff)
		case <-b.retgt:
			backoff, failures = b.cfg.MinBackoff, 0
		}
	}
}

func (b *Bridge) dialHint(t Target, err error) string {
	if b.cfg.DialHint == nil {
		return ""
	}
	return b.cfg.DialHint(t, err)
}

// nextReminder returns when, after the first failed attempt, a bridge that
// still cannot reach its host says so again, after saying so at d: 1, 5,
// 15 and 60 minutes, then every hour.
func nextReminder(d time.Duration) time.Duration {
	switch {
	case d < 5*time.Minute:
		return 5 * time.Minute
	case d < 15*time.Minute:
		return 15 * time.Minute
	}
	return (d/time.Hour + 1) * time.Hour
}

// errTargetChanged ends a session whose target was replaced.
var errTargetChanged = errors.New("bridge: the host's address changed")

// ErrNeedTLS: the target speaks TLS and the bridge has no TLS configuration
// (Config.Dial.TLS).
var ErrNeedTLS = errors.New("bridge: the host's chardev uses TLS, and no TLS client configuration was given")

func (b *Bridge) sourceErr(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (b *Bridge) dial(ctx context.Context, t Target) (*vscard.Client, *handler, error) {
	dctx, cancel := context.WithTimeout(ctx, b.cfg.ReplyTimeout)
	defer cancel()
	var dc vscard.DialConfig
	if b.cfg.Dial != nil {
		dc = *b.cfg.Dial
	}
	switch {
	case t.TLS && dc.TLS == nil:
		return nil, nil, ErrNeedTLS
	case !t.TLS:
		dc.TLS = nil
	}
	// Each connection gets its own handler (its GET RESPONSE state), called
	// on the client's read loop.
	h := b.newHandler(ctx)
	dc.Handler = h
	c, err := vscard.Dial(dctx, t.Network, t.Address, &dc)
	if err != nil {
		h.end()
	}
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		hint := "the host accepted the connection but did not answer Init: if it is QEMU, its card device may be wedged by an earlier client's oversized message; restart the VM"
		if t.TLS {
			// A chardev without TLS reads the ClientHello as a VSCard
			// header claiming more than its buffer holds.
			hint = "the host accepted the connection but did not finish the TLS handshake or answer Init: a QEMU chardev without TLS never answers a TLS client, whose bytes wedge its card device until the VM restarts (use tcp:// for such a chardev); or an earlier client wedged it"
		}
		err = fmt.Errorf("%w (%s)", err, hint)
	}
	return c, h, err
}

// announced is what the host has been told.
type announced struct {
	reader string
	id     vscard.ReaderID
	hasRdr bool
	atr    []byte
	gen    uint64
	hasCrd bool
}

// session announces and serves one connection until it ends or ctx does.
func (b *Bridge) session(ctx context.Context, c *vscard.Client, t Target) error {
	b.mu.Lock()
	b.stats.Sessions++
	b.mu.Unlock()

	defer c.Close()

	var ann announced
	// Clear what an earlier, uncleanly ended session may have left.
	if err := b.control(ctx, func(cctx context.Context) error { return c.RemoveReader(cctx, vscard.MinimalReaderID) }); err != nil {
		return err
	}
	synced := false
	for {
		if err := b.sync(ctx, c, &ann); err != nil {
			return err
		}
		if !synced {
			synced = true
			b.setStatus(func(s *Status) { s.Synced = true })
		}
		select {
		case <-ctx.Done():
			b.leave(c, &ann, t)
			return ctx.Err()
		case <-c.Done():
			return c.Err()
		case <-b.retgt:
			if nt := b.currentTarget(); nt != nil && *nt == t {
				continue // changed and changed back
			}
			// A new target (the VM restarted elsewhere, or is off):
			// leave this host, as politely as it still allows.
			b.leave(c, &ann, t)
			return errTargetChanged
		case <-c.HostReinits():
			// A new card device on the same connection (the VM's
			// reader was unplugged and plugged back): it knows nothing
			// of what was announced.
			b.log.Warn("the host's card device was re-created; announcing the reader and card again", "host", t.Address)
			b.mu.Lock()
			b.stats.Reinits++
			b.mu.Unlock()
			ann = announced{}
		case <-b.changed:
		}
	}
}

// control runs one control exchange with the reply timeout.
func (b *Bridge) control(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.ReplyTimeout)
	defer cancel()
	err := f(cctx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("bridge: the host stopped answering: %w", err)
	}
	return err
}

// sync brings the host in line with the source's current state.
func (b *Bridge) sync(ctx context.Context, c *vscard.Client, ann *announced) error {
	st := b.current()
	var he *vscard.HostError
	// Card gone, changed or reset: remove what the host has, so that the
	// guest sees the removal before the new card.
	if ann.hasCrd && (!st.hasCard() || st.Reader != ann.reader || st.Generation != ann.gen || !bytes.Equal(st.ATR, ann.atr)) {
		if err := b.control(ctx, func(cctx context.Context) error { return c.RemoveCard(cctx, ann.id) }); err != nil && !errors.As(err, &he) {
			return err
		}
		b.log.Info("card removed", "reader", ann.reader)
		b.setStatus(func(s *Status) { s.Card = false })
		ann.hasCrd = false
	}
	if ann.hasRdr && st.Reader != ann.reader {
		if err := b.control(ctx, func(cctx context.Context) error { return c.RemoveReader(cctx, ann.id) }); err != nil && !errors.As(err, &he) {
			return err
		}
		b.log.Info("reader removed", "reader", ann.reader)
		b.setStatus(func(s *Status) { s.Reader, s.Card = "", false })
		ann.hasRdr, ann.hasCrd = false, false
	}
	if !ann.hasRdr && st.Reader != "" {
		var id vscard.ReaderID
		err := b.control(ctx, func(cctx context.Context) (err error) { id, err = c.AddReader(cctx, st.Reader); return err })
		if errors.As(err, &he) {
			b.log.Error("the host refused the reader", "reader", st.Reader, "err", err)
			return nil
		}
		if err != nil {
			return err
		}
		ann.reader, ann.id, ann.hasRdr = st.Reader, id, true
		b.log.Info("reader announced", "reader", st.Reader, "id", id)
		b.setStatus(func(s *Status) { s.Reader = st.Reader })
	}
	if ann.hasRdr && st.hasCard() && (!ann.hasCrd || st.Generation != ann.gen || !bytes.Equal(st.ATR, ann.atr)) {
		// QEMU takes the first answer after an ATR as the answer to the
		// guest's next command: a command for the card before must be
		// answered first (QEMU drops that answer), or every later
		// command would get the answer of the one before it.
		if err := c.Idle(ctx); err != nil {
			return err
		}
		if r, ok := st.Card.(Resetter); ok {
			if err := r.Reset(ctx); err != nil {
				b.log.Warn("could not reset the card before announcing it", "err", err)
			}
		}
		err := b.control(ctx, func(cctx context.Context) error { return c.InsertCard(cctx, ann.id, st.ATR) })
		if errors.As(err, &he) {
			b.log.Error("the host refused the card's ATR", "atr", fmt.Sprintf("%X", st.ATR), "err", err, "check", vscard.CheckATR(st.ATR))
			ann.hasCrd, ann.atr, ann.gen = false, st.ATR, st.Generation
			return nil
		}
		if err != nil {
			return err
		}
		ann.hasCrd, ann.atr, ann.gen = true, st.ATR, st.Generation
		b.log.Info("card inserted", "reader", ann.reader, "atr", fmt.Sprintf("%X", st.ATR))
		b.setStatus(func(s *Status) { s.Card = true })
	}
	return nil
}

// leave removes the card and the reader, as a client leaving cleanly does.
func (b *Bridge) leave(c *vscard.Client, ann *announced, t Target) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if ann.hasCrd {
		if err := c.RemoveCard(ctx, ann.id); err != nil {
			b.log.Warn("removing the card on exit", "err", err)
		}
	}
	if ann.hasRdr {
		if err := c.RemoveReader(ctx, ann.id); err != nil {
			b.log.Warn("removing the reader on exit", "err", err)
		}
	}
	b.log.Info("left the host", "host", t.Address)
}

// handler answers the host's commands on one connection. The client calls
// it for one command at a time, so its GET RESPONSE state needs no lock.
type handler struct {
	b      *Bridge
	ctx    context.Context // the session's: cancelled when it ends
	cancel context.CancelFunc
	split  apdu.Splitter
	redact apdu.Redactor
	gen    uint64

	// The client does not wait for a Handler call that blocks when it
	// closes; the session does, through end, so that no card call
	// outlives it (whoever owns the card may release it once Run returns).
	mu     sync.Mutex
	ended  bool
	active int
	idle   chan struct{} // closed when active drops to 0 after end
}

func (b *Bridge) newHandler(ctx context.Context) *handler {
	ctx, cancel := context.WithCancel(ctx)
	return &handler{
		b:      b,
		ctx:    ctx,
		cancel: cancel,
		split:  apdu.Splitter{Max: min(b.cfg.MaxResponse-2, apdu.MaxShortData)},
		redact: apdu.Redactor{ShowSecrets: b.cfg.TraceSecrets},
	}
}

// end cancels the session's card calls and waits until none is under way;
// a command the client still hands over after that is answered Error
// without the card. Call it after closing the client.
func (h *handler) end() {
	h.cancel()
	h.mu.Lock()
	h.ended = true
	var idle chan struct{}
	if h.active > 0 {
		idle = make(chan struct{})
		h.idle = idle
	}
	h.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

// ServeAPDU answers one guest command with the card's response, or with
// Error when the card fails it.
func (h *handler) ServeAPDU(cmd *vscard.Command) {
	h.mu.Lock()
	if h.ended {
		h.mu.Unlock()
		cmd.Fail(vscard.ErrCodeGeneral)
		return
	}
	h.active++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		if h.active--; h.active == 0 && h.idle != nil {
			close(h.idle)
			h.idle = nil
		}
		h.mu.Unlock()
	}()
	b := h.b
	st := b.current()
	if st.Generation != h.gen {
		h.split.Reset()
		h.gen = st.Generation
	}
	var start time.Time
	if b.cfg.APDUTrace {
		start = time.Now()
	}
	resp, err := b.answer(h.ctx, st, &h.split, cmd.APDU)
	failed := err != nil
	if failed {
		if h.ctx.Err() != nil {
			// Leaving: the commands still queued fail together,
			// which is not worth a warning each.
			b.log.Debug("leaving; answering a queued command with Error", "err", err)
		} else {
			b.log.Warn("the card failed a command; answering Error", "err", err)
		}
		err = cmd.Fail(vscard.ErrCodeGeneral)
	} else {
		err = cmd.Respond(resp)
	}
	if b.cfg.APDUTrace {
		b.log.Info("apdu", "command", h.redact.Command(cmd.APDU), "response", h.redact.Response(resp), "ms", float64(time.Since(start).Microseconds())/1000)
	}
	if err != nil {
		b.log.Debug("answering the host", "err", err)
	}
	b.mu.Lock()
	b.stats.Commands++
	if failed {
		b.stats.CardErrors++
	}
	b.mu.Unlock()
}

// answer computes the response to one guest command.
func (b *Bridge) answer(ctx context.Context, st State, split *apdu.Splitter, raw []byte) ([]byte, error) {
	if !st.hasCard() {
		return nil, errors.New("bridge: no card")
	}
	cmd, perr := apdu.Parse(raw)
	if perr == nil && split.Pending() && apdu.IsGetResponse(cmd) {
		resp, _ := split.Next(cmd)
		return resp, nil
	}
	split.Reset()
	var resp []byte
	var err error
	if _, ok := st.Card.(DeadlineIgnorer); ok {
		resp, err = st.Card.Transmit(ctx, raw)
	} else {
		cctx, cancel := context.WithTimeout(ctx, b.cfg.CardTimeout)
		resp, err = st.Card.Transmit(cctx, raw)
		cancel()
	}
	if err != nil {
		return nil, err
	}
	if len(resp) < 2 {
		return nil, fmt.Errorf("bridge: card answered %d bytes, no status word", len(resp))
	}
	if len(resp) <= b.cfg.MaxResponse {
		return resp, nil
	}
	b.mu.Lock()
	b.stats.Split++
	b.mu.Unlock()
	r := apdu.Response(resp)
	first := b.cfg.MaxResponse - 2
	if perr != nil || !cmd.Extended {
		first = min(first, apdu.MaxShortData) // a short Le asks for 256 at most
	}
	return split.StartWithin(r.Data(), r.SW(), first), nil
}
