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
		log = slog.New(discard{})
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
				if !sleep(ctx, b.Next()) {
					return
				}
				continue
			}
		}
		c.sessions.Add(1)
		c.connected.Store(true)
		c.log.Info("vpcd: card connected", "addr", c.addr)
		start := time.Now()
		err := serve(ctx, conn, c.cfg.Handler, c.log)
		conn = nil
		c.connected.Store(false)
		if ctx.Err() != nil {
			return
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

// Close pulls the card out: it closes the connection (vpcd reports the card
// removed at its next poll), stops the goroutine, and waits for it. A
// Transmit in progress sees its context cancelled. Close is idempotent.
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
