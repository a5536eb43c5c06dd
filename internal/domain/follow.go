package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/digitalocean/go-libvirt"
)

// Following domains.
//
// A Watcher owns one connection to a libvirt daemon and one subscription to
// its domain lifecycle events (all domains), and runs one goroutine that
// reads them. Each Follower is a domain name and a report function, called
// from the Follower's own goroutine so that a slow consumer delays nobody
// else. On every lifecycle event for a followed name the Watcher looks the
// domain up again (state, live XML) and reports to its followers what
// changed; between events nothing runs. When the connection breaks the
// Watcher reports Unreachable, dials again after a capped backoff, and looks
// every followed domain up again once connected.

// Status is what a Follower reports: the followed domain's state and, when
// it runs, where its smartcard is.
type Status struct {
	// Name is the followed domain's name.
	Name string
	// State is Running, Stopped, NotFound or Unreachable.
	State State
	// Domain is the domain as last looked up, for Running and Stopped:
	// Domain.Target is where the client connects, or Domain.Err why it
	// cannot. Nil for NotFound and Unreachable.
	Domain *Domain
	// Err is a *NotFoundError for NotFound and why libvirt cannot be
	// reached for Unreachable (a *UnreachableError, or libvirt's refusal
	// to open the URI).
	Err error
	// Cause is the lifecycle event that made the Watcher look, such as
	// "started (booted)" or "stopped (destroyed)"; "" for the first
	// report of a Follower and for those after a reconnection.
	Cause string
}

// Watcher follows domains of one libvirt daemon through its lifecycle
// events, on one connection that it re-establishes when it breaks. Create it
// with NewWatcher, add domains with Follow, and Close it.
type Watcher struct {
	uri *connURI
	log *slog.Logger
	min time.Duration
	max time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	wake   chan struct{} // a new Follower waits for its first report

	mu        sync.Mutex
	followers map[*Follower]struct{}
	closed    bool
	lastErr   error // why libvirt is unreachable, while it is; guarded by mu
}

// NewWatcher starts following the libvirt daemon of uri ("" means
// DefaultURI; see Dial for the forms). It returns an error only for a URI
// it cannot use (wrapping ErrInvalidURI); an unreachable daemon is reported
// to each Follower and retried.
func NewWatcher(uri string, opts *Options) (*Watcher, error) {
	u, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		uri:       u,
		log:       opts.logger().With("uri", u.raw),
		min:       100 * time.Millisecond,
		max:       5 * time.Second,
		done:      make(chan struct{}),
		wake:      make(chan struct{}, 1),
		followers: map[*Follower]struct{}{},
	}
	if opts != nil && opts.MinBackoff > 0 {
		w.min = opts.MinBackoff
	}
	if opts != nil && opts.MaxBackoff > 0 {
		w.max = opts.MaxBackoff
	}
	w.max = max(w.max, w.min)
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.run()
	return w, nil
}

// Follow starts following the domain called name: report is called with its
// first Status as soon as the Watcher knows it, then with every change
// (start, stop, a new target, undefined, libvirt unreachable and back).
// Calls come one at a time from the Follower's goroutine, in order; a
// consumer more than 32 reports behind loses the oldest. report must not
// call Stop or Close. After Close, Follow returns a Follower that reports
// nothing.
func (w *Watcher) Follow(name string, report func(Status)) *Follower {
	f := &Follower{
		w:      w,
		name:   name,
		report: report,
		signal: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		fresh:  true,
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		close(f.done)
		return f
	}
	w.followers[f] = struct{}{}
	w.mu.Unlock()
	go f.deliver()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return f
}

// Close stops the Watcher and its Followers, closes the connection, and
// waits for every goroutine it started. It is safe to call more than once.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closed = true
	fs := make([]*Follower, 0, len(w.followers))
	for f := range w.followers {
		fs = append(fs, f)
	}
	w.mu.Unlock()
	w.cancel()
	<-w.done
	for _, f := range fs {
		f.Stop()
	}
	return nil
}

// Follow follows the domain called name on the libvirt of uri until ctx
// ends, calling report as Watcher.Follow does, and returns ctx's error (or,
// at once, an error wrapping ErrInvalidURI). It is NewWatcher, Follow and
// Close in one call; to follow several domains on one connection, use a
// Watcher.
func Follow(ctx context.Context, uri, name string, opts *Options, report func(Status)) error {
	w, err := NewWatcher(uri, opts)
	if err != nil {
		return err
	}
	w.Follow(name, report)
	<-ctx.Done()
	w.Close()
	return ctx.Err()
}

