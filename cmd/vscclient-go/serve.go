package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/control"
	"github.com/vscardkit/vscardkit/internal/domain"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/sdnotify"
)

const serveUsage = `Usage: vscclient-go serve [--config FILE] [--control PATH] [--check]

Gives many libvirt domains each its own card, in one process: for every
domain of the configuration it follows the domain through libvirt's events
(connected within a moment of each start, idle while it is off) and carries
its card to the domain's <smartcard mode='passthrough'> chardev. Domains are
independent: one that fails, stops or is misconfigured leaves the others'
cards alone.

SIGHUP reloads the configuration: domains added start, domains removed leave
(card and reader removed from the guest first), domains whose settings
changed restart, the others are not touched. A configuration that does not
load is reported and the running one kept. Under systemd: systemctl reload
vscardkit. A domain's PIN guard is re-armed with 'vscclient-go rearm DOMAIN'
through the control socket.

The configuration is JSON (strict: an unknown key is an error). Each domain
takes the options of vscclient-go's flags, by their names:

  {
    "libvirt": "qemu:///system",
    "domains": {
      "win11":     {"card": "pcsc:YubiKey"},
      "ci-runner": {"card": "pkcs11:token=ci?module-path=/usr/lib/softhsm/libsofthsm2.so",
                    "slot": ["9a=id:01"], "max-wrong-pins": 3},
      "demo":      {"card": "soft:/etc/vscardkit/demo-card", "pin-file": "/etc/vscardkit/demo-pin"}
    }
  }

Top level: "libvirt" (URI, default qemu:///system), "control" (the control
socket, default /run/vscardkit/control.sock), "log-level", "domains".
Per domain: "card" (required: pcsc, pcsc:NAME, pkcs11:URI, soft, soft:DIR),
"slot", "reader-name", "shared", "pin-file", "max-wrong-pins",
"allow-final-pin-try", "tls-ca", "tls-cert", "tls-key", "tls-server-name",
"apdu-trace", "max-backoff". A PC/SC reader may serve one domain only, and
"pcsc" without a name (the first reader that holds a card) only when no
other domain uses PC/SC.

Examples:
  vscclient-go serve --config /etc/vscardkit/vscardkit.json
  vscclient-go serve --config vscardkit.json --check   # check it and exit
  vscclient-go status                                  # what each domain's card does
  vscclient-go rearm win11                             # re-arm win11's PIN guard

Flags:
`

// DefaultConfig is serve's configuration file when --config is not given.
const DefaultConfig = "/etc/vscardkit/vscardkit.json"

// serveConfig is serve's configuration file.
type serveConfig struct {
	Libvirt  string                  `json:"libvirt"`
	Control  string                  `json:"control"`
	LogLevel string                  `json:"log-level"`
	Domains  map[string]domainConfig `json:"domains"`
}

// domainConfig is one domain's card: vscclient-go's flags by name.
type domainConfig struct {
	Card             string   `json:"card"`
	Slot             []string `json:"slot,omitempty"`
	ReaderName       string   `json:"reader-name,omitempty"`
	Shared           bool     `json:"shared,omitempty"`
	PINFile          string   `json:"pin-file,omitempty"`
	MaxWrongPINs     *int     `json:"max-wrong-pins,omitempty"`
	AllowFinalPINTry bool     `json:"allow-final-pin-try,omitempty"`
	TLSCA            string   `json:"tls-ca,omitempty"`
	TLSCert          string   `json:"tls-cert,omitempty"`
	TLSKey           string   `json:"tls-key,omitempty"`
	TLSServerName    string   `json:"tls-server-name,omitempty"`
	APDUTrace        bool     `json:"apdu-trace,omitempty"`
	MaxBackoff       string   `json:"max-backoff,omitempty"`
}

// ErrConfig is wrapped by every error about serve's configuration.
var ErrConfig = errors.New("configuration")

// A configuration error is a usage error too (exit status 2): the units'
// RestartPreventExitStatus=2 keeps systemd from restarting a service whose
// configuration cannot load.
func configErr(path, format string, args ...any) error {
	return cli.WithHint(fmt.Errorf("%w: %s: %w: %s", cli.ErrUsage, path, ErrConfig, fmt.Sprintf(format, args...)),
		"vscclient-go serve --help documents the configuration")
}

