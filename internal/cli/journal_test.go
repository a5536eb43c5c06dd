//go:build unix

package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vscardkit/vscardkit/internal/cli"
)

// streamID is f's JOURNAL_STREAM value, as systemd writes it.
func streamID(t *testing.T, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func TestNewLoggerOmitsTimeUnderJournal(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	journal, other := open("journal"), open("other")
	cases := []struct {
		name     string
		file     *os.File
		env      string
		wantTime bool
	}{
		{"the journal's stream", journal, streamID(t, journal), false},
		{"another file", other, streamID(t, journal), true},
		{"no JOURNAL_STREAM", journal, "", true},
		{"malformed JOURNAL_STREAM", journal, "journal", true},
	}
	for _, c := range cases {
		for _, asJSON := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/json=%v", c.name, asJSON), func(t *testing.T) {
				t.Setenv("JOURNAL_STREAM", c.env)
				if err := c.file.Truncate(0); err != nil {
					t.Fatal(err)
				}
				c.file.Seek(0, 0)
				log, err := cli.NewLogger(c.file, "info", asJSON)
				if err != nil {
					t.Fatal(err)
				}
				log.With("peer", "qemu").WithGroup("g").Info("connected", "time", "caller's own")
				b, err := os.ReadFile(c.file.Name())
				if err != nil {
					t.Fatal(err)
				}
				line := string(b)
				if asJSON {
					// Still one valid JSON object.
					var m map[string]any
					if err := json.Unmarshal(b, &m); err != nil {
						t.Fatalf("%q: %v", line, err)
					}
				}
				// The record's time and the caller's g.time.
				n := strings.Count(line, "time")
				if got := n == 2; got != c.wantTime {
					t.Errorf("record time present = %v, want %v: %q", got, c.wantTime, line)
				}
				if !strings.Contains(line, "connected") || !strings.Contains(line, "caller's own") || !strings.Contains(line, "qemu") {
					t.Errorf("the message or the caller's attribute is gone: %q", line)
				}
			})
		}
	}
}

func TestNewLoggerKeepsTimeOnOtherWriters(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "1:1")
	var buf bytes.Buffer
	log, err := cli.NewLogger(&buf, "info", false)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("x")
	if !strings.HasPrefix(buf.String(), "time=") {
		t.Errorf("a buffer is never the journal: %q", buf.String())
	}
}