// run is the Watcher's goroutine: connect, serve the connection until it
// breaks, wait, again.
func (w *Watcher) run() {
	defer close(w.done)
	backoff := w.min
	for {
		c, err := dialConn(w.ctx, w.uri, w.log)
		if err == nil {
			backoff = w.min
			err = w.serve(c)
			c.Close()
		}
		if w.ctx.Err() != nil {
			return
		}
		w.unreachable(err)
		w.log.Debug("libvirt unreachable; retrying", "in", backoff, "err", err)
		if !w.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, w.max)
	}
}

// sleep waits d, reporting Unreachable to new Followers meanwhile. It
// returns false when the Watcher closes.
func (w *Watcher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return false
		case <-t.C:
			return true
		case <-w.wake:
			w.mu.Lock()
			err := w.lastErr
			w.mu.Unlock()
			for _, f := range w.pending() {
				w.update(f, Status{Name: f.name, State: Unreachable, Err: err})
			}
		}
	}
}

// unreachable reports Unreachable to every Follower (once per outage).
func (w *Watcher) unreachable(err error) {
	w.mu.Lock()
	first := w.lastErr == nil
	w.lastErr = err
	fs := w.snapshot()
	for _, f := range fs {
		f.fresh = false
	}
	w.mu.Unlock()
	if first {
		w.log.Info("libvirt unreachable", "err", err)
	}
	for _, f := range fs {
		w.update(f, Status{Name: f.name, State: Unreachable, Err: err})
	}
}

// snapshot returns the Followers; w.mu must be held.
func (w *Watcher) snapshot() []*Follower {
	fs := make([]*Follower, 0, len(w.followers))
	for f := range w.followers {
		fs = append(fs, f)
	}
	return fs
}

// pending returns the Followers that have had no report yet, marking them.
func (w *Watcher) pending() []*Follower {
	w.mu.Lock()
	defer w.mu.Unlock()
	var fs []*Follower
	for f := range w.followers {
		if f.fresh {
			f.fresh = false
			fs = append(fs, f)
		}
	}
	return fs
}

