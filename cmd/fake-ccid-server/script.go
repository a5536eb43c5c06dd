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

// loadScript parses a script file: one hex APDU per line, '#' starts a
// comment, and an optional second field is the expected status word, whose
// hex digits may be X to match anything (61XX).
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
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) > 2 {
			return nil, cli.WithHint(fmt.Errorf("%s:%d: %d fields; want an APDU and at most an expected status word", path, n, len(f)),
				"write the APDU as one hex string without spaces: 00A4040009A00000030800001000 9000")
		}
		cmd, err := hex.DecodeString(f[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: APDU is not hex: %w", path, n, err)
		}
		if _, err := apdu.Parse(cmd); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		st := step{line: n, cmd: cmd}
		if len(f) == 2 {
			e := strings.ToUpper(f[1])
			if len(e) != 4 || strings.Trim(e, "0123456789ABCDEFX") != "" {
				return nil, fmt.Errorf("%s:%d: expected status word %q: want 4 hex digits, X for any (61XX)", path, n, f[1])
			}
			st.expect = e
		}
		s.steps = append(s.steps, st)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the script: %w", err)
	}
	if len(s.steps) == 0 {
		return nil, fmt.Errorf("%s: no APDUs", path)
	}
	return s, nil
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
		resp, err := transmit(ctx, srv, st.cmd, s.getResponse)
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
		out.line("script", "step", i+1, "line", st.line, "sw", sw.String(), "result", status, "response", out.response(resp))
	}
	out.line("script-done", "steps", len(s.steps), "failed", failed)
	if failed > 0 {
		return cli.Failed{Code: cli.ExitFailure}
	}
	return nil
}

// transmit sends cmd and, with getResponse, collects the rest of a 61xx
// response with GET RESPONSE (Le = xx), as OpenSC does in the guest.
func transmit(ctx context.Context, srv *vscardtest.Server, cmd []byte, getResponse bool) ([]byte, error) {
	resp, err := srv.Transmit(ctx, cmd)
	if err != nil || !getResponse {
		return resp, err
	}
	var data []byte
	for range 1024 { // at most 256 KiB
		r := apdu.Response(resp)
		if len(r) < 2 || r.SW().SW1() != apdu.SWBytesRemaining.SW1() {
			return append(data, resp...), nil
		}
		data = append(data, r.Data()...)
		if resp, err = srv.Transmit(ctx, []byte{cmd[0] & 0x03, apdu.INSGetResponse, 0, 0, r.SW().SW2()}); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("the card kept answering 61xx")
}
