// Package pcscsource is the bridge's card source for a card in a PC/SC
// reader on this host: it watches the readers (package reader), picks the
// one the user named (or the first that holds a card), connects to its card
// and presents both to the bridge, following insertions, removals, resets,
// readers coming and going, and pcscd stopping and starting.
package pcscsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vscardkit/vscardkit/internal/bridge"
	"github.com/vscardkit/vscardkit/reader"
)

// Config configures a Source.
type Config struct {
	// Selector picks the reader; the zero value takes the first reader
	// that holds a card.
	Selector reader.Selector
	// Shared opens the card in shared mode; by default the connection is
	// exclusive, since the guest owns the card's state (a verified PIN, a
	// selected application).
	Shared bool
	// Name, when set, is the reader name announced to the host instead of
	// the PC/SC reader's.
	Name string
	// RetryConnect is how long to wait before trying again to connect to a
	// card another program holds exclusively; 0 means 1 s.
	RetryConnect time.Duration
	// Logger receives what the source sees. nil discards.
	Logger *slog.Logger
	// Watch configures the reader watcher.
	Watch *reader.WatchOptions
}

// Source presents a PC/SC reader and its card. It implements bridge.Source.
type Source struct {
	cfg Config
	log *slog.Logger

	// The fields below belong to the goroutine in Run.
	chosen  string
	card    *reader.Card
	gen     uint64
	failed  bool   // the last connection attempt failed
	waiting string // what was last said about the reader waited for ("": nothing)

	reset chan *reader.ResetError // from Transmit: the card was reset or replaced
}

// New returns a source for cfg.
func New(cfg Config) *Source {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryConnect <= 0 {
		cfg.RetryConnect = time.Second
	}
	return &Source{cfg: cfg, log: cfg.Logger, reset: make(chan *reader.ResetError, 1)}
}

// Run watches the readers and reports the chosen reader and its card until
// ctx ends.
func (s *Source) Run(ctx context.Context, update func(bridge.State)) error {
	w := reader.Watch(ctx, s.cfg.Watch)
	defer w.Close()
	defer s.disconnect()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	update(bridge.State{})
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.Events():
			if !ok {
				if err := w.Err(); err != nil {
					return fmt.Errorf("pcscsource: %w", err)
				}
				return ctx.Err()
			}
			s.logEvent(ev)
			if ev.Kind == reader.ServiceDown {
				s.disconnect()
				s.chosen = ""
			}
		case re := <-s.reset:
			s.log.Info("the card was reset or replaced; announcing it again", "reader", s.chosen, "replaced", re.Replaced, "atr", fmt.Sprintf("%X", re.ATR))
			s.gen++
		case <-retry.C:
		}
		st := s.reconcile(ctx, w.Readers())
		if s.failed {
			retry.Reset(s.cfg.RetryConnect)
		}
		update(st)
	}
}

func (s *Source) logEvent(ev reader.Event) {
	switch ev.Kind {
	case reader.ServiceDown:
		s.log.Warn("PC/SC service unavailable; waiting for it", "err", ev.Err)
	case reader.ServiceUp:
		s.log.Info("PC/SC service reached")
	default:
		s.log.Debug("pcsc", "event", ev.String())
	}
}

