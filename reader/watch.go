package reader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// EventKind says what changed.
type EventKind int

// The kinds of Event.
const (
	// ServiceUp: the watcher reached the PC/SC service (first event when
	// pcscd runs, and again after it comes back).
	ServiceUp EventKind = iota + 1
	// ServiceDown: the PC/SC service is not there (first event when pcscd
	// does not run) or went away; the removals of every card and reader
	// precede it. Err says why.
	ServiceDown
	// ReaderAdded: a reader appeared (or was there when watching began).
	ReaderAdded
	// ReaderRemoved: a reader went away; a CardRemoved for its card
	// precedes it.
	ReaderRemoved
	// CardInserted: a card is in the reader; ATR is its answer to reset.
	CardInserted
	// CardRemoved: the card left the reader (or became mute, or its
	// reader went away).
	CardRemoved
)

var kindNames = [...]string{"", "service up", "service down", "reader added", "reader removed", "card inserted", "card removed"}

// String returns the kind in words ("card inserted").
func (k EventKind) String() string {
	if k <= 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
	return kindNames[k]
}

// Event is a change a Watcher saw.
type Event struct {
	Kind   EventKind
	Reader string // reader and card events
	ATR    []byte // CardInserted
	Err    error  // ServiceDown
}

// String describes the event for logs.
func (e Event) String() string {
	switch e.Kind {
	case ServiceUp:
		return e.Kind.String()
	case ServiceDown:
		return fmt.Sprintf("%v: %v", e.Kind, e.Err)
	case CardInserted:
		return fmt.Sprintf("%v: %q ATR % X", e.Kind, e.Reader, e.ATR)
	}
	return fmt.Sprintf("%v: %q", e.Kind, e.Reader)
}

// WatchOptions configures Watch. A nil *WatchOptions is the zero value.
type WatchOptions struct {
	// MinBackoff and MaxBackoff bound the wait between attempts to reach
	// the PC/SC service while it is down: it doubles from MinBackoff up to
	// MaxBackoff. Zero means 100 ms and 2 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives debug records. Nil means none.
	Logger *slog.Logger
}

// Watcher reports readers and cards coming and going, and the PC/SC
// service stopping and starting, as events. It waits in
// SCardGetStatusChange with no timeout (including the PnP pseudo-reader
// that signals reader changes), so it uses no CPU while nothing happens;
// while the service is down it retries with capped exponential backoff.
// A goroutine owned by the Watcher does the work; Close stops it and waits.
type Watcher struct {
	events chan Event
	stop   chan struct{}
	done   chan struct{}
	log    *slog.Logger
	min    time.Duration
	max    time.Duration

	stopOnce  sync.Once
	stopAfter func() bool

	mu      sync.Mutex
	sc      statusContext // the context in use, for cancel
	known   map[string]*watched
	order   []string // reader names in PC/SC's order
	service serviceState
	err     error // why the watcher stopped on its own
}

type serviceState int

const (
	serviceUnknown serviceState = iota
	serviceUp
	serviceDown
)

// watched is what the watcher last saw of a reader.
type watched struct {
	state   uint32 // last event state, CHANGED cleared (counter included)
	present bool
	atr     []byte
	flags   uint32 // last event state as reported
}

// Watch starts watching. Events arrive on Events, in order, starting with
// ServiceUp (then a ReaderAdded for every reader and a CardInserted for
// every card present) or ServiceDown. The watcher stops when ctx ends or
// Close is called; Events is then closed.
func Watch(ctx context.Context, opts *WatchOptions) *Watcher {
	if opts == nil {
		opts = &WatchOptions{}
	}
	w := &Watcher{
		events: make(chan Event, 64),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		log:    opts.Logger,
		min:    opts.MinBackoff,
		max:    opts.MaxBackoff,
		known:  map[string]*watched{},
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.min <= 0 {
		w.min = 100 * time.Millisecond
	}
	if w.max <= 0 {
		w.max = 2 * time.Second
	}
	if w.max < w.min {
		w.max = w.min
	}
	w.stopAfter = context.AfterFunc(ctx, w.shutdown)
	go w.run()
	return w
}

// Events returns the channel the events arrive on. It is closed when the
// watcher stops. A consumer that falls behind holds the watcher back (the
// channel buffers 64 events); the watcher reads the state again when it
// catches up, so no change is lost, only intermediate states.
func (w *Watcher) Events() <-chan Event { return w.events }

// Done is closed when the watcher has stopped.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Err returns why the watcher stopped on its own (nil after Close or the
// end of ctx, or while it runs).
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Readers returns the readers as the watcher last saw them, in PC/SC's
// order (empty while the service is down).
func (w *Watcher) Readers() []Reader {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Reader, 0, len(w.order))
	for _, n := range w.order {
		k := w.known[n]
		out = append(out, readerFromState(readerState{name: n, event: k.flags, atr: k.atr}))
	}
	return out
}

// Close stops the watcher and waits for it. It is idempotent.
func (w *Watcher) Close() error {
	w.stopAfter()
	w.shutdown()
	return nil
}

