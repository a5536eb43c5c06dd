package bridge_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/bridge"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// statusLog records a bridge's statuses.
type statusLog struct {
	mu   sync.Mutex
	all  []bridge.Status
	note chan struct{}
}

func newStatusLog() *statusLog { return &statusLog{note: make(chan struct{}, 1)} }

func (l *statusLog) record(s bridge.Status) {
	l.mu.Lock()
	l.all = append(l.all, s)
	l.mu.Unlock()
	select {
	case l.note <- struct{}{}:
	default:
	}
}

// wait waits until a recorded status satisfies cond.
func (l *statusLog) wait(t *testing.T, what string, cond func(bridge.Status) bool) bridge.Status {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		for _, s := range l.all {
			if cond(s) {
				l.mu.Unlock()
				return s
			}
		}
		l.mu.Unlock()
		select {
		case <-l.note:
		case <-deadline:
			t.Fatalf("no status where %s", what)
		}
	}
}

func (l *statusLog) reset() {
	l.mu.Lock()
	l.all = nil
	l.mu.Unlock()
}

// A bridge with no fixed host waits for SetTarget without trying anything,
// follows the target from host to host (leaving the old one as a client
// leaving cleanly does), and leaves when the target goes away.
func TestSetTarget(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	a, b2 := vscardtest.NewServer(), vscardtest.NewServer()
	defer a.Close()
	defer b2.Close()
	log := newStatusLog()
	br, err := bridge.New(bridge.Config{Source: bridge.NewStatic("R", atr, newTableCard()), OnStatus: log.record, ReplyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(rctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(200 * time.Millisecond)
	if st := br.Status(); st.Target != nil || st.Attempts != 0 || st.Sessions != 0 {
		t.Fatalf("status with no target: %+v", st)
	}
	target := func(srv *vscardtest.Server) *bridge.Target {
		return &bridge.Target{Network: "tcp", Address: srv.Addr()}
	}
	br.SetTarget(target(a))
	if _, err := a.WaitEvent(ctx, vscardtest.EventCardInserted); err != nil {
		t.Fatal(err)
	}
	log.wait(t, "the card is announced on a", func(s bridge.Status) bool {
		return s.Connected && s.Card && s.Target != nil && s.Target.Address == a.Addr()
	})
	br.SetTarget(target(a)) // the same: nothing happens
	br.SetTarget(target(b2))
	if _, err := a.WaitEvent(ctx, vscardtest.EventReaderRemoved); err != nil {
		t.Fatalf("the old host was not left: %v", err)
	}
	if _, err := b2.WaitEvent(ctx, vscardtest.EventCardInserted); err != nil {
		t.Fatal(err)
	}
	log.reset()
	br.SetTarget(nil)
	if _, err := b2.WaitEvent(ctx, vscardtest.EventReaderRemoved); err != nil {
		t.Fatalf("the host was not left when the target went: %v", err)
	}
	log.wait(t, "no target and not connected", func(s bridge.Status) bool { return s.Target == nil && !s.Connected })
	sessions := br.Status().Sessions
	time.Sleep(300 * time.Millisecond)
	if st := br.Status(); st.Sessions != sessions || st.Attempts != 0 {
		t.Fatalf("with no target the bridge went on trying: %+v", st)
	}
}

// A target that speaks TLS, for a bridge given no TLS configuration, is an
// error the status says, not a connection.
func TestTargetNeedsTLS(t *testing.T) {
	leaktest.Check(t)
	srv := vscardtest.NewServer()
	defer srv.Close()
	log := newStatusLog()
	br, err := bridge.New(bridge.Config{Source: bridge.NewStatic("R", atr, newTableCard()), OnStatus: log.record})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	defer func() { cancel(); <-done }()
	br.SetTarget(&bridge.Target{Network: "tcp", Address: srv.Addr(), TLS: true})
	log.wait(t, "ErrNeedTLS", func(s bridge.Status) bool { return errors.Is(s.Err, bridge.ErrNeedTLS) })
	if st := srv.Host().State(); st.Connected {
		t.Fatal("the bridge connected in plain TCP to a TLS target")
	}
}

// MaxBackoff below MinMaxBackoff is raised: a host that is not there is not
// hammered.
func TestMaxBackoffFloor(t *testing.T) {
	leaktest.Check(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	br, err := bridge.New(bridge.Config{Address: addr, Source: bridge.NewStatic("R", atr, newTableCard()), MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	br.Run(ctx)
	// 1, 2, 4 ... 64 ms, then every 100 ms: about 14 attempts in a second.
	if n := br.Status().Attempts; n > 25 {
		t.Fatalf("%d attempts in a second with MaxBackoff 1ms", n)
	}
}
