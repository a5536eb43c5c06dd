// Command genman writes the man pages and the bash completions of
// vscardkit's commands from what the built commands print for --help, so
// that the three never disagree:
//
//	go run ./internal/cmd/genman --bin bin --man OUT/man1 --completion OUT/completions
//
// It runs `PROG --help`, finds the subcommands in the Usage lines
// ("vscclient-go readers ..." gives readers) and runs `PROG SUB --help` for
// each, down to `vscclient-go config tls-certs`. A new subcommand needs only
// its line in the usage text. The usage lines, paragraphs, lists, examples
// and flags become vscclient-go(1) and fake-ccid-server(1); the few
// sections --help has no place for (NAME's one line, EXIT STATUS, FILES,
// SEE ALSO) are in the programs table below. scripts/mkdeb.sh runs it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vscardkit/vscardkit/internal/cli"
)

const prog = "genman"

// program is what a man page needs beyond --help.
type program struct {
	name    string
	summary string // NAME: "name \- summary"
	// extra sections, in man(7) order after EXAMPLES: title and roff body.
	extra [][2]string
	// values completes flag arguments --help does not enumerate: the flag
	// (command path without the program, a space, the flag) to its words.
	values map[string][]string
}

var exitStatus = [2]string{"EXIT STATUS", `.TP
.B 0
success (and for \fB\-\-help\fR and \fB\-\-version\fR)
.TP
.B 1
the job failed, or an expectation did not hold
.TP
.B 2
the command line is wrong`}

var programs = []program{
	{
		name:    "vscclient-go",
		summary: "give a QEMU/libvirt guest a smart card of this host: a PC/SC reader, or a PIV card whose keys stay in a PKCS#11 token",
		extra: [][2]string{
			exitStatus,
			{"ENVIRONMENT", `.TP
.B PCSCLITE_CSOCK_NAME
the socket of pcscd (default \fI/run/pcscd/pcscd.comm\fR)
.TP
.B SOFTHSM2_CONF
softhsm2's configuration, for \fBpkcs11:\fR cards in a softhsm2 token
.TP
.B NOTIFY_SOCKET
set by systemd for a \fBType=notify\fR service: vscclient\-go tells it when it is ready, reloading or stopping
.TP
.B JOURNAL_STREAM
set by systemd when standard error goes to the journal: log lines then carry no time, the journal adds it`},
			{"FILES", `.TP
.I /etc/vscardkit/vscardkit.json
the domains and cards of \fBvscardkit.service\fR
.TP
.I /etc/vscardkit/DOMAIN.env
the options (\fBVSCCLIENT_GO_OPTS\fR) of \fBvscclient\-go@DOMAIN.service\fR
.TP
.I /run/vscardkit/control.sock
the control socket of \fBvscardkit.service\fR`},
			{"SEE ALSO", `.BR fake\-ccid\-server (1),
.BR pcscd (8),
.BR virsh (1),
.BR qemu\-system\-x86_64 (1),
.BR softhsm2\-util (1),
.BR pkcs11\-tool (1),
.BR systemctl (1)`},
		},
		values: map[string][]string{
			" --log-level":       {"debug", "info", "warn", "error"},
			" --libvirt":         {"qemu:///system", "qemu:///session"},
			"config --format":    {"xml", "argv", "client", "qemu-conf", "all"},
			"config --mode":      {"passthrough", "host", "host-certificates"},
			"config --transport": {"tcp", "unix", "spicevmc"},
		},
	},
	{
		name:    "fake-ccid-server",
		summary: "a fake QEMU ccid-card-passthru host, to test and debug VSCard clients such as vscclient-go",
		extra: [][2]string{
			exitStatus,
			{"SEE ALSO", `.BR vscclient\-go (1),
.BR pcscd (8),
.BR opensc\-tool (1)`},
		},
		values: map[string][]string{
			" --log-level": {"debug", "info", "warn", "error"},
		},
	},
}

// command is a program or a subcommand, with its parsed --help.
type command struct {
	path    []string // "vscclient-go", "config", "tls-certs"
	doc     doc
	help    string     // the raw --help text
	summary string     // the description on its parent's usage line
	subs    []*command // in the order of the usage lines
}

func (c *command) name() string { return strings.Join(c.path, " ") }

// all returns c and its subcommands, depth first.
func (c *command) all() []*command {
	out := []*command{c}
	for _, s := range c.subs {
		out = append(out, s.all()...)
	}
	return out
}