// loadServeConfig reads and checks serve's configuration.
func loadServeConfig(path string) (*serveConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, cli.WithHint(err, "write one: vscclient-go serve --help shows the format")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var cfg serveConfig
	if err := dec.Decode(&cfg); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := position(b, se.Offset)
			return nil, configErr(path, "line %d, column %d: %v", line, col, err)
		case errors.As(err, &te):
			line, col := position(b, te.Offset)
			return nil, configErr(path, "line %d, column %d: %q wants %v, not a JSON %s", line, col, te.Field, te.Type, te.Value)
		}
		return nil, configErr(path, "%v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return nil, configErr(path, "more than one JSON value")
	}
	if len(cfg.Domains) == 0 {
		return nil, configErr(path, `no domains: give "domains": {"NAME": {"card": "..."}}`)
	}
	if _, err := cli.NewLogger(io.Discard, cmp.Or(cfg.LogLevel, "info"), false); err != nil {
		return nil, configErr(path, `"log-level" %q: want debug, info, warn or error`, cfg.LogLevel)
	}
	readers := map[string]string{} // pcsc selector -> domain
	for _, name := range slices.Sorted(maps.Keys(cfg.Domains)) {
		dc := cfg.Domains[name]
		if strings.TrimSpace(name) == "" {
			return nil, configErr(path, "a domain with an empty name")
		}
		o, err := dc.options(name)
		if err != nil {
			return nil, configErr(path, "domain %q: %v", name, err)
		}
		for _, check := range []func(*options) error{checkCard, checkTLS} {
			if err := check(o); err != nil {
				cerr := configErr(path, "domain %q: %v", name, cli.Message(err))
				if h := cli.Hint(err); h != "" {
					cerr = cli.WithHint(cerr, h)
				}
				return nil, cerr
			}
		}
		if kind, arg := cardKind(o.card), cardArg(o.card); kind == "pcsc" {
			for sel, other := range readers {
				if sel == arg || sel == "" || arg == "" {
					what := fmt.Sprintf("PC/SC reader %q", arg)
					if sel == "" || arg == "" {
						what = `"pcsc" without a reader name (the first reader that holds a card)`
					}
					return nil, configErr(path, "domains %q and %q would share a card: %s; name a different reader for each (vscclient-go readers lists them)", other, name, what)
				}
			}
			readers[arg] = name
		}
	}
	return &cfg, nil
}

// options turns a domain's settings into the flags' options.
func (dc domainConfig) options(name string) (*options, error) {
	o := &options{
		serve: true, domain: name, card: dc.Card, shared: dc.Shared, slots: dc.Slot, readerName: dc.ReaderName,
		pinFile: dc.PINFile, maxWrongPINs: piv.DefaultMaxWrongPINs, allowFinalTry: dc.AllowFinalPINTry,
		tlsCA: dc.TLSCA, tlsCert: dc.TLSCert, tlsKey: dc.TLSKey, tlsServerName: dc.TLSServerName,
		apduTrace: dc.APDUTrace, maxBackoff: time.Second,
	}
	if dc.Card == "" {
		return nil, errors.New(`no "card" (pcsc, pcsc:NAME, pkcs11:URI, soft or soft:DIR)`)
	}
	if dc.MaxWrongPINs != nil {
		o.maxWrongPINs = *dc.MaxWrongPINs
	}
	if dc.MaxBackoff != "" {
		d, err := time.ParseDuration(dc.MaxBackoff)
		if err != nil {
			return nil, fmt.Errorf(`"max-backoff" %q: want a duration such as 2s`, dc.MaxBackoff)
		}
		o.maxBackoff = d
	}
	return o, nil
}

// position turns a byte offset into a line and a column.
func position(b []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// defaultControl is the control socket's default path: systemd's
// RuntimeDirectory for root, the user's runtime directory otherwise.
func defaultControl() string {
	if os.Geteuid() == 0 || os.Getenv("XDG_RUNTIME_DIR") == "" {
		return "/run/vscardkit/control.sock"
	}
	return filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "vscardkit", "control.sock")
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cli.FlagSet(prog+" serve", serveUsage, stderr)
	path := fs.String("config", DefaultConfig, "the configuration `file`")
	controlPath := fs.String("control", "", "the control socket's `path` (default: the configuration's \"control\", else "+defaultControl()+")")
	check := fs.Bool("check", false, "check the configuration and exit")
	logJSON := fs.Bool("log-json", false, "log JSON lines")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("serve takes no arguments (the domains are in --config)")
	}
	cfg, err := loadServeConfig(*path)
	if err != nil {
		return err
	}
	if *check {
		domains := "domains"
		if len(cfg.Domains) == 1 {
			domains = "domain"
		}
		fmt.Fprintf(stderr, "%s: %d %s: %s\n", *path, len(cfg.Domains), domains, strings.Join(slices.Sorted(maps.Keys(cfg.Domains)), ", "))
		return nil
	}
	log, err := cli.NewLogger(stderr, cmp.Or(cfg.LogLevel, "info"), *logJSON)
	if err != nil {
		return err
	}
	s := &server{path: *path, log: log, stderr: stderr, runners: map[string]*runner{}}
	return s.run(ctx, cfg, cmp.Or(*controlPath, cfg.Control, defaultControl()))
}