// reconcile chooses the reader, connects to or drops its card, and returns
// the state to present.
func (s *Source) reconcile(ctx context.Context, readers []reader.Reader) bridge.State {
	s.failed = false
	var cur *reader.Reader
	for i := range readers {
		if readers[i].Name == s.chosen {
			cur = &readers[i]
		}
	}
	if cur == nil {
		// The reader we had is gone (or none was chosen): choose again.
		if s.chosen != "" {
			s.log.Info("reader gone", "reader", s.chosen)
		}
		s.disconnect()
		s.chosen = ""
		r, err := reader.Choose(readers, s.cfg.Selector)
		if err != nil {
			s.sayWaiting(err, readers)
			return bridge.State{}
		}
		s.waiting = ""
		s.chosen = r.Name
		cur = &r
		s.log.Info("using reader", "reader", r.Name)
	}
	if !cur.CardPresent || cur.Mute {
		if s.card != nil {
			// The bridge says "card removed" as it tells the guest.
			s.log.Debug("card out of the reader", "reader", s.chosen)
			s.disconnect()
		}
		return bridge.State{Reader: s.name()}
	}
	if s.card == nil {
		card, err := reader.Connect(ctx, s.chosen, &reader.ConnectOptions{Shared: s.cfg.Shared, Logger: s.log})
		if err != nil {
			s.failed = true
			hint := ""
			if errors.Is(err, reader.ErrSharing) {
				hint = "another program holds the card exclusively; close it, or run both with --shared"
			}
			s.log.Warn("cannot connect to the card; will retry", "reader", s.chosen, "err", err, "hint", hint)
			return bridge.State{Reader: s.name()}
		}
		s.card = card
		s.gen++
		s.log.Info("card connected", "reader", s.chosen, "atr", fmt.Sprintf("%X", card.ATR()), "protocol", card.Protocol())
		if atr, changed := ForGuest(card.ATR()); changed {
			s.log.Info("the card offers only T=1, which QEMU's usb-ccid does not tell the guest it supports; announcing T=0 first", "atr_to_guest", fmt.Sprintf("%X", atr))
		}
	}
	atr, _ := ForGuest(s.card.ATR())
	return bridge.State{Reader: s.name(), ATR: atr, Card: &pcscCard{c: s.card, src: s, shared: s.cfg.Shared}, Generation: s.gen}
}

// sayWaiting says, once for each set of readers, what the source waits for
// and which readers it sees: a reader that is not there, every reader
// empty, or a name that matches several.
func (s *Source) sayWaiting(err error, readers []reader.Reader) {
	var seen []string
	for i, r := range readers {
		state := "empty"
		if r.CardPresent {
			state = "card"
		}
		seen = append(seen, fmt.Sprintf("%d %q (%s)", i, r.Name, state))
	}
	list := strings.Join(seen, ", ")
	if list == "" {
		list = "none"
	}
	var amb *reader.AmbiguousError
	msg, hint := "waiting for "+s.cfg.Selector.String(), "vscclient-go readers lists them; --card pcsc:NAME takes a name, part of one, or an index"
	switch {
	case errors.As(err, &amb):
		msg = fmt.Sprintf("%q matches %d readers; waiting until it matches one", amb.Query, len(amb.Matches))
		hint = "give more of the name, or the reader's index: --card pcsc:0 (vscclient-go readers lists them)"
	case len(readers) == 0:
		hint = "plug the reader in (no PC/SC reader is present)"
	case s.cfg.Selector == (reader.Selector{}):
		hint = "insert a card in a reader, or name the reader: --card pcsc:NAME"
	}
	if key := msg + "|" + list; key != s.waiting {
		s.waiting = key
		s.log.Warn(msg, "readers", list, "hint", hint)
	}
}

func (s *Source) name() string {
	if s.cfg.Name != "" {
		return s.cfg.Name
	}
	return s.chosen
}

func (s *Source) disconnect() {
	if s.card != nil {
		s.card.Close()
		s.card = nil
		s.gen++
	}
}

// pcscCard is a connected card as the bridge sees it. reader.Card runs one
// PC/SC call at a time, so it needs no lock of its own.
type pcscCard struct {
	c      *reader.Card
	src    *Source
	shared bool
}

// Transmit sends cmd to the card. When the card was reset or replaced
// behind our back, the command is not sent: the error makes the bridge
// answer Error, and the source announces the card again.
func (p *pcscCard) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	resp, err := p.c.Transmit(ctx, cmd)
	var re *reader.ResetError
	if errors.As(err, &re) {
		select {
		case p.src.reset <- re:
		default:
		}
	}
	return resp, err
}

// Reset resets the card before it is announced to a host, so that a new
// guest session never inherits the state the last one left (a verified PIN
// above all). A card opened in shared mode is left alone: resetting it would
// disturb the other programs using it.
func (p *pcscCard) Reset(ctx context.Context) error {
	if p.shared {
		return nil
	}
	return p.c.Reconnect(ctx, true)
}