// shutdown asks the goroutine to stop and cancels its blocking call until
// it has stopped. (SCardCancel only reaches a call already waiting; the
// goroutine may be about to enter one, hence the repeats, which end as soon
// as it is gone.)
func (w *Watcher) shutdown() {
	w.stopOnce.Do(func() { close(w.stop) })
	for {
		w.mu.Lock()
		if w.sc != nil {
			w.sc.cancel()
		}
		w.mu.Unlock()
		select {
		case <-w.done:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (w *Watcher) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// sleep waits d or until the watcher is stopped; it reports whether d
// passed.
func (w *Watcher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop:
		return false
	}
}

func (w *Watcher) emit(e Event) {
	w.log.Debug("reader: event", "event", e.String())
	select {
	case w.events <- e:
	case <-w.stop:
	}
}

func (w *Watcher) run() {
	defer close(w.done)
	defer close(w.events)
	backoff := w.min
	for !w.stopped() {
		sc, err := newStatusContext()
		if err == nil {
			w.mu.Lock()
			w.sc = sc
			w.mu.Unlock()
			var reached bool
			reached, err = w.session(sc)
			w.mu.Lock()
			w.sc = nil
			w.mu.Unlock()
			sc.release()
			if reached {
				backoff = w.min
			}
		}
		if w.stopped() {
			return
		}
		if errors.Is(err, ErrUnsupported) {
			w.setDown(err)
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		w.setDown(err)
		w.log.Debug("reader: PC/SC service unavailable", "err", err, "retry", backoff)
		if !w.sleep(backoff) {
			return
		}
		backoff = min(backoff*2, w.max)
	}
}

// session watches on an established context until the service goes away
// (it returns the error that showed it) or the watcher stops (nil). reached
// reports whether the service answered at all.
func (w *Watcher) session(sc statusContext) (reached bool, err error) {
	idle := 0 // consecutive returns that reported no change
	for {
		// pcsc-lite returns only when something changed; should it ever
		// return without a change again and again, pace the loop rather
		// than spin.
		if idle > 2 && !w.sleep(w.min) {
			return reached, nil
		}
		names, err := sc.listReaders()
		if err != nil {
			return reached, err
		}
		if !reached {
			reached = true
			w.setUp()
		}
		w.syncReaders(names)
		if len(names) > maxStatusReaders-1 {
			w.log.Warn("reader: watching only the first readers", "readers", len(names), "watched", maxStatusReaders-1)
			names = names[:maxStatusReaders-1]
		}
		states := make([]readerState, 0, len(names)+1)
		states = append(states, readerState{name: pnpReader})
		w.mu.Lock()
		for _, n := range names {
			states = append(states, readerState{name: n, current: w.known[n].state})
		}
		w.mu.Unlock()
		if w.stopped() {
			return reached, nil
		}
		err = sc.getStatusChange(states, infinite)
		if w.stopped() {
			return reached, nil
		}
		if err != nil {
			var pe *PCSCError
			if errors.As(err, &pe) {
				switch pe.Code {
				case codeCancelled, codeTimeout, codeUnknownReader:
					idle++
					continue // list again
				}
			}
			return reached, err
		}
		idle++
		for _, st := range states {
			if st.event&stateChanged != 0 {
				idle = 0
			}
		}
		for _, st := range states[1:] {
			w.apply(st)
		}
	}
}

func (w *Watcher) setUp() {
	w.mu.Lock()
	was := w.service
	w.service = serviceUp
	w.mu.Unlock()
	if was != serviceUp {
		w.emit(Event{Kind: ServiceUp})
	}
}

// setDown reports every card and reader gone, then the service.
func (w *Watcher) setDown(err error) {
	w.syncReaders(nil)
	w.mu.Lock()
	was := w.service
	w.service = serviceDown
	w.mu.Unlock()
	if was != serviceDown {
		if err == nil {
			err = ErrNoService
		}
		w.emit(Event{Kind: ServiceDown, Err: err})
	}
}

// syncReaders makes the known readers the ones in names, reporting the
// readers (and cards) gone and the readers new.
func (w *Watcher) syncReaders(names []string) {
	var events []Event
	w.mu.Lock()
	for _, n := range w.order {
		if slices.Contains(names, n) {
			continue
		}
		if w.known[n].present {
			events = append(events, Event{Kind: CardRemoved, Reader: n})
		}
		events = append(events, Event{Kind: ReaderRemoved, Reader: n})
		delete(w.known, n)
	}
	for _, n := range names {
		if _, ok := w.known[n]; !ok {
			w.known[n] = &watched{state: stateUnaware}
			events = append(events, Event{Kind: ReaderAdded, Reader: n})
		}
	}
	w.order = slices.Clone(names)
	w.mu.Unlock()
	for _, e := range events {
		w.emit(e)
	}
}

// apply records a reader's new state and reports its card coming or going.
// pcsc-lite counts card insertions and removals in the upper 16 bits of the
// event state, so a card pulled and put back between two looks still shows
// as a removal and an insertion.
func (w *Watcher) apply(st readerState) {
	w.mu.Lock()
	k, ok := w.known[st.name]
	if !ok {
		w.mu.Unlock()
		return
	}
	present := st.event&statePresent != 0 && st.event&(stateMute|stateUnknown|stateUnavailable) == 0
	counterChanged := k.state != stateUnaware && k.state>>16 != st.event>>16
	removed := k.present && (!present || counterChanged)
	inserted := present && (!k.present || counterChanged)
	k.state = st.event &^ stateChanged
	k.flags = st.event
	k.present = present
	if present {
		k.atr = append([]byte(nil), st.atr...)
	} else {
		k.atr = nil
	}
	atr := k.atr
	w.mu.Unlock()
	if removed {
		w.emit(Event{Kind: CardRemoved, Reader: st.name})
	}
	if inserted {
		w.emit(Event{Kind: CardInserted, Reader: st.name, ATR: append([]byte(nil), atr...)})
	}
}
