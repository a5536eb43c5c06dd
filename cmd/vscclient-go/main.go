// Command vscclient-go gives a QEMU/libvirt guest a smart card that lives
// outside it: the card in a PC/SC reader on this host, or an emulated PIV
// card whose keys stay in a PKCS#11 token (or, for demos, in memory). It
// connects to the chardev of QEMU's ccid-card-passthru device and speaks
// the VSCard protocol; to the guest it is the card.
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vscardkit/vscardkit/internal/bridge"
	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/configcli"
	"github.com/vscardkit/vscardkit/internal/control"
	"github.com/vscardkit/vscardkit/internal/domain"
	"github.com/vscardkit/vscardkit/internal/piv"
)

const prog = "vscclient-go"

const usage = `Usage:
  vscclient-go [flags] HOST PORT
  vscclient-go [flags] --connect tcp://HOST:PORT | unix:PATH | tls://HOST:PORT
  vscclient-go [flags] --domain NAME [--libvirt URI]
  vscclient-go serve --config FILE   many libvirt domains, each with its card (see serve --help)
  vscclient-go rearm [DOMAIN]        re-arm a PIN guard through the control socket
  vscclient-go status                what each card is doing, through the control socket
  vscclient-go readers               list PC/SC readers and their cards
  vscclient-go config [flags]        libvirt XML / QEMU argv for the VM (see config --help)

vscclient-go connects to QEMU's ccid-card-passthru chardev and is the guest's
smart card until it is stopped (SIGINT or SIGTERM remove the card and the
reader from the guest first). When QEMU goes away (VM restart, migration,
socket reset) it reconnects and announces the card again. With --domain it
asks libvirt where the domain's smartcard chardev is, and follows the domain:
connected within a moment of each start, idle while it is off.

Cards (--card):
  pcsc                 the first PC/SC reader that holds a card (default)
  pcsc:NAME            the reader named NAME, or the one whose name contains
                       NAME, or the reader at index NAME (0, 1, ...)
  pkcs11:URI           an emulated PIV card whose certificates and keys are in
                       a PKCS#11 token (RFC 7512 URI); the guest's PIN goes to
                       the token, keys never leave it
  soft                 an emulated PIV card with a fresh key and self-signed
                       certificate in memory, PIN 123456 (for demos and tests)
  soft:DIR             the same with 9a.crt/9a.key ... PEM files from DIR

Examples:
  # The card in the first reader, to the VM whose chardev is on port 2001
  vscclient-go 127.0.0.1 2001

  # A named reader, shared with other applications on this host
  vscclient-go --card 'pcsc:YubiKey' --shared --connect tcp://[::1]:2001

  # Certificates and keys of a softhsm2 token, as a PIV card
  vscclient-go --connect tcp://127.0.0.1:2001 \
      --card 'pkcs11:token=alice?module-path=/usr/lib/softhsm/libsofthsm2.so'

  # Over TLS, with the client certificate QEMU's verify-peer=on asks for
  vscclient-go --connect tls://vmhost.example:2001 \
      --tls-ca ca-cert.pem --tls-cert client-cert.pem --tls-key client-key.pem

  # See every APDU (PINs redacted)
  vscclient-go --apdu-trace --card soft 127.0.0.1 2001

  # The VM libvirt calls win11, whatever port its chardev has, through its restarts
  vscclient-go --domain win11 --card 'pcsc:YubiKey'

  # A VM on another machine's libvirt (its chardev must listen where this one reaches)
  vscclient-go --domain ci-runner --libvirt qemu+ssh://vmhost/system \
      --tls-ca ca-cert.pem --tls-cert client-cert.pem --tls-key client-key.pem

After too many wrong PINs from the guest (--max-wrong-pins), an emulated card
stops passing PINs to the token so that a guest cannot lock it; ` + rearmHelp + `

Flags:
`

func main() {
	if os.Getenv("GOGC") == "" {
		// The live heap is tiny (a card, a connection) and garbage
		// comes with every command: collect at 25% growth rather than
		// 100%, which keeps the heap near 1 MiB instead of the runtime's
		// 4 MiB minimum, for a GC cost that the benchmarks do not show.
		debug.SetGCPercent(25)
	}
	os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// runMain runs vscclient-go with args and returns the exit code.
func runMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 {
		switch args[0] {
		case "config":
			return configcli.Main(ctx, args[1:], stdin, stdout, stderr)
		case "readers":
			return cli.Report(stderr, prog, listReaders(ctx, args[1:], stdout, stderr))
		case "serve":
			return cli.Report(stderr, prog, serve(ctx, args[1:], stderr))
		case "rearm", "status":
			return cli.Report(stderr, prog, controlCommand(ctx, args[0], args[1:], stdout, stderr))
		}
	}
	return cli.Report(stderr, prog, run(ctx, args, stderr))
}

