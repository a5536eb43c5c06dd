package vscardtest_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/vscard"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestHostReplugDropsBufferedInput: what the old device buffered of an
// unfinished message is gone with it; the new device parses from the next
// byte the client sends.
func TestHostReplugDropsBufferedInput(t *testing.T) {
	leaktest.Check(t)
	ctx := ctxT(t)
	events := make(chan vscardtest.Event, 64)
	h := vscardtest.NewHost(&vscardtest.HostConfig{OnEvent: func(e vscardtest.Event) { events <- e }})
	if err := h.Replug(); !errors.Is(err, vscardtest.ErrNoClient) {
		t.Fatalf("Replug with no client: %v, want ErrNoClient", err)
	}
	cn, hn := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- h.ServeConn(ctx, hn) }()
	defer func() { cn.Close(); <-done }()
	br := bufio.NewReader(cn)
	write := func(m vscard.Message) { cn.Write(m.Append(nil)) }
	go write(vscard.Message{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)})
	if m, err := vscard.ReadMessage(br, 0); err != nil || m.Type != vscard.MsgInit {
		t.Fatalf("handshake: %v %v", m.Type, err)
	}
	// Half of a ReaderAdd.
	half := vscard.Message{Type: vscard.MsgReaderAdd, ReaderID: 0, Payload: []byte("lost reader")}.Append(nil)[:14]
	if _, err := cn.Write(half); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, "the host to buffer the half message", func() bool {
		return h.State().Buffered == len(half)
	})
	go h.Replug()
	if m, err := vscard.ReadMessage(br, 0); err != nil || m.Type != vscard.MsgInit {
		t.Fatalf("after Replug: %v %v, want Init", m.Type, err)
	}
	go write(vscard.Message{Type: vscard.MsgReaderAdd, ReaderID: 0, Payload: []byte("new reader")})
	if m, err := vscard.ReadMessage(br, 0); err != nil || m.Type != vscard.MsgError {
		t.Fatalf("ReaderAdd answered %v %v, want Error", m.Type, err)
	}
	for {
		select {
		case e := <-events:
			if e.Kind == vscardtest.EventReaderAdded {
				if e.Name != "new reader" {
					t.Fatalf("reader %q, want %q", e.Name, "new reader")
				}
				return
			}
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}