// server is vscclient-go serve: one runner per domain, on one libvirt
// watcher.
type server struct {
	path   string
	log    *slog.Logger
	stderr io.Writer

	mu      sync.Mutex
	cfg     *serveConfig
	w       *domain.Watcher
	runners map[string]*runner
	changed chan struct{} // signalled when a runner's status may have changed
	ready   atomic.Bool   // systemd was told READY=1 (every card settled)
}

// runner runs one domain's card: it opens the card (again, after a delay,
// when that fails) and runs it until its context ends.
type runner struct {
	name   string
	dc     domainConfig
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	c       *vmCard // nil until the card is open
	openErr error   // why the card did not open, meanwhile

	settled    chan struct{} // closed once: the card settled, or failed to open
	settleOnce sync.Once
}

func (r *runner) settle() { r.settleOnce.Do(func() { close(r.settled) }) }

func (s *server) run(ctx context.Context, cfg *serveConfig, controlPath string) error {
	s.changed = make(chan struct{}, 1)
	if err := os.MkdirAll(filepath.Dir(controlPath), 0o755); err != nil {
		return err
	}
	l, err := control.Listen(controlPath)
	if err != nil {
		return cli.WithHint(err, "is another vscclient-go serve running? (vscclient-go status --control "+controlPath+")")
	}
	s.log.Info("starting", "version", cli.Version(), "config", s.path, "domains", len(cfg.Domains), "libvirt", uriName(cfg.Libvirt), "control", controlPath)

	g, gctx := errgroup.WithContext(ctx)
	if err := s.apply(gctx, g, cfg); err != nil {
		l.Close()
		return err
	}
	g.Go(func() error { return control.Serve(gctx, l, s, s.log) })
	g.Go(func() error { return notifySystemd(gctx, s.clients, s.changed, &s.ready) })
	g.Go(func() error { return onSignal(gctx, syscall.SIGHUP, func() { s.reload(gctx, g) }) })
	g.Go(func() error {
		<-gctx.Done()
		s.stopAll()
		return nil
	})
	err = g.Wait()
	s.log.Info("stopped")
	return err
}

// apply starts, stops and restarts runners so that they match cfg.
func (s *server) apply(ctx context.Context, g *errgroup.Group, cfg *serveConfig) error {
	s.mu.Lock()
	old := s.cfg
	s.mu.Unlock()
	if old == nil || old.Libvirt != cfg.Libvirt {
		// A new libvirt: every domain starts again on a new watcher.
		w, err := domain.NewWatcher(cfg.Libvirt, &domain.Options{Logger: s.log})
		if err != nil {
			return libvirtErr(cfg.Libvirt, err)
		}
		s.stopAll()
		s.mu.Lock()
		if s.w != nil {
			s.w.Close()
		}
		s.w = w
		s.mu.Unlock()
		old = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range s.runners {
		if dc, ok := cfg.Domains[name]; !ok || !reflect.DeepEqual(dc, r.dc) {
			s.mu.Unlock()
			s.log.Info("configuration: stopping the domain's card", "domain", name, "removed", !ok)
			r.stop()
			s.mu.Lock()
			delete(s.runners, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Domains)) {
		if _, ok := s.runners[name]; ok {
			continue
		}
		r := &runner{name: name, dc: cfg.Domains[name], done: make(chan struct{}), settled: make(chan struct{})}
		rctx, cancel := context.WithCancel(ctx)
		r.cancel = cancel
		s.runners[name] = r
		w := s.w
		g.Go(func() error {
			defer close(r.done)
			r.run(rctx, w, s.log.With("domain", name), s.stderr, s.poke)
			return nil // a domain's failure is its own: the others go on
		})
	}
	s.cfg = cfg
	return nil
}

// reload reads the configuration again and applies it, keeping the running
// one when it does not load.
func (s *server) reload(ctx context.Context, g *errgroup.Group) {
	sdnotify.Reloading()
	defer func() {
		// The end of the reload; before every card settled, the first
		// READY=1 is notifySystemd's to send.
		if s.ready.Load() {
			sdnotify.Ready()
		}
	}()
	cfg, err := loadServeConfig(s.path)
	if err != nil {
		s.log.Error("SIGHUP: the configuration does not load; keeping the running one", "err", err)
		return
	}
	if err := s.apply(ctx, g, cfg); err != nil {
		s.log.Error("SIGHUP: applying the configuration", "err", err)
		return
	}
	s.log.Info("SIGHUP: configuration reloaded", "domains", len(cfg.Domains))
}

func (s *server) stopAll() {
	s.mu.Lock()
	rs := make([]*runner, 0, len(s.runners))
	for _, r := range s.runners {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(r.stop)
	}
	wg.Wait()
	s.mu.Lock()
	clear(s.runners)
	s.mu.Unlock()
}

func (s *server) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// clients returns the domains' cards, those not open yet as nil.
func (s *server) clients() []settler {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]settler, 0, len(s.runners))
	for _, name := range slices.Sorted(maps.Keys(s.runners)) {
		out = append(out, s.runners[name])
	}
	return out
}

