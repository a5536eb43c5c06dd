//go:build cgo || windows

package reader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ebfe/scard"
)

// Card is a connection to the card in a reader. Its methods are safe for
// concurrent use; PC/SC calls on one Card run one at a time.
type Card struct {
	reader string
	mode   scard.ShareMode
	want   Protocol
	disp   scard.Disposition
	log    *slog.Logger

	sctx *scard.Context
	card *scard.Card

	// sem is held by the PC/SC call in progress, which may outlive the
	// Transmit that started it when its context ends first.
	sem chan struct{}
	wg  sync.WaitGroup

	mu     sync.Mutex
	atr    []byte
	proto  Protocol
	closed bool
}

// Connect connects to the card in the reader named reader. It fails with an
// error matching ErrNoCard when the reader is empty, ErrSharing when another
// program holds the card exclusively, ErrReaderGone when there is no such
// reader, ErrNoService when pcscd does not run. ctx is checked before the
// call; SCardConnect itself is not interruptible.
func Connect(ctx context.Context, reader string, opts *ConnectOptions) (*Card, error) {
	if opts == nil {
		opts = &ConnectOptions{}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &Card{
		reader: reader,
		mode:   scard.ShareExclusive,
		want:   opts.Protocol,
		disp:   scard.LeaveCard,
		log:    opts.Logger,
		sem:    make(chan struct{}, 1),
	}
	if c.want == 0 {
		c.want = Any
	}
	if c.want&^Any != 0 {
		return nil, fmt.Errorf("reader: unsupported protocol %v: use T0, T1 or Any", c.want)
	}
	if opts.Shared {
		c.mode = scard.ShareShared
	}
	if opts.ResetOnClose {
		c.disp = scard.ResetCard
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	sctx, err := scard.EstablishContext()
	if err != nil {
		return nil, wrapScard("SCardEstablishContext", err)
	}
	card, err := sctx.Connect(reader, c.mode, scard.Protocol(c.want))
	if err != nil {
		sctx.Release()
		return nil, fmt.Errorf("reader: connecting to %q: %w", reader, wrapScard("SCardConnect", err))
	}
	c.sctx, c.card = sctx, card
	if err := c.refresh(); err != nil {
		card.Disconnect(scard.LeaveCard)
		sctx.Release()
		return nil, err
	}
	c.log.Debug("reader: connected", "reader", reader, "protocol", c.Protocol())
	return c, nil
}

// wrapScard turns an ebfe/scard error into a *PCSCError.
func wrapScard(op string, err error) error {
	if err == nil {
		return nil
	}
	var se scard.Error
	if errors.As(err, &se) {
		return &PCSCError{Op: op, Code: uint32(se)}
	}
	return fmt.Errorf("reader: %s: %w", op, err)
}

// refresh reads the ATR and protocol after a connect or reconnect; the
// caller owns the card (sem held, or not yet shared).
func (c *Card) refresh() error {
	st, err := c.card.Status()
	if err != nil {
		return wrapScard("SCardStatus", err)
	}
	c.mu.Lock()
	c.atr = append([]byte(nil), st.Atr...)
	c.proto = Protocol(c.card.ActiveProtocol())
	c.mu.Unlock()
	return nil
}

// Reader returns the reader's name.
func (c *Card) Reader() string { return c.reader }

// ATR returns the card's answer to reset (as of the last connect or
// reconnect).
func (c *Card) ATR() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.atr...)
}

// Protocol returns the protocol in use, T0 or T1.
func (c *Card) Protocol() Protocol {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proto
}

// acquire waits until no PC/SC call runs on the card, or ctx ends.
func (c *Card) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("reader: waiting for the previous call on the card: %w", ctx.Err())
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		<-c.sem
		return ErrClosed
	}
	return nil
}