// serve subscribes to c's lifecycle events, looks every Follower's domain
// up, then looks a domain up again on each event for it, until the
// connection breaks (a *UnreachableError) or the Watcher closes.
func (w *Watcher) serve(c *Conn) error {
	ctx, cancel := context.WithCancel(w.ctx)
	var events <-chan libvirt.DomainEventLifecycleMsg
	err := c.call(ctx, func() error {
		var err error
		events, err = c.l.LifecycleEvents(ctx)
		return err
	})
	if err != nil {
		cancel()
		return fmt.Errorf("domain: subscribing to lifecycle events: %w", c.brokenErr(err))
	}
	defer func() {
		// go-libvirt's event goroutine sends until it sees ctx end
		// or the connection break, then closes events.
		cancel()
		c.nc.Close()
		for range events {
		}
	}()

	w.mu.Lock()
	wasDown := w.lastErr != nil
	w.lastErr = nil
	fs := w.snapshot()
	for _, f := range fs {
		f.fresh = false
	}
	w.mu.Unlock()
	if wasDown {
		w.log.Info("libvirt reachable again")
	}
	for _, f := range fs {
		if err := w.refresh(ctx, c, f, ""); err != nil {
			return err
		}
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return w.lost(c)
			}
			cause := eventName(ev)
			w.log.Debug("lifecycle event", "domain", ev.Dom.Name, "event", cause)
			w.mu.Lock()
			var match []*Follower
			for f := range w.followers {
				if f.name == ev.Dom.Name {
					match = append(match, f)
				}
			}
			w.mu.Unlock()
			for _, f := range match {
				if err := w.refresh(ctx, c, f, cause); err != nil {
					return err
				}
			}
		case <-w.wake:
			for _, f := range w.pending() {
				if err := w.refresh(ctx, c, f, ""); err != nil {
					return err
				}
			}
		case <-c.disconnected():
			return w.lost(c)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// lost is the error of a connection that broke (with ssh's last words,
// if any).
func (w *Watcher) lost(c *Conn) error {
	err := errors.New("the connection to libvirt broke")
	if cc, ok := c.nc.(*cmdConn); ok && cc.Stderr() != "" {
		err = fmt.Errorf("ssh said %q: %w", cc.Stderr(), err)
	}
	return &UnreachableError{URI: w.uri.raw, Err: err}
}

// refresh looks f's domain up and reports its Status if it changed. It
// returns an error only when the connection is unusable.
func (w *Watcher) refresh(ctx context.Context, c *Conn, f *Follower, cause string) error {
	d, err := c.Lookup(ctx, f.name)
	st := Status{Name: f.name, Cause: cause}
	var nf *NotFoundError
	switch {
	case err == nil:
		st.State, st.Domain = d.State, d
	case errors.As(err, &nf):
		st.State, st.Err = NotFound, err
	case errors.As(err, new(*UnreachableError)), ctx.Err() != nil:
		return err
	default:
		// libvirt answered with an error: keep what was reported,
		// try again at the next event.
		w.log.Warn("looking up domain", "domain", f.name, "err", err)
		return nil
	}
	w.update(f, st)
	return nil
}

// update queues st for f unless it says what f last reported.
func (w *Watcher) update(f *Follower, st Status) {
	if f.hasLast && sameStatus(f.last, st) {
		return
	}
	f.last, f.hasLast = st, true
	attrs := []any{"domain", st.Name, "state", st.State.String()}
	if st.Domain != nil {
		if st.Domain.Err != nil {
			attrs = append(attrs, "err", st.Domain.Err)
		} else {
			attrs = append(attrs, "target", st.Domain.Target.String())
		}
	}
	if st.Cause != "" {
		attrs = append(attrs, "cause", st.Cause)
	}
	if st.State != Unreachable {
		w.log.Info("domain state", attrs...)
	}
	f.push(st)
}

// sameStatus reports whether b tells a consumer nothing a does not.
func sameStatus(a, b Status) bool {
	if a.State != b.State {
		return false
	}
	if (a.Domain == nil) != (b.Domain == nil) {
		return false
	}
	if a.Domain == nil {
		return true
	}
	da, db := a.Domain, b.Domain
	return da.ID == db.ID && da.Target == db.Target && errString(da.Err) == errString(db.Err)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Follower is one followed domain of a Watcher.
type Follower struct {
	w      *Watcher
	name   string
	report func(Status)

	// Owned by the Watcher's goroutine (fresh also by Follow, under
	// w.mu).
	fresh   bool
	last    Status
	hasLast bool

	mu     sync.Mutex
	queue  []Status
	signal chan struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// maxQueue bounds the reports a Follower keeps for a slow consumer.
const maxQueue = 32

func (f *Follower) push(st Status) {
	f.mu.Lock()
	f.queue = append(f.queue, st)
	if len(f.queue) > maxQueue {
		f.queue = f.queue[len(f.queue)-maxQueue:]
	}
	f.mu.Unlock()
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

// deliver is the Follower's goroutine: it calls report for each queued
// Status.
func (f *Follower) deliver() {
	defer close(f.done)
	for {
		select {
		case <-f.stop:
			return
		case <-f.signal:
		}
		for {
			f.mu.Lock()
			if len(f.queue) == 0 {
				f.mu.Unlock()
				break
			}
			st := f.queue[0]
			f.queue = f.queue[1:]
			f.mu.Unlock()
			select {
			case <-f.stop:
				return
			default:
			}
			f.report(st)
		}
	}
}

// Stop stops the Follower: report is not called again once Stop returns.
// It waits for a report in progress. The Watcher goes on for the others.
func (f *Follower) Stop() {
	f.once.Do(func() {
		f.w.mu.Lock()
		delete(f.w.followers, f)
		f.w.mu.Unlock()
		close(f.stop)
	})
	<-f.done
}

// eventName describes a lifecycle event as virsh event does.
func eventName(ev libvirt.DomainEventLifecycleMsg) string {
	names := [...]string{"defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown", "pmsuspended", "crashed"}
	details := map[libvirt.DomainEventType][]string{
		libvirt.DomainEventDefined:   {"added", "updated", "renamed", "from snapshot"},
		libvirt.DomainEventUndefined: {"removed", "renamed"},
		libvirt.DomainEventStarted:   {"booted", "migrated", "restored", "from snapshot", "wakeup", "recreated"},
		libvirt.DomainEventSuspended: {"paused", "migrated", "ioerror", "watchdog", "restored", "from snapshot", "api error", "postcopy", "postcopy failed"},
		libvirt.DomainEventResumed:   {"unpaused", "migrated", "from snapshot", "postcopy", "postcopy failed"},
		libvirt.DomainEventStopped:   {"shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot"},
		libvirt.DomainEventShutdown:  {"finished", "guest", "host"},
	}
	if ev.Event < 0 || int(ev.Event) >= len(names) {
		return fmt.Sprintf("event %d", ev.Event)
	}
	s := names[ev.Event]
	if d := details[libvirt.DomainEventType(ev.Event)]; ev.Detail >= 0 && int(ev.Detail) < len(d) {
		s += " (" + d[ev.Detail] + ")"
	}
	return s
}