type options struct {
	connect       string
	serve         bool // a domain of vscclient-go serve
	domain        string
	libvirt       string
	control       string
	card          string
	shared        bool
	slots         []string
	readerName    string
	pinFile       string
	maxWrongPINs  int
	allowFinalTry bool
	tlsCA         string
	tlsCert       string
	tlsKey        string
	tlsServerName string
	logLevel      string
	logJSON       bool
	apduTrace     bool
	traceSecrets  bool
	maxBackoff    time.Duration
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.FlagSet(prog, usage, stderr)
	fs.StringVar(&o.connect, "connect", "", "the chardev to connect to: tcp://HOST:PORT, tcp://[IPv6]:PORT, unix:PATH or tls://HOST:PORT (or give HOST PORT)")
	fs.StringVar(&o.domain, "domain", "", "the libvirt domain `name` whose <smartcard mode='passthrough'> to serve, followed through its restarts (instead of HOST PORT)")
	fs.StringVar(&o.libvirt, "libvirt", "", "with --domain: the libvirt `uri` (default qemu:///system; qemu:///session, qemu+ssh://HOST/system, qemu+tls://HOST/system)")
	fs.StringVar(&o.control, "control", "", "serve a control socket at `path` (vscclient-go rearm, status)")
	fs.StringVar(&o.card, "card", "pcsc", "the `card` to give the guest: pcsc, pcsc:NAME, pkcs11:URI, soft or soft:DIR")
	fs.BoolVar(&o.shared, "shared", false, "open the PC/SC card in shared mode (default: exclusive, since the guest owns the card's state)")
	fs.Var((*stringList)(&o.slots), "slot", "with pkcs11: put a certificate in a PIV slot, e.g. 9a=id:01, 9c=label:Signing, 9e=none (repeatable)")
	fs.StringVar(&o.readerName, "reader-name", "", "the reader `name` announced to QEMU (default: the PC/SC reader's, or \"vscardkit virtual PIV\")")
	fs.StringVar(&o.pinFile, "pin-file", "", "with soft: read the card's PIN from the first line of `file` (default PIN 123456)")
	fs.IntVar(&o.maxWrongPINs, "max-wrong-pins", piv.DefaultMaxWrongPINs, "with pkcs11 and soft: after this many wrong PINs in a row, stop passing PINs to the token until "+rearmFlag)
	fs.BoolVar(&o.allowFinalTry, "allow-final-pin-try", false, "let the guest try a PIN when the token says one try is left (it may block the token)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "with tls://: verify the server with the CA certificates in `file` (default: the system's)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "with tls://: the client certificate `file` (PEM), for QEMU's verify-peer=on")
	fs.StringVar(&o.tlsKey, "tls-key", "", "with tls://: the client certificate's private key `file` (PEM)")
	fs.StringVar(&o.tlsServerName, "tls-server-name", "", "with tls://: the `name` the server certificate must carry (default: the host in --connect)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.BoolVar(&o.logJSON, "log-json", false, "log JSON lines")
	fs.BoolVar(&o.apduTrace, "apdu-trace", false, "log every APDU and its response (PINs, and the answers to decryption and key agreement, are redacted)")
	fs.BoolVar(&o.traceSecrets, "trace-secrets", false, "with --apdu-trace: do not redact PINs and decrypted secrets (never on a shared machine)")
	fs.DurationVar(&o.maxBackoff, "max-backoff", time.Second, "the longest wait between reconnection attempts")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	if o.libvirt != "" && o.domain == "" {
		return nil, cli.Usagef("--libvirt goes with --domain")
	}
	switch {
	case o.domain != "" && (fs.NArg() > 0 || o.connect != ""):
		return nil, cli.Usagef("give either --domain or where the VM is (HOST PORT or --connect), not both")
	case o.domain != "":
	case fs.NArg() == 2 && o.connect == "":
		// A bracketed IPv6 host ("[::1]") is taken as it is.
		o.connect = "tcp://" + net.JoinHostPort(strings.Trim(fs.Arg(0), "[]"), fs.Arg(1))
	case fs.NArg() == 0 && o.connect != "":
	case fs.NArg() == 0:
		return nil, cli.WithHint(cli.Usagef("where is the VM? give HOST PORT, --connect or --domain"), "e.g. vscclient-go --domain win11, or vscclient-go 127.0.0.1 2001")
	default:
		return nil, cli.Usagef("give either HOST PORT or --connect, not %q", strings.Join(fs.Args(), " "))
	}
	if o.traceSecrets && !o.apduTrace {
		return nil, cli.Usagef("--trace-secrets goes with --apdu-trace")
	}
	if fs.NArg() == 2 {
		if err := checkPort(fs.Arg(1)); err != nil {
			return nil, cli.WithHint(cli.Usagef("%v", err), portHint)
		}
	}
	if err := checkTLS(o); err != nil {
		return nil, err
	}
	return o, nil
}

// checkTLS checks that the client certificate and its key come together
// (flags, or a serve configuration's domain).
func checkTLS(o *options) error {
	if o.tlsCert != "" && o.tlsKey == "" {
		return cli.WithHint(cli.Usagef("--tls-cert needs --tls-key, the certificate's private key"), "add --tls-key FILE (client-key.pem)")
	}
	if o.tlsKey != "" && o.tlsCert == "" {
		return cli.WithHint(cli.Usagef("--tls-key needs --tls-cert, the certificate it goes with"), "add --tls-cert FILE (client-cert.pem)")
	}
	return nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := cli.NewLogger(stderr, o.logLevel, o.logJSON)
	if err != nil {
		return err
	}
	var w *domain.Watcher
	where := o.connect
	if o.domain != "" {
		if err := lookupDomain(ctx, o.libvirt, o.domain, log); err != nil {
			return err
		}
		if w, err = domain.NewWatcher(o.libvirt, &domain.Options{Logger: log}); err != nil {
			return libvirtErr(o.libvirt, err)
		}
		defer w.Close()
		where = "domain " + o.domain + " on " + uriName(o.libvirt)
	}
	c, err := newVMCard(ctx, o.domain, o, log, stderr)
	if err != nil {
		return err
	}
	defer c.close()
	changed := make(chan struct{}, 1)
	c.onChange = func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	log.Info("starting", "version", cli.Version(), "host", where, "card", cardKind(o.card))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.run(gctx, w) })
	// Re-arm on SIGHUP (there is none on Windows: use --control).
	g.Go(func() error {
		return onSignal(gctx, syscall.SIGHUP, func() {
			if err := c.rearm(); err != nil {
				log.Warn("SIGHUP: nothing to re-arm", "why", err)
			}
		})
	})
	if o.control != "" {
		l, err := control.Listen(o.control)
		if err != nil {
			return cli.WithHint(err, "another vscclient-go serves "+o.control+", or its directory is missing")
		}
		g.Go(func() error { return control.Serve(gctx, l, singleControl{c}, log) })
	}
	g.Go(func() error { return notifySystemd(gctx, func() []settler { return []settler{c} }, changed, nil) })
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("stopped", "commands", c.b.Stats().Commands)
	return nil
}