// run runs fn, one PC/SC call on the card, and releases the card when fn
// returns. The caller has acquired the card. If ctx ends first, run returns
// ctx's error at once and fn finishes in a goroutine the Card owns (PC/SC
// cannot abort a call in progress; a mute card holds it until it answers
// or leaves the reader).
func (c *Card) run(ctx context.Context, fn func() error) error {
	if ctx.Done() == nil {
		defer func() { <-c.sem }()
		return fn()
	}
	done := make(chan error, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := fn()
		<-c.sem
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done: // finished meanwhile: the result wins
			return err
		default:
		}
		return fmt.Errorf("reader: %w (the reader call goes on until the card answers)", ctx.Err())
	}
}

// Transmit sends the command APDU cmd (4 to MaxCommand bytes, short or
// extended) and returns the card's response, data and status word, as the
// card sent it (no GET RESPONSE or 6Cxx handling: that is the caller's
// business).
//
// When the card was reset by another program, or removed and reinserted,
// since the last command, Transmit reconnects and returns a *ResetError
// (errors.Is ErrCardReset) without sending cmd: the card's state is gone
// and its ATR (Card.ATR) may be new. When the card was removed and none is
// back, it returns an error matching ErrNoCard; Reconnect once a card is
// in the reader again.
//
// If ctx ends before the card answers, Transmit returns ctx's error; the
// command may still reach the card, and the next call on the Card waits
// until it is done.
func (c *Card) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if len(cmd) < 4 || len(cmd) > MaxCommand {
		return nil, fmt.Errorf("reader: command of %d bytes; an APDU has 4 to %d", len(cmd), MaxCommand)
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	var resp []byte
	err := c.run(ctx, func() error {
		if p := c.Protocol(); p != T0 && p != T1 {
			return fmt.Errorf("reader: no transmission protocol in use (%v)", p)
		}
		r, err := c.card.Transmit(cmd)
		// ebfe/scard receives into a new 65548-byte buffer: copy the
		// response out so that it does not pin 64 KiB.
		resp = bytes.Clone(r)
		return wrapScard("SCardTransmit", err)
	})
	if err == nil {
		return resp, nil
	}
	var pe *PCSCError
	if !errors.As(err, &pe) || (pe.Code != codeResetCard && pe.Code != codeRemovedCard) {
		return nil, err
	}
	c.log.Debug("reader: card reset or replaced; reconnecting", "reader", c.reader, "code", CodeName(pe.Code))
	if rerr := c.reconnect(ctx, scard.LeaveCard); rerr != nil {
		return nil, fmt.Errorf("reader: reconnecting after %s: %w", CodeName(pe.Code), rerr)
	}
	return nil, &ResetError{Replaced: pe.Code == codeRemovedCard, ATR: c.ATR(), Cause: err}
}

// Reconnect reconnects to the card in the reader (after the card was
// removed and reinserted, say), resetting it first when reset is true, and
// refreshes ATR and Protocol.
func (c *Card) Reconnect(ctx context.Context, reset bool) error {
	disp := scard.LeaveCard
	if reset {
		disp = scard.ResetCard
	}
	return c.reconnect(ctx, disp)
}

func (c *Card) reconnect(ctx context.Context, disp scard.Disposition) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	return c.run(ctx, func() error {
		if err := c.card.Reconnect(c.mode, scard.Protocol(c.want), disp); err != nil {
			return wrapScard("SCardReconnect", err)
		}
		return c.refresh()
	})
}

// Close disconnects from the card (leaving it as it is, or resetting it
// with ConnectOptions.ResetOnClose) and releases the PC/SC context. It
// waits for a call still running on the card (see Transmit). Close is
// idempotent.
func (c *Card) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.sem <- struct{}{} // wait for the call in progress
	c.wg.Wait()
	err := c.card.Disconnect(c.disp)
	rerr := c.sctx.Release()
	<-c.sem
	switch {
	case err != nil && !serviceGone(wrapScard("", err)):
		return wrapScard("SCardDisconnect", err)
	case rerr != nil && !serviceGone(wrapScard("", rerr)):
		return wrapScard("SCardReleaseContext", rerr)
	}
	return nil
}