// Rearm re-arms a domain's PIN guard (control socket).
func (s *server) Rearm(name string) error {
	s.mu.Lock()
	r, ok := s.runners[name]
	names := slices.Sorted(maps.Keys(s.runners))
	s.mu.Unlock()
	if !ok {
		if name == "" {
			return fmt.Errorf("name the domain: %s", strings.Join(names, ", "))
		}
		return fmt.Errorf("no domain %q in the configuration (it has %s)", name, strings.Join(names, ", "))
	}
	r.mu.Lock()
	c := r.c
	r.mu.Unlock()
	if c == nil {
		return fmt.Errorf("domain %q has no card open yet", name)
	}
	return c.rearm()
}

// Status reports every domain (control socket).
func (s *server) Status() any {
	var out []clientStatus
	for _, st := range s.clients() {
		out = append(out, st.(*runner).status())
	}
	return statusReport(out)
}

// report is the control socket's status: the process, and each card.
type report struct {
	Process processStatus  `json:"process"`
	Cards   []clientStatus `json:"cards"`
}

type processStatus struct {
	PID        int    `json:"pid"`
	Version    string `json:"version"`
	Goroutines int    `json:"goroutines"`
	HeapBytes  uint64 `json:"heap_bytes"`
}

func statusReport(cards []clientStatus) report {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return report{
		Process: processStatus{PID: os.Getpid(), Version: cli.Version(), Goroutines: runtime.NumGoroutine(), HeapBytes: ms.HeapAlloc},
		Cards:   cards,
	}
}

func (r *runner) stop() {
	r.cancel()
	<-r.done
}

