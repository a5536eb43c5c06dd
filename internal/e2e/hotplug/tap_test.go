package hotplug_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/vscard"
)

// tapped is one message the client sent, as the tap saw it on the wire.
type tapped struct {
	Type     vscard.MsgType
	ReaderID vscard.ReaderID
	At       time.Time
}

// tap is a TCP relay between the client's connection (here QEMU's guestfwd
// chardev, which carries the guest's vscclient-go) and the fake host. It
// decodes what the client sends, records each message's type in order and
// passes it on unchanged; the host's side passes through untouched. The
// fake host's events cannot show the order of CardRemove and ReaderRemove
// on the wire (it reports a card removed for a ReaderRemove with a card
// in), the tap does.
type tap struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	msgs    []tapped
	conns   []net.Conn
	err     error         // why a relay stopped, if not because it was closed
	changed chan struct{} // closed and replaced when msgs or err change
	closed  bool

	wg sync.WaitGroup
}

// startTap starts a tap on a free loopback port that relays to upstream;
// it stops when t ends.
func startTap(t testing.TB, upstream string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{ln: ln, upstream: upstream, changed: make(chan struct{})}
	tp.wg.Add(1)
	go tp.accept()
	t.Cleanup(tp.close)
	return tp
}

// port returns the port the tap listens on.
func (tp *tap) port() int { return tp.ln.Addr().(*net.TCPAddr).Port }

func (tp *tap) accept() {
	defer tp.wg.Done()
	for {
		c, err := tp.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", tp.upstream)
		if err != nil {
			c.Close()
			tp.fail(fmt.Errorf("tap: dialing the host: %w", err))
			continue
		}
		tp.mu.Lock()
		if tp.closed {
			tp.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		tp.conns = append(tp.conns, c, up)
		tp.mu.Unlock()
		tp.wg.Add(2)
		go func() { // host -> client, untouched
			defer tp.wg.Done()
			io.Copy(c, up)
			c.Close()
		}()
		go func() { // client -> host, decoded and recorded
			defer tp.wg.Done()
			defer up.Close()
			r := bufio.NewReader(c)
			for {
				m, err := vscard.ReadMessage(r, 0)
				if err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
						tp.fail(fmt.Errorf("tap: reading the client: %w", err))
					}
					return
				}
				tp.record(tapped{Type: m.Type, ReaderID: m.ReaderID, At: time.Now()})
				if err := vscard.WriteMessage(up, m); err != nil {
					return
				}
			}
		}()
	}
}

func (tp *tap) record(m tapped) {
	tp.mu.Lock()
	tp.msgs = append(tp.msgs, m)
	close(tp.changed)
	tp.changed = make(chan struct{})
	tp.mu.Unlock()
}

func (tp *tap) fail(err error) {
	tp.mu.Lock()
	if tp.err == nil && !tp.closed {
		tp.err = err
		close(tp.changed)
		tp.changed = make(chan struct{})
	}
	tp.mu.Unlock()
}

// close stops the tap and waits for its goroutines.
func (tp *tap) close() {
	tp.mu.Lock()
	tp.closed = true
	conns := tp.conns
	tp.mu.Unlock()
	tp.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	tp.wg.Wait()
}

// mark returns the number of messages recorded so far, for since.
func (tp *tap) mark() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return len(tp.msgs)
}

// since returns the messages recorded after mark.
func (tp *tap) since(mark int) []tapped {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]tapped(nil), tp.msgs[mark:]...)
}

// waitFor waits until a message of type typ has been recorded after mark
// and returns the messages from mark up to and including it.
func (tp *tap) waitFor(ctx context.Context, mark int, typ vscard.MsgType) ([]tapped, error) {
	for {
		tp.mu.Lock()
		for i := mark; i < len(tp.msgs); i++ {
			if tp.msgs[i].Type == typ {
				out := append([]tapped(nil), tp.msgs[mark:i+1]...)
				tp.mu.Unlock()
				return out, nil
			}
		}
		if tp.err != nil {
			err := tp.err
			tp.mu.Unlock()
			return nil, err
		}
		ch := tp.changed
		tp.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the client to send %v: %w (it sent %s)", typ, ctx.Err(), types(tp.since(mark)))
		}
	}
}

// types lists the messages' types, for messages.
func types(ms []tapped) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Type.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}