// maxDepth bounds the subcommand tree, against a usage text whose lines
// would name a subcommand in every subcommand.
const maxDepth = 4

// load runs bin/path[0] path[1:]... --help and, recursively, the
// subcommands' --help.
func load(ctx context.Context, bin string, path []string) (*command, error) {
	text, err := helpText(ctx, bin, path)
	if err != nil {
		return nil, err
	}
	c := &command{path: path, doc: parseHelp(text), help: text}
	if len(c.doc.usage) == 0 {
		return nil, fmt.Errorf("genman: %s --help has no Usage: lines", c.name())
	}
	if len(path) >= maxDepth {
		return c, nil
	}
	for _, name := range c.doc.subcommands(path) {
		sub, err := load(ctx, bin, append(append([]string{}, path...), name))
		if err != nil {
			return nil, err
		}
		for _, u := range c.doc.usage {
			if f := strings.Fields(u.term); len(f) > len(path) && f[len(path)] == name && len(u.desc) > 0 {
				sub.summary = strings.Join(u.desc, " ")
				break
			}
		}
		c.subs = append(c.subs, sub)
	}
	return c, nil
}

// helpText returns what `path --help` prints (to stdout or stderr: the
// commands differ) when it exits 0.
func helpText(ctx context.Context, bin string, path []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, path[0]), append(path[1:], "--help")...)
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("genman: %s --help: %w\n%s", strings.Join(path, " "), err, out)
	}
	return string(out), nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(cli.Report(os.Stderr, prog, err))
}

const usage = `Usage: genman --bin DIR [--man DIR] [--completion DIR] [--page-version V] [--date YYYY-MM-DD]

Writes vscclient-go.1 and fake-ccid-server.1 (man(7) source) into --man and
the bash completions vscclient-go and fake-ccid-server into --completion,
from the --help of the commands in --bin.

Flags:
`

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cli.FlagSet(prog, usage, stderr)
	bin := fs.String("bin", "", "the `DIR` holding the built commands")
	manDir := fs.String("man", "", "write the man pages into `DIR`")
	compDir := fs.String("completion", "", "write the bash completions into `DIR`")
	version := fs.String("page-version", "", "the `version` the pages name (default: what the commands' --version prints)")
	date := fs.String("date", "", "the pages' date, `YYYY-MM-DD` (default: $SOURCE_DATE_EPOCH, or today)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *bin == "" || fs.NArg() > 0 {
		return cli.Usagef("give --bin DIR and no arguments")
	}
	if *manDir == "" && *compDir == "" {
		return cli.Usagef("nothing to write: give --man DIR, --completion DIR or both")
	}
	day, err := pageDate(*date)
	if err != nil {
		return err
	}
	for _, p := range programs {
		c, err := load(ctx, *bin, []string{p.name})
		if err != nil {
			return err
		}
		v := *version
		if v == "" {
			if v, err = programVersion(ctx, *bin, p.name); err != nil {
				return err
			}
		}
		if *manDir != "" {
			page := renderMan(p, c, v, day)
			if err := writeFile(filepath.Join(*manDir, p.name+".1"), page); err != nil {
				return err
			}
		}
		if *compDir != "" {
			if err := writeFile(filepath.Join(*compDir, p.name), renderBash(p, c)); err != nil {
				return err
			}
		}
	}
	return nil
}

// programVersion returns the version `name --version` prints.
func programVersion(ctx context.Context, bin, name string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(bin, name), "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("genman: %s --version: %w", name, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != name {
		return "", fmt.Errorf("genman: %s --version printed %q, want %q and a version", name, out, name)
	}
	return f[1], nil
}

// pageDate returns the date of the pages: s, or SOURCE_DATE_EPOCH (for
// reproducible builds), or today, in UTC.
func pageDate(s string) (string, error) {
	if s != "" {
		if _, err := time.Parse(time.DateOnly, s); err != nil {
			return "", cli.Usagef("--date %q: want YYYY-MM-DD", s)
		}
		return s, nil
	}
	t := time.Now()
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return "", errors.New("genman: SOURCE_DATE_EPOCH is not a number of seconds")
		}
		t = time.Unix(n, 0)
	}
	return t.UTC().Format(time.DateOnly), nil
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("genman: %w", err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("genman: %w", err)
	}
	return nil
}
