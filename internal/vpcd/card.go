package vpcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures Dial. The zero value of every field but Handler is
// usable.
type Config struct {
	// Handler answers the driver's requests. Required.
	Handler Handler

	// Reconnect makes the card dial again whenever its connection fails or
	// ends (pcscd stopped or restarted, vpcd dropped the card), waiting
	// between attempts. With Reconnect, Dial does not wait for the first
	// connection. Without it, Dial fails when the first dial fails and the
	// card stops for good when its connection ends.
	Reconnect bool

	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts: it starts at MinBackoff, doubles after each attempt that
	// fails or ends quickly, and never exceeds MaxBackoff. Zero means 50 ms
	// and 2 s.
	MinBackoff, MaxBackoff time.Duration

	// Logger receives debug records (frame kinds and lengths, never APDU
	// contents) and connection changes. Nil means no logging.
	Logger *slog.Logger

	// DialFailed, when set, is called after each failed connection attempt
	// of a card with Reconnect, from the card's goroutine (it must not
	// block), with the error and how many attempts in a row have failed
	// since the card was dialed or last connected (1 for the first). A
	// program can say at once that the reader is not reachable, while the
	// card keeps trying quietly.
	DialFailed func(err error, failures int)
}

const (
	defaultMinBackoff = 50 * time.Millisecond
	defaultMaxBackoff = 2 * time.Second
	// stableSession is how long a session must last for the backoff to
	// start again from MinBackoff.
	stableSession = 2 * time.Second
)

// ErrNoHandler is returned by Dial when Config.Handler is nil.
var ErrNoHandler = errors.New("vpcd: no handler")

// Card is a virtual card connected to a vpcd reader slot. A goroutine owned
// by the Card serves the connection (and reconnects, if configured); Close
// stops it and waits for it.
type Card struct {
	addr string
	cfg  Config
	log  *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	err    error // why the goroutine stopped; set before done is closed

	connected atomic.Bool
	removing  atomic.Bool
	sessions  atomic.Int64
	closeOnce sync.Once
}

// Dial connects a card answered by cfg.Handler to the vpcd slot listening on
// addr ("host:port") and serves it in a goroutine until Close. ctx bounds
// only the first connection attempt (made only without cfg.Reconnect).
func Dial(ctx context.Context, addr string, cfg Config) (*Card, error) {
	if cfg.Handler == nil {
		return nil, ErrNoHandler
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = defaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Card{addr: addr, cfg: cfg, log: log, done: make(chan struct{})}
	var first net.Conn
	if !cfg.Reconnect {
		var err error
		first, err = dial(ctx, addr)
		if err != nil {
			return nil, err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(runCtx, first)
	return c, nil
}

func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("vpcd: connecting to the reader at %s: %w", addr, err)
	}
	return conn, nil
}

func (c *Card) run(ctx context.Context, conn net.Conn) {
	defer close(c.done)
	absentPolls := 0 // presence polls answered "no card" during Remove
	failures := 0    // failed dials since the last connection
	var b Backoff
	b.Min, b.Max = c.cfg.MinBackoff, c.cfg.MaxBackoff
	for {
		if conn == nil {
			var err error
			conn, err = dial(ctx, c.addr)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				c.log.Debug("vpcd: dial failed", "addr", c.addr, "err", err)
				if failures++; c.cfg.DialFailed != nil {
					c.cfg.DialFailed(err, failures)
				}
				if !sleep(ctx, b.Next()) {
					return
				}
				continue
			}
		}
		failures = 0
		c.sessions.Add(1)
		c.connected.Store(true)
		c.log.Info("vpcd: card connected", "addr", c.addr)
		start := time.Now()
		err := serve(ctx, conn, c.cfg.Handler, c.log, &c.removing)
		conn = nil
		c.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errRemoved) {
			// See Remove: a second connection, answered "no card" as
			// well, makes sure pcscd saw the card absent.
			if absentPolls++; absentPolls == 2 {
				return
			}
			continue
		}
		c.log.Info("vpcd: card disconnected", "addr", c.addr, "err", err)
		if !c.cfg.Reconnect {
			c.err = err
			return
		}
		if time.Since(start) >= stableSession {
			b.Reset()
		}
		if !sleep(ctx, b.Next()) {
			return
		}
	}
}

// sleep waits for d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Addr returns the address the card dials.
func (c *Card) Addr() string { return c.addr }

// Connected reports whether the card has a connection to vpcd right now. A
// connection is not yet a card in the reader: vpcd accepts it at its next
// presence poll.
func (c *Card) Connected() bool { return c.connected.Load() }

// Sessions returns how many connections the card has made so far.
func (c *Card) Sessions() int { return int(c.sessions.Load()) }

// Done is closed when the card's goroutine has stopped.
func (c *Card) Done() <-chan struct{} { return c.done }

// Wait waits for the card's goroutine to stop and returns why: nil after
// Close, otherwise the error that ended the only session of a card without
// Reconnect.
func (c *Card) Wait() error {
	<-c.done
	return c.err
}

// Remove takes the card out in a way pcscd is sure to see, then stops the
// card like Close. It answers the driver's next presence check (a get-ATR
// request) with an empty ATR, which makes vpcd drop the connection and
// report no card; then it connects once more and answers the presence check
// that accepts this second connection the same way. If the driver does not
// ask before ctx ends (a handler blocked in Transmit, a hung pcscd) or the
// card has no connection, Remove just closes. It takes one to two poll
// intervals (400 to 800 ms).
//
// Why two: vpcd checks presence not only in pcscd's polling loop but also
// inside pcscd's power-down of an unused card (400 ms after insertion or
// last use), whose result pcscd ignores. A card that leaves at that check
// and whose next connection is already waiting is accepted at the next poll
// as if it had never left: pcscd reports no removal. Close alone is worse:
// vpcd notices the closed connection only at its next request. The second
// "no card" answer can only come from a check after the first one, and
// pcscd records the absence at the first poll that follows a power-down, so
// after Remove pcscd has seen the card go.
func (c *Card) Remove(ctx context.Context) error {
	if c.connected.Load() {
		c.removing.Store(true)
		select {
		case <-c.done:
		case <-ctx.Done():
		}
	}
	return c.Close()
}

// Close stops the card: it closes the connection, stops the goroutine, and
// waits for it. A Transmit in progress sees its context cancelled. vpcd
// notices at its next request (see Remove for why that may not be reported
// as a removal). Close is idempotent.
func (c *Card) Close() error {
	c.closeOnce.Do(c.cancel)
	<-c.done
	return nil
}

// Backoff computes capped exponential waits. The zero value waits 50 ms,
// doubling up to 2 s.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next wait: Min the first time, then twice the previous
// one, never more than Max.
func (b *Backoff) Next() time.Duration {
	min, max := b.Min, b.Max
	if min <= 0 {
		min = defaultMinBackoff
	}
	if max < min {
		max = defaultMaxBackoff
		if max < min {
			max = min
		}
	}
	switch {
	case b.cur < min:
		b.cur = min
	case b.cur >= max/2:
		b.cur = max
	default:
		b.cur *= 2
	}
	return b.cur
}

// Reset makes the next wait Min again.
func (b *Backoff) Reset() { b.cur = 0 }
