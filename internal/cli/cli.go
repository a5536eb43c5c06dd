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
	"strconv"
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
// returns the exit code. The message is Message(err): without the usage
// marker and without the package prefixes of vscardkit's libraries, which
// name code rather than what went wrong. A usage error without a hint gets
// "run 'prog --help' for usage".
func Report(w io.Writer, prog string, err error) int {
	if err == nil {
		return ExitOK
	}
	var f Failed
	if errors.As(err, &f) {
		return f.Code
	}
	code := ExitFailure
	if errors.Is(err, ErrUsage) {
		code = ExitUsage
	}
	fmt.Fprintf(w, "%s: error: %s\n", prog, Message(err))
	if h := Hint(err); h != "" {
		fmt.Fprintf(w, "hint: %s\n", h)
	} else if code == ExitUsage {
		fmt.Fprintf(w, "hint: run '%s --help' for usage\n", prog)
	}
	return code
}

// internalPrefixes are the package names that start the errors of
// vscardkit's packages ("certsrc: ..."), as Go's style wants of a library.
// A user reads what went wrong, not where: Message drops them.
var internalPrefixes = []string{
	"apdu", "bridge", "certsrc", "configcli", "pcscsource", "piv", "procnet",
	"softstore", "testcard", "tlscerts", "vpcd", "vscardtest", "xmlconfig",
}

// Message returns err's text as a command prints it: without the usage
// marker of Usagef and without the package prefixes of vscardkit's
// internal packages, at the start or after a wrapping "...: ".
func Message(err error) string {
	msg := err.Error()
	if errors.Is(err, ErrUsage) {
		msg = strings.Replace(msg, ErrUsage.Error()+": ", "", 1)
	}
	for _, p := range internalPrefixes {
		msg = strings.TrimPrefix(msg, p+": ")
		msg = strings.ReplaceAll(msg, ": "+p+": ", ": ")
	}
	return msg
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

// Parse parses args with fs, adding a --version flag. --help prints fs's
// usage and --version the version; both return Failed{ExitOK}. A bad flag
// returns a usage error in the commands' style (see ParseFlags), with the
// hint "run 'NAME --help' for usage", NAME being fs's name.
func Parse(fs *flag.FlagSet, args []string) error {
	version := fs.Bool("version", false, "print the version and exit")
	if err := ParseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return Failed{Code: ExitOK}
		}
		return WithHint(err, fmt.Sprintf("run '%s --help' for usage", fs.Name()))
	}
	if *version {
		fmt.Fprintln(fs.Output(), fs.Name(), Version())
		return Failed{Code: ExitOK}
	}
	return nil
}

// ParseFlags parses args with fs without letting package flag print
// anything: -h and --help return flag.ErrHelp (the caller prints the
// usage), and a bad flag returns a usage error that says what is wrong in
// the double-dash style users type: "unknown flag --bogus",
// `--max-backoff "abc": want a duration such as 500ms, 2s or 1m`.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	// Each flag's Set is watched, so that a bad value is reported with the
	// flag it was given to and the reason, not flag's generic message.
	var bad *badValue
	var watched []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		f.Value = &watchedValue{Value: f.Value, name: f.Name, bad: &bad}
		watched = append(watched, f)
	})
	err := fs.Parse(args)
	for _, f := range watched {
		f.Value = f.Value.(*watchedValue).Value
	}
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return flag.ErrHelp
	case bad != nil:
		return bad.usageError()
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return Usagef("unknown flag --%s", strings.TrimPrefix(name, "-"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return Usagef("--%s needs a value", strings.TrimPrefix(name, "-"))
	}
	if arg, ok := strings.CutPrefix(msg, "bad flag syntax: "); ok {
		return Usagef("bad flag syntax %q: write --name or --name=value", arg)
	}
	return Usagef("%s", msg)
}

// watchedValue records its flag's failed Set.
type watchedValue struct {
	flag.Value
	name string
	bad  **badValue
}

func (v *watchedValue) Set(s string) error {
	err := v.Value.Set(s)
	if err != nil && *v.bad == nil {
		*v.bad = &badValue{name: v.name, value: s, err: err, v: v.Value}
	}
	return err
}

// IsBoolFlag keeps a boolean flag boolean (--json, not --json true).
func (v *watchedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// badValue is a flag's value that its Set refused.
type badValue struct {
	name, value string
	err         error
	v           flag.Value
}

func (b *badValue) usageError() error {
	var want string
	if g, ok := b.v.(flag.Getter); ok {
		switch g.Get().(type) {
		case time.Duration:
			want = "want a duration such as 500ms, 2s or 1m"
		case bool:
			want = "want true or false"
		case int, int64, uint, uint64:
			want = "want a whole number"
			if _, err := strconv.ParseInt(b.value, 0, 64); err == nil || errors.Is(err, strconv.ErrRange) {
				want = "out of range"
			}
		case float64:
			want = "want a number"
		}
	}
	if want == "" {
		want = b.err.Error()
	}
	return Usagef("--%s %q: %s", b.name, b.value, want)
}

// ReadPINFile reads a PIN from the first line of a file, so that it never
// appears on a command line (where the process list and shell history would
// show it). The PIN must be a PIV PIN: 6 to 8 digits (FIPS 201-3, 4.3.1).
// Errors name the file and what is wrong, never the PIN. A file other users
// may read gets a warning from PINFileWarning.
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
	switch {
	case pin == "":
		return "", WithHint(fmt.Errorf("the PIN file %s is empty", path), "write the PIN, 6 to 8 digits, on its first line")
	case strings.Trim(pin, "0123456789") != "":
		return "", WithHint(fmt.Errorf("the PIN in %s has characters other than digits", path), "a PIV PIN is 6 to 8 digits (0-9); check the first line has nothing else, such as spaces")
	case len(pin) < 6 || len(pin) > 8:
		return "", WithHint(fmt.Errorf("the PIN in %s has %d digits", path, len(pin)), "a PIV PIN is 6 to 8 digits")
	}
	return pin, nil
}

// PINFileWarning returns a warning when users other than the file's owner
// (and its group) may read the PIN file, and "" otherwise.
func PINFileWarning(path string) string {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return ""
	}
	return fmt.Sprintf("every user of this machine can read the PIN file %s (mode %04o): chmod 600 %s", path, fi.Mode().Perm(), path)
}
