package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func testFlags(out io.Writer) *flag.FlagSet {
	fs := FlagSet("prog", "Usage: prog\n", out)
	fs.Duration("max-backoff", time.Second, "")
	fs.Int("n", 1, "")
	fs.Bool("json", false, "")
	fs.Func("pair", "", func(s string) error {
		if !strings.Contains(s, "=") {
			return errors.New("want A=B")
		}
		return nil
	})
	return fs
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for success
	}{
		{[]string{"--json", "--n", "3", "--max-backoff", "2s"}, ""},
		{[]string{"--bogus"}, "unknown flag --bogus"},
		{[]string{"-bogus"}, "unknown flag --bogus"},
		{[]string{"--max-backoff", "abc"}, `--max-backoff "abc": want a duration such as 500ms, 2s or 1m`},
		{[]string{"--n", "x"}, `--n "x": want a whole number`},
		{[]string{"--n", "99999999999999999999"}, `--n "99999999999999999999": out of range`},
		{[]string{"--json=maybe"}, `--json "maybe": want true or false`},
		{[]string{"--pair", "x"}, `--pair "x": want A=B`},
		{[]string{"--n"}, "--n needs a value"},
		{[]string{"---n"}, `bad flag syntax "---n": write --name or --name=value`},
	} {
		var out bytes.Buffer
		fs := testFlags(&out)
		err := ParseFlags(fs, tc.args)
		if out.Len() > 0 {
			t.Errorf("%q: flag printed %q", tc.args, out.String())
		}
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.args, err)
			}
			continue
		}
		if !errors.Is(err, ErrUsage) || Message(err) != tc.want {
			t.Errorf("%q: %v (usage: %v), want %q", tc.args, err, errors.Is(err, ErrUsage), tc.want)
		}
		// The flags' values are the flag set's own again.
		if _, ok := fs.Lookup("n").Value.(*watchedValue); ok {
			t.Errorf("%q: a watched value stayed in the flag set", tc.args)
		}
	}
}

func TestParseHelp(t *testing.T) {
	var out bytes.Buffer
	err := Parse(testFlags(&out), []string{"--help"})
	var f Failed
	if !errors.As(err, &f) || f.Code != ExitOK {
		t.Fatalf("--help: %v", err)
	}
	if !strings.HasPrefix(out.String(), "Usage: prog\n") || !strings.Contains(out.String(), "--max-backoff duration") {
		t.Errorf("--help printed %q", out.String())
	}
	var errOut bytes.Buffer
	code := Report(&errOut, "prog", Parse(testFlags(&out), []string{"--bogus"}))
	if want := "prog: error: unknown flag --bogus\nhint: run 'prog --help' for usage\n"; code != ExitUsage || errOut.String() != want {
		t.Errorf("--bogus: exit %d, %q; want %d, %q", code, errOut.String(), ExitUsage, want)
	}
}

func TestMessage(t *testing.T) {
	base := errors.New("softstore: no key pairs in /x")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{base, "no key pairs in /x"},
		{fmt.Errorf("opening the card: %w", base), "opening the card: no key pairs in /x"},
		{fmt.Errorf("certsrc: no PKCS#11 module: %w", errors.New("certsrc: stat x")), "no PKCS#11 module: stat x"},
		{Usagef("--port %q: bad", "x"), `--port "x": bad`},
		{errors.New("tls: loading the client certificate"), "tls: loading the client certificate"},
	} {
		if got := Message(tc.err); got != tc.want {
			t.Errorf("Message(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
