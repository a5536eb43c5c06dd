package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// script is a list of APDUs to send, each with an optional expected status
// word.
type script struct {
	name  string
	steps []step
	// getResponse follows 61xx with GET RESPONSE, as a guest's middleware
	// does, and reports the whole response.
	getResponse bool
}

type step struct {
	line   int
	cmd    []byte
	expect string // "" or 4 characters of hex digits and X wildcards
}

// loadScript parses a script file: one APDU per line, '#' starts a
// comment, and an optional last field is the expected status word, whose
// hex digits may be X to match anything (61XX). The APDU is hex, in one
// word or spaced as opensc-tool and pcsc tools print it: 00A40400...,
// 00 A4 04 00 ..., 00:A4:04:00:...
func loadScript(path string) (*script, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the script: %w", err)
	}
	s := &script{name: path}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		st, ok, err := parseStep(line)
		if err != nil {
			return nil, cli.WithHint(fmt.Errorf("%s:%d: %w", path, n, err), scriptHint)
		}
		if !ok {
			continue
		}
		st.line = n
		s.steps = append(s.steps, st)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the script: %w", err)
	}
	if len(s.steps) == 0 {
		return nil, cli.WithHint(fmt.Errorf("%s: no APDUs", path), scriptHint)
	}
	return s, nil
}

const scriptHint = "write one APDU a line, in hex, and optionally its status word: 00A4040009A00000030800001000 9000 (or 00 A4 04 00 ..., 00:A4:04:00:...)"

// parseStep parses one line without its comment; ok is false for a blank
// line.
func parseStep(line string) (st step, ok bool, err error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return step{}, false, nil
	}
	// The APDU is one word, or bytes of two digits each separated by
	// spaces; a last word after it is the expected status word.
	bytesOnly := func(words []string) bool {
		for _, w := range words {
			if len(w) != 2 {
				return false
			}
		}
		return true
	}
	var sw string
	switch {
	case len(f) == 1, bytesOnly(f):
	case bytesOnly(f[:len(f)-1]), len(f) == 2:
		f, sw = f[:len(f)-1], f[len(f)-1]
	default:
		return step{}, false, fmt.Errorf("%d words: want an APDU (one word, or bytes separated by spaces) and at most an expected status word", len(f))
	}
	if sw != "" {
		e := strings.ToUpper(sw)
		if len(e) != 4 || strings.Trim(e, "0123456789ABCDEFX") != "" {
			return step{}, false, fmt.Errorf("expected status word %q: want 4 hex digits, X for any (61XX)", sw)
		}
		st.expect = e
	}
	hexText := strings.ReplaceAll(strings.Join(f, ""), ":", "")
	cmd, err := hex.DecodeString(hexText)
	if err != nil {
		return step{}, false, fmt.Errorf("APDU is not hex: %w", err)
	}
	if _, err := apdu.Parse(cmd); err != nil {
		return step{}, false, err
	}
	st.cmd = cmd
	return st, true, nil
}

func matchSW(expect string, sw apdu.SW) bool {
	got := sw.String()
	for i := range 4 {
		if expect[i] != 'X' && expect[i] != got[i] {
			return false
		}
	}
	return true
}

// run waits for a card, sends every step and reports whether all
// expectations held (nil) or not (cli.Failed{1}).
func (s *script) run(ctx context.Context, srv *vscardtest.Server, cardIn <-chan struct{}, timeout time.Duration, out *printer) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if !srv.Host().State().CardPresent {
		out.line("script", "status", "waiting for a card")
		select {
		case <-cardIn:
		case <-ctx.Done():
			return cli.WithHint(fmt.Errorf("no card was inserted: %w", context.Cause(ctx)),
				"start the client (vscclient-go --connect tcp://"+srv.Addr()+") and check it finds a card")
		}
	}
	failed := 0
	for i, st := range s.steps {
		resp, pieces, err := transmit(ctx, srv, st.cmd, s.getResponse)
		if err != nil {
			out.line("script-error", "step", i+1, "line", st.line, "error", err.Error())
			return cli.Failed{Code: cli.ExitFailure}
		}
		status := "ok"
		sw := apdu.Response(resp).SW()
		if st.expect != "" && !matchSW(st.expect, sw) {
			status = "MISMATCH expected " + st.expect
			failed++
		}
		// The apdu event just printed has the response; the step adds
		// what it means. Only a response put together with GET RESPONSE
		// is new, and printed whole; a JSON record carries it always, so
		// that a program reads each step on its own.
		kv := []any{"step", i + 1, "line", st.line, "sw", sw.String()}
		if m := swMeaning(st.cmd, sw); m != "" {
			kv = append(kv, "meaning", m)
		}
		kv = append(kv, "result", status)
		if pieces > 1 || out.json {
			kv = append(kv, "response", out.response(resp))
		}
		out.line("script", kv...)
	}
	out.line("script-done", "steps", len(s.steps), "failed", failed)
	if failed > 0 {
		return cli.Failed{Code: cli.ExitFailure}
	}
	return nil
}

// transmit sends cmd and, with getResponse, collects the rest of a 61xx
// response with GET RESPONSE (Le = xx), as OpenSC does in the guest. It
// returns how many responses it took.
func transmit(ctx context.Context, srv *vscardtest.Server, cmd []byte, getResponse bool) ([]byte, int, error) {
	resp, err := srv.Transmit(ctx, cmd)
	if err != nil || !getResponse {
		return resp, 1, err
	}
	var data []byte
	for n := 1; n <= 1024; n++ { // at most 256 KiB
		r := apdu.Response(resp)
		if len(r) < 2 || r.SW().SW1() != apdu.SWBytesRemaining.SW1() {
			return append(data, resp...), n, nil
		}
		data = append(data, r.Data()...)
		if resp, err = srv.Transmit(ctx, []byte{cmd[0] & 0x03, apdu.INSGetResponse, 0, 0, r.SW().SW2()}); err != nil {
			return nil, n, err
		}
	}
	return nil, 0, fmt.Errorf("the card kept answering 61xx")
}
