// Command fake-ccid-server is a fake QEMU: it listens where QEMU's
// ccid-card-passthru chardev would, answers a VSCard client exactly as QEMU
// 7.2 does, and shows what the client does. It can play the guest (send a
// script of APDUs) or hand the client's card to the local pcscd through
// vsmartcard's vpcd driver, so any PC/SC program can use it.
package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/tlsconfig"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

const prog = "fake-ccid-server"

const usage = `Usage: fake-ccid-server [flags]

A fake QEMU host for VSCard clients (vscclient-go, libcacard's vscclient):
it listens where QEMU's ccid-card-passthru chardev would, answers exactly as
QEMU 7.2 does, and prints what the client does: reader added, card inserted
with its ATR, each APDU with its response and round-trip time, card removed,
errors.

Examples:
  # Wait for a client on QEMU's usual port and show what it does
  fake-ccid-server

  # Play the guest: once a card is present, run a script of APDUs
  fake-ccid-server --script select-piv.apdu --once
  #   select-piv.apdu: one APDU per line in hex (one word, or bytes spaced
  #   or colon-separated as opensc-tool prints them), '#' comments, and an
  #   optional expected status word (XX matches any byte):
  #     00A4040009A00000030800001000 9000
  #     00 CB 3F FF 05 5C 03 5F C1 05 61XX
  #   Each step prints its status word and what it means (63C1: wrong PIN,
  #   1 try left).

  # Hand the client's card to the local pcscd (vsmartcard-vpcd reader); while
  # the reader is not reachable it says so and keeps trying
  fake-ccid-server --vpcd 127.0.0.1:35963
  opensc-tool --list-readers

  # JSON lines, IPv6, TLS with client certificates (as QEMU's verify-peer=on)
  fake-ccid-server --json --listen '[::1]:2001' \
      --tls-cert server-cert.pem --tls-key server-key.pem --tls-ca ca-cert.pem

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.Report(os.Stderr, prog, err))
}

type options struct {
	listen       string
	once         bool
	json         bool
	script       string
	getResponse  bool
	timeout      time.Duration
	vpcd         string
	nodelay      bool
	traceSecrets bool
	logLevel     string
	tlsCert      string
	tlsKey       string
	tlsCA        string
	addr         listenAddr // --listen, parsed
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.FlagSet(prog, usage, stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:2001", "`address` to listen on: HOST:PORT, [IPv6]:PORT or unix:PATH (tcp://, tls:// and unix:// as --connect writes them are taken too)")
	fs.BoolVar(&o.once, "once", false, "exit when the first client leaves")
	fs.BoolVar(&o.json, "json", false, "print events as JSON lines")
	fs.StringVar(&o.script, "script", "", "once a card is present, send the APDUs in `FILE` and exit 0 if every expectation held, 1 otherwise")
	fs.BoolVar(&o.getResponse, "get-response", false, "with --script: follow 61xx with GET RESPONSE, as a guest's middleware does, and check the whole response")
	fs.DurationVar(&o.timeout, "timeout", 0, "with --script: give up after this `duration` (0: wait for the card forever)")
	fs.StringVar(&o.vpcd, "vpcd", "", "connect to vsmartcard's vpcd driver at `HOST:PORT` and present the client's card to the local pcscd")
	fs.BoolVar(&o.nodelay, "nodelay", false, "set TCP_NODELAY, as QEMU's chardev option nodelay=on (libvirt does not set it)")
	fs.BoolVar(&o.traceSecrets, "trace-secrets", false, "show PINs (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER) and decrypted secrets in events")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve TLS with this certificate `file` (PEM)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the TLS certificate's private key `file` (PEM)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "require client certificates signed by the CA in `file` (as QEMU's verify-peer=on)")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	addr, err := parseListen(o.listen)
	if err != nil {
		return nil, err
	}
	if addr.tls && o.tlsCert == "" && o.tlsKey == "" {
		return nil, cli.WithHint(cli.Usagef("--listen %s needs --tls-cert and --tls-key", o.listen),
			"make them with: vscclient-go config tls-certs DIR")
	}
	o.addr = addr
	if o.vpcd != "" {
		host, port, err := net.SplitHostPort(o.vpcd)
		if err == nil {
			var n int
			if n, err = checkPort(port); err == nil && n == 0 {
				err = errors.New("port 0")
			}
		}
		if err != nil || host == "" {
			return nil, cli.WithHint(cli.Usagef("--vpcd %q: want the vpcd reader's HOST:PORT", o.vpcd), "vpcd listens on 127.0.0.1:35963 for slot 0 (see /etc/reader.conf.d/vpcd)")
		}
	}
	if o.tlsCert != "" && o.tlsKey == "" {
		return nil, cli.WithHint(cli.Usagef("--tls-cert needs --tls-key, the certificate's private key"), "add --tls-key FILE (server-key.pem)")
	}
	if o.tlsKey != "" && o.tlsCert == "" {
		return nil, cli.WithHint(cli.Usagef("--tls-key needs --tls-cert, the certificate it goes with"), "add --tls-cert FILE (server-cert.pem)")
	}
	if o.tlsCA != "" && o.tlsCert == "" {
		return nil, cli.Usagef("--tls-ca needs --tls-cert and --tls-key")
	}
	if o.script != "" && o.vpcd != "" {
		return nil, cli.Usagef("--script and --vpcd cannot be used together")
	}
	if o.getResponse && o.script == "" {
		return nil, cli.Usagef("--get-response applies to --script")
	}
	if o.timeout != 0 && o.script == "" {
		return nil, cli.Usagef("--timeout applies to --script")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := cli.NewLogger(stderr, o.logLevel, o.json)
	if err != nil {
		return err
	}
	var script *script
	if o.script != "" {
		if script, err = loadScript(o.script); err != nil {
			return err
		}
		script.getResponse = o.getResponse
	}
	l, err := listen(o.addr)
	if err != nil {
		return err
	}
	srv := &vscardtest.Server{Listener: l, Logger: log}
	srv.Config.NoDelay = o.nodelay
	srv.Config.Logger = log
	if o.tlsCert != "" {
		if srv.TLS, err = tlsconfig.Server(o.tlsCert, o.tlsKey, o.tlsCA); err != nil {
			l.Close()
			return err
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := newPrinter(stdout, o.json, o.traceSecrets)
	cardIn := make(chan struct{}, 1)
	changed := make(chan struct{}, 1)
	signal := func(ch chan struct{}) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	srv.Config.OnEvent = func(e vscardtest.Event) {
		out.event(e)
		switch e.Kind {
		case vscardtest.EventCardInserted:
			signal(cardIn)
			signal(changed)
		case vscardtest.EventConnected, vscardtest.EventCardRemoved, vscardtest.EventReaderRemoved:
			signal(changed)
		case vscardtest.EventDisconnected:
			signal(changed)
			if o.once {
				cancel()
			}
		}
	}
	srv.Start()
	defer srv.Close()
	log.Info("listening", "addr", l.Addr().String(), "tls", srv.TLS != nil)

	// At most one worker: the script or the vpcd bridge. run waits for it.
	var result chan error
	switch {
	case script != nil:
		result = make(chan error, 1)
		go func() { result <- script.run(ctx, srv, cardIn, o.timeout, out) }()
	case o.vpcd != "":
		result = make(chan error, 1)
		go func() { result <- serveVPCD(ctx, srv, o.vpcd, changed, log) }()
	}
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		if result != nil {
			if err := <-result; err != nil && script != nil {
				return err
			}
		}
		return nil
	}
}