// singleControl is the control socket's handler for one card.
type singleControl struct{ c *vmCard }

func (h singleControl) Rearm(domain string) error {
	if domain != "" && domain != h.c.name {
		return fmt.Errorf("this vscclient-go serves %s, not %s", cmp.Or(h.c.name, "one card"), domain)
	}
	return h.c.rearm()
}

func (h singleControl) Status() any { return statusReport([]clientStatus{h.c.status()}) }

// cardKind names the card source without what may follow its colon (a
// PKCS#11 URI can be long; it holds no PIN: certsrc refuses pin-value), in
// lower case: a card's kind, like a URI's scheme, takes any case (PKCS11:).
func cardKind(card string) string {
	kind, _, _ := strings.Cut(card, ":")
	return strings.ToLower(kind)
}

// cardArg is what follows the card's kind and its colon.
func cardArg(card string) string {
	_, arg, _ := strings.Cut(card, ":")
	return arg
}

// parseTarget parses --connect into the bridge's target.
func parseTarget(s string) (bridge.Target, error) {
	hint := connectHint
	switch {
	case strings.HasPrefix(s, "tcp://"), strings.HasPrefix(s, "tls://"):
		addr := s[len("tcp://"):]
		if err := checkHostPort(s, addr); err != nil {
			return bridge.Target{}, err
		}
		return bridge.Target{Network: "tcp", Address: addr, TLS: strings.HasPrefix(s, "tls://")}, nil
	case strings.HasPrefix(s, "unix:"):
		path := strings.TrimPrefix(strings.TrimPrefix(s, "unix:"), "//")
		if path == "" {
			return bridge.Target{}, cli.WithHint(cli.Usagef("--connect %q: no socket path", s), hint)
		}
		return bridge.Target{Network: "unix", Address: path}, nil
	case !strings.Contains(s, "://") && strings.Contains(s, ":"):
		// HOST:PORT or [IPv6]:PORT: TCP, like HOST PORT.
		if err := checkHostPort(s, s); err != nil {
			return bridge.Target{}, err
		}
		return bridge.Target{Network: "tcp", Address: s}, nil
	}
	return bridge.Target{}, cli.WithHint(cli.Usagef("--connect %q: unknown scheme", s), hint)
}