// run opens the domain's card, retrying (5 s, then longer, up to a minute)
// while that fails, and runs it until ctx ends.
func (r *runner) run(ctx context.Context, w *domain.Watcher, log *slog.Logger, stderr io.Writer, poke func()) {
	o, _ := r.dc.options(r.name) // checked when the configuration loaded
	wait := 5 * time.Second
	for {
		c, err := newVMCard(ctx, r.name, o, log, stderr)
		if err == nil {
			c.onChange = poke
			r.mu.Lock()
			r.c, r.openErr = c, nil
			r.mu.Unlock()
			go func() {
				select {
				case <-c.settled:
					r.settle()
				case <-ctx.Done():
				}
				poke()
			}()
			if err := c.run(ctx, w); err != nil {
				log.Error("the card failed", "err", err)
			}
			c.close()
			return
		}
		r.mu.Lock()
		first := r.openErr == nil
		r.openErr = err
		r.mu.Unlock()
		if first {
			log.Error("cannot open the domain's card; trying again", "err", err, "hint", cli.Hint(err), "in", wait.String())
			r.settle() // failing is a settled state too: the service is up
			poke()
		} else {
			log.Debug("cannot open the domain's card", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

func (r *runner) status() clientStatus {
	r.mu.Lock()
	c, openErr := r.c, r.openErr
	r.mu.Unlock()
	if c == nil {
		st := clientStatus{Domain: r.name, Card: cardKind(r.dc.Card)}
		if openErr != nil {
			st.Error = "cannot open the card: " + openErr.Error()
		}
		return st
	}
	return c.status()
}

func (r *runner) settledCh() <-chan struct{} { return r.settled }

// settler is a card that says when it has settled and what it does.
type settler interface {
	settledCh() <-chan struct{}
	status() clientStatus
}

func (c *vmCard) settledCh() <-chan struct{} { return c.settled }

// notifySystemd tells systemd (Type=notify) the service is ready once every
// card has settled (announced, waiting for its VM, or failing and
// retrying), and keeps its status line up to date.
// STOPPING=1 follows when ctx ends. ready, when not nil, is set once
// READY=1 went out.
func notifySystemd(ctx context.Context, cards func() []settler, changed <-chan struct{}, ready *atomic.Bool) error {
	if !sdnotify.Enabled() {
		return nil
	}
	defer sdnotify.Stopping()
	for _, c := range cards() {
		select {
		case <-c.settledCh():
		case <-ctx.Done():
			return nil
		}
	}
	sdnotify.Ready()
	if ready != nil {
		ready.Store(true)
	}
	last := ""
	for {
		var parts []string
		for _, c := range cards() {
			parts = append(parts, c.status().summary())
		}
		if line := strings.Join(parts, "; "); line != last {
			sdnotify.Status(line)
			last = line
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

const controlUsage = `Usage:
  vscclient-go rearm [--control PATH] [DOMAIN]    re-arm the PIN guard of DOMAIN (or of the one card)
  vscclient-go status [--control PATH] [--json]   what each card is doing

Both talk to a running vscclient-go through its control socket: serve's
(default /run/vscardkit/control.sock), or the one a single client opened
with --control PATH. The PIN guard stops passing the guest's PINs to the
token after too many wrong ones; re-arm it once the user knows the PIN.

Examples:
  sudo vscclient-go rearm win11
  vscclient-go status --json | jq '.cards[] | select(.card_announced | not)'
  vscclient-go rearm --control ~/vsc.sock     # a client started with --control ~/vsc.sock

Flags:
`

// controlCommand runs rearm or status.
func controlCommand(ctx context.Context, op string, args []string, stdout, stderr io.Writer) error {
	fs := cli.FlagSet(prog+" "+op, controlUsage, stderr)
	path := fs.String("control", defaultControl(), "the control socket's `path`")
	asJSON := fs.Bool("json", false, "status: print JSON")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	req := control.Request{Op: op}
	switch {
	case op == control.OpRearm && fs.NArg() <= 1:
		req.Domain = fs.Arg(0)
	case op == control.OpStatus && fs.NArg() == 0:
	default:
		return cli.Usagef("%s: unexpected arguments %q", op, strings.Join(fs.Args(), " "))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := control.Do(ctx, *path, req)
	var re *control.RefusedError
	switch {
	case errors.As(err, &re):
		return errors.New(re.Reason)
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return cli.WithHint(err, "is vscclient-go running? serve opens "+defaultControl()+" (systemctl status vscardkit); a single client needs --control PATH")
	case errors.Is(err, os.ErrPermission):
		return cli.WithHint(err, "the control socket belongs to the service: run as root (sudo) or as its user")
	case err != nil:
		return err
	}
	if op == control.OpRearm {
		if req.Domain != "" {
			fmt.Fprintf(stdout, "PIN guard of %s re-armed\n", req.Domain)
		} else {
			fmt.Fprintln(stdout, "PIN guard re-armed")
		}
		return nil
	}
	if *asJSON {
		var v any
		json.Unmarshal(resp.Status, &v)
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	var rep report
	if err := json.Unmarshal(resp.Status, &rep); err != nil {
		return fmt.Errorf("malformed status: %w", err)
	}
	for _, st := range rep.Cards {
		fmt.Fprintln(stdout, st.line())
	}
	return nil
}

// line is a status for people.
func (s clientStatus) line() string {
	var b strings.Builder
	b.WriteString(s.summary())
	fmt.Fprintf(&b, "  card %s", s.Card)
	if s.Chardev != "" {
		fmt.Fprintf(&b, "  chardev %s", s.Chardev)
	}
	if s.Reader != "" {
		fmt.Fprintf(&b, "  reader %q", s.Reader)
	}
	fmt.Fprintf(&b, "  commands %d", s.Commands)
	if s.Error != "" {
		fmt.Fprintf(&b, "  error: %s", s.Error)
	}
	return b.String()
}

// onSignal calls fn on each sig until ctx ends.
func onSignal(ctx context.Context, sig os.Signal, fn func()) error {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
			fn()
		}
	}
}
