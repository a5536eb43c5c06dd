package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// printer writes one line per event, human-readable or JSON.
type printer struct {
	mu     sync.Mutex
	w      io.Writer
	json   bool
	redact apdu.Redactor
}

func newPrinter(w io.Writer, asJSON, showSecrets bool) *printer {
	return &printer{w: w, json: asJSON, redact: apdu.Redactor{ShowSecrets: showSecrets}}
}

// fields returns an event's name and its fields, in a stable order.
func (p *printer) fields(e vscardtest.Event) (string, [][2]any) {
	var f [][2]any
	add := func(k string, v any) { f = append(f, [2]any{k, v}) }
	switch e.Kind {
	case vscardtest.EventConnected:
		add("remote", e.Remote)
	case vscardtest.EventDisconnected:
		add("remote", e.Remote)
		if e.Err != nil {
			add("reason", e.Err.Error())
		}
	case vscardtest.EventInit:
		add("magic", string(e.Init.Magic[:]))
		add("version", e.Init.Version.String())
		add("capabilities", e.Init.Capabilities)
	case vscardtest.EventReaderAdded:
		add("reader", uint32(e.ReaderID))
		add("name", e.Name)
	case vscardtest.EventReaderRemoved, vscardtest.EventCardRemoved, vscardtest.EventFlushComplete:
		add("reader", uint32(e.ReaderID))
	case vscardtest.EventCardInserted, vscardtest.EventATRRejected:
		add("reader", uint32(e.ReaderID))
		add("atr", fmt.Sprintf("%X", e.ATR))
	case vscardtest.EventAPDU:
		add("command", p.redact.Command(e.Command))
		add("response", p.redact.Response(e.Response))
		add("rtt_ms", float64(e.RTT.Microseconds())/1000)
	case vscardtest.EventCardError:
		add("command", p.redact.Command(e.Command))
		add("code", e.Code.String())
		add("rtt_ms", float64(e.RTT.Microseconds())/1000)
	case vscardtest.EventUnexpected:
		add("type", e.Type.String())
		add("reader", uint32(e.ReaderID))
	case vscardtest.EventStalled:
		add("error", "input buffer full: QEMU would read nothing more from this client or any later one until the VM restarts")
	}
	return e.Kind.String(), f
}

func (p *printer) event(e vscardtest.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	name, f := p.fields(e)
	p.write(e.Time, name, f)
}

// write prints one line: a JSON object, or the time, the name and
// key=value fields (values quoted where they need it). The caller holds mu.
func (p *printer) write(t time.Time, name string, f [][2]any) {
	if p.json {
		m := map[string]any{"time": t.Format(time.RFC3339Nano), "event": name}
		for _, kv := range f {
			m[kv[0].(string)] = kv[1]
		}
		b, _ := json.Marshal(m)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-14s", t.Format("15:04:05.000"), name)
	for _, kv := range f {
		switch v := kv[1].(type) {
		case string:
			if strings.ContainsAny(v, " \"=") || v == "" {
				fmt.Fprintf(&b, " %s=%q", kv[0], v)
			} else {
				fmt.Fprintf(&b, " %s=%s", kv[0], v)
			}
		default:
			fmt.Fprintf(&b, " %s=%v", kv[0], v)
		}
	}
	fmt.Fprintln(p.w, b.String())
}

// response formats the whole response to the last command, redacted as the
// command's events were.
func (p *printer) response(resp []byte) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.redact.Response(resp)
}

// line prints a free-form line (script progress) in the same stream; kv
// alternates keys and values.
func (p *printer) line(kind string, kv ...any) {
	var f [][2]any
	for i := 0; i+1 < len(kv); i += 2 {
		f = append(f, [2]any{kv[i], kv[i+1]})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.write(time.Now(), kind, f)
}
