// Package control is the control socket of a running vscclient-go: a unix
// socket on which `vscclient-go rearm` re-arms a domain's PIN guard and
// `vscclient-go status` asks what each domain's card is doing. It replaces
// a signal where there is none (Windows has no SIGHUP) or where one would
// be ambiguous (SIGHUP reloads `vscclient-go serve`'s configuration).
//
// The protocol is one JSON request line and one JSON response line per
// connection:
//
//	{"op":"rearm","domain":"win11"}   ->  {"ok":true}
//	{"op":"status"}                   ->  {"ok":true,"status":{...}}
//
// The socket is created with mode 0660 (its directory decides who reaches
// it: /run/vscardkit belongs to the service's user), and a stale socket
// left by a process that died is replaced; a live one is an error.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// The operations.
const (
	OpRearm  = "rearm"
	OpStatus = "status"
)

// Request is what a client asks.
type Request struct {
	Op     string `json:"op"`
	Domain string `json:"domain,omitempty"`
}

// Response is what the server answers.
type Response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`
}

// ErrInUse: another process answers on the socket.
var ErrInUse = errors.New("control: another process already serves this control socket")

// Handler carries out requests.
type Handler interface {
	// Rearm re-arms the PIN guard of domain ("" when the process serves
	// one card).
	Rearm(domain string) error
	// Status returns what to report, encoded as JSON.
	Status() any
}

// Listen creates the control socket at path, replacing a stale one.
func Listen(path string) (net.Listener, error) {
	l, err := net.Listen("unix", path)
	if err == nil {
		return l, chmod(path)
	}
	if _, serr := os.Stat(path); serr != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	// Something is there: a live server, or what a dead one left.
	if c, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
		c.Close()
		return nil, fmt.Errorf("%w (%s)", ErrInUse, path)
	}
	if rerr := os.Remove(path); rerr != nil {
		return nil, fmt.Errorf("control: removing the stale socket: %w", rerr)
	}
	l, err = net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return l, chmod(path)
}

func chmod(path string) error {
	if err := os.Chmod(path, 0o660); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	return nil
}

// Serve answers requests on l with h until ctx ends; then it closes l and
// waits for the connections it serves. A request's line may be at most
// 4 KiB, and a client has 5 s to send it.
func Serve(ctx context.Context, l net.Listener, h Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(c, h, log)
		}()
	}
}

func serveConn(c net.Conn, h Handler, log *slog.Logger) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadBytes('\n')
	if err != nil && (err != io.EOF || len(line) == 0) {
		log.Debug("control: reading a request", "err", err)
		return
	}
	var req Request
	resp := Response{OK: true}
	if err := json.Unmarshal(line, &req); err != nil {
		resp = Response{Error: "malformed request: " + err.Error()}
	} else {
		switch req.Op {
		case OpRearm:
			if err := h.Rearm(req.Domain); err != nil {
				resp = Response{Error: err.Error()}
			} else {
				log.Info("control: PIN guard re-armed", "domain", req.Domain)
			}
		case OpStatus:
			b, err := json.Marshal(h.Status())
			if err != nil {
				resp = Response{Error: err.Error()}
			} else {
				resp.Status = b
			}
		default:
			resp = Response{Error: fmt.Sprintf("unknown operation %q (want %s or %s)", req.Op, OpRearm, OpStatus)}
		}
	}
	b, _ := json.Marshal(resp)
	c.Write(append(b, '\n'))
}

// Do sends req to the control socket at path and returns the response; a
// refusal (ok false) is an error.
func Do(ctx context.Context, path string, req Request) (*Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, 1<<20)).ReadBytes('\n')
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, fmt.Errorf("control: reading the answer: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("control: malformed answer: %w", err)
	}
	if !resp.OK {
		return &resp, &RefusedError{Op: req.Op, Reason: resp.Error}
	}
	return &resp, nil
}

// RefusedError is the server's refusal of a request.
type RefusedError struct {
	Op, Reason string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("control: %s refused: %s", e.Op, e.Reason) }
