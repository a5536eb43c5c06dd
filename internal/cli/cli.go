// Package cli holds what vscardkit's commands share: error reports with
// hints, exit codes, logger set-up and the version string. Only package
// main calls os.Exit; everything here returns.
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the job failed (or an expectation did not hold)
	ExitUsage   = 2 // the command line is wrong
)

// ErrUsage is wrapped by errors about the command line; Report exits 2 for
// them.
var ErrUsage = errors.New("usage")

// Usagef returns a command-line error.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

// WithHint attaches a hint (what the user can do about err) to err.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hint: hint}
}

// Hint returns the hint attached to err, if any.
func Hint(err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	return ""
}

// Failed is an error that only sets the exit code: the command already
// said what went wrong.
type Failed struct{ Code int }

func (f Failed) Error() string { return fmt.Sprintf("exit status %d", f.Code) }

// Report prints err as "prog: error: ..." and its hint, if any, to w and
// returns the exit code.
func Report(w io.Writer, prog string, err error) int {
	if err == nil {
		return ExitOK
	}
	var f Failed
	if errors.As(err, &f) {
		return f.Code
	}
	msg := err.Error()
	code := ExitFailure
	if errors.Is(err, ErrUsage) {
		msg = strings.TrimPrefix(msg, ErrUsage.Error()+": ")
		code = ExitUsage
	}
	fmt.Fprintf(w, "%s: error: %s\n", prog, msg)
	if h := Hint(err); h != "" {
		fmt.Fprintf(w, "hint: %s\n", h)
	} else if code == ExitUsage {
		fmt.Fprintf(w, "hint: run '%s --help' for usage\n", prog)
	}
	return code
}

// NewLogger returns a text (or JSON) slog logger on w at level ("debug",
// "info", "warn", "error"). When w is the stream systemd connected to the
// journal ($JOURNAL_STREAM names its device and inode, as for a service's
// stderr), records carry no time: the journal stamps every line itself.
func NewLogger(w io.Writer, level string, json bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, Usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if json {
		h = slog.NewJSONHandler(w, opts)
	}
	if journalStream(w, os.Getenv("JOURNAL_STREAM")) {
		h = untimed{h}
	}
	return slog.New(h), nil
}

// untimed is a handler whose records have no time: slog's handlers leave
// out a zero time, and an attribute the caller named "time" stays.
type untimed struct{ slog.Handler }

func (u untimed) Handle(ctx context.Context, r slog.Record) error {
	r.Time = time.Time{}
	return u.Handler.Handle(ctx, r)
}

func (u untimed) WithAttrs(attrs []slog.Attr) slog.Handler {
	return untimed{u.Handler.WithAttrs(attrs)}
}

func (u untimed) WithGroup(name string) slog.Handler { return untimed{u.Handler.WithGroup(name)} }

// version is set at link time, as `make build` does:
//
//	go build -ldflags "-X github.com/vscardkit/vscardkit/internal/cli.version=v1.2.3"
//
// (scripts/version.sh says what make stamps). When it is empty, Version
// reports the module version or the VCS revision.
var version = ""

// Version returns the program's version.
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// PrintFlags prints fs's flags as "--name" lines with their usage, like
// flag.PrintDefaults but in the double-dash style users type.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// FlagSet returns a flag set for prog whose --help prints usage (the text
// before the flag list) and then the flags, to stderr.
func FlagSet(prog, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		PrintFlags(stderr, fs)
	}
	return fs
}

// Parse parses args with fs, adding a --version flag. --help and --version
// print what they print and return Failed{ExitOK}; a bad flag (already
// reported by fs) returns Failed{ExitUsage}.
func Parse(fs *flag.FlagSet, args []string) error {
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Failed{Code: ExitOK}
		}
		return Failed{Code: ExitUsage}
	}
	if *version {
		fmt.Fprintln(fs.Output(), fs.Name(), Version())
		return Failed{Code: ExitOK}
	}
	return nil
}

// ReadPINFile reads a PIN from the first line of a file, so that it never
// appears on a command line (where the process list and shell history would
// show it).
func ReadPINFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the PIN file: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 256)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading the PIN file: %w", err)
	}
	pin := strings.TrimRight(line, "\r\n")
	if pin == "" {
		return "", fmt.Errorf("the PIN file %s is empty", path)
	}
	return pin, nil
}
