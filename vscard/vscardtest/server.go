// Package vscardtest is a fake QEMU for VSCard clients. Host is the host
// role of the protocol as QEMU 7.2's ccid-card-passthru device implements
// it, reply for reply, on any net.Conn (Host.ServeConn); it reports what it
// sees as Events and plays the guest (Host.Transmit). Server puts a Host on
// a loopback TCP port, shaped like net/http/httptest:
//
//	srv := vscardtest.NewServer()
//	defer srv.Close()
//	// point the client at srv.Addr() ...
//	ev, err := srv.WaitEvent(ctx, vscardtest.EventCardInserted)
//	resp, err := srv.Transmit(ctx, selectPIV)
//
// Like QEMU's chardev (server=on,wait=off) the server serves one client at
// a time; a second connection waits until the first one ends. The host's
// state (reader, card, unread input) survives a reconnect.
package vscardtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// eventBuffer is how many events the server keeps for Events and WaitEvent
// before it drops the oldest.
const eventBuffer = 4096

// Server is a fake QEMU host listening on a TCP port.
type Server struct {
	// Listener is where the server accepts. NewUnstartedServer makes one on
	// 127.0.0.1 and a free port; replace it before Start to listen
	// elsewhere.
	Listener net.Listener

	// Config configures the Host; set its fields before Start. OnEvent is
	// chained: the server records every event and then calls it.
	Config HostConfig

	// TLS, when set before Start, makes the server speak TLS, as QEMU's
	// chardev with tls-creds does.
	TLS *tls.Config

	// Logger receives connection-level messages; nil discards.
	Logger *slog.Logger

	host *Host

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	conn    net.Conn // the connection being served, if any
	events  []Event
	dropped int
	notify  chan struct{} // closed and replaced when an event arrives
	closed  bool
}

// NewServer starts and returns a server on 127.0.0.1 and a free port.
func NewServer() *Server {
	s := NewUnstartedServer()
	s.Start()
	return s
}

// NewUnstartedServer returns a server that listens on 127.0.0.1 and a free
// port but does not accept until Start.
func NewUnstartedServer() *Server {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("vscardtest: failed to listen on a port: %v", err))
	}
	return &Server{Listener: l}
}

// Listen returns an unstarted server listening on addr ("host:port"; IPv6
// literals in brackets).
func Listen(network, addr string) (*Server, error) {
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("vscardtest: %w", err)
	}
	return &Server{Listener: l}, nil
}

// Start starts accepting connections.
func (s *Server) Start() {
	if s.host != nil {
		panic("vscardtest: Server already started")
	}
	cfg := s.Config
	user := cfg.OnEvent
	cfg.OnEvent = func(e Event) {
		s.record(e)
		if user != nil {
			user(e)
		}
	}
	s.host = NewHost(&cfg)
	s.notify = make(chan struct{})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.Listener.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.logger().Error("vscardtest: accept", "err", err)
			}
			return
		}
		if s.TLS != nil {
			tc := tls.Server(nc, s.TLS)
			hctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err := tc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				s.logger().Warn("vscardtest: TLS handshake failed", "remote", nc.RemoteAddr(), "err", err)
				nc.Close()
				continue
			}
			nc = tc
		}
		s.mu.Lock()
		s.conn = nc
		s.mu.Unlock()
		err = s.host.ServeConn(s.ctx, nc)
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
		if s.ctx.Err() != nil {
			return
		}
		s.logger().Debug("vscardtest: client left", "err", err)
	}
}

// Addr returns the address the server listens on, "127.0.0.1:port".
func (s *Server) Addr() string { return s.Listener.Addr().String() }

// Host returns the server's host, for State, Reset, Transmit and Flush.
func (s *Server) Host() *Host { return s.host }

// Transmit plays the guest sending cmd; see Host.Transmit.
func (s *Server) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if s.host == nil {
		return nil, ErrNotStarted
	}
	return s.host.Transmit(ctx, cmd)
}

// Flush sends Flush and waits for FlushComplete; see Host.Flush.
func (s *Server) Flush(ctx context.Context) error {
	if s.host == nil {
		return ErrNotStarted
	}
	return s.host.Flush(ctx)
}

// CloseClientConnections drops the client's connection, as a socket reset
// would; the server goes on accepting.
func (s *Server) CloseClientConnections() {
	s.mu.Lock()
	nc := s.conn
	s.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// Close stops accepting, drops the client and waits for every goroutine the
// server started.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
	s.Listener.Close()
	s.wg.Wait()
}

func (s *Server) record(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) >= eventBuffer {
		s.events = s.events[1:]
		s.dropped++
	}
	s.events = append(s.events, e)
	close(s.notify)
	s.notify = make(chan struct{})
}

// Events returns, and forgets, the events recorded so far.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.events
	s.events = nil
	return ev
}

// WaitEvent consumes recorded events, oldest first, until one of the given
// kinds arrives, and returns it. Events before it are dropped.
func (s *Server) WaitEvent(ctx context.Context, kinds ...EventKind) (Event, error) {
	for {
		s.mu.Lock()
		for len(s.events) > 0 {
			e := s.events[0]
			s.events = s.events[1:]
			for _, k := range kinds {
				if e.Kind == k {
					s.mu.Unlock()
					return e, nil
				}
			}
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("vscardtest: waiting for %v: %w", kinds, ctx.Err())
		}
	}
}

// ErrNotStarted is returned by methods that need a started server.
var ErrNotStarted = errors.New("vscardtest: server not started")
