package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/vscardkit/vscardkit/certsrc"
	"github.com/vscardkit/vscardkit/internal/bridge"
	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/pcscsource"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
	"github.com/vscardkit/vscardkit/internal/tokenstore"
	"github.com/vscardkit/vscardkit/reader"
)

// card is an opened --card: the bridge's source, how to re-arm its PIN guard
// (nil for a PC/SC card, whose PIN the real card guards), and how to
// release it.
type card struct {
	src     bridge.Source
	rearm   func()
	release func()
}

// openCard builds the card source that --card names.
func openCard(ctx context.Context, o *options, log *slog.Logger, stderr io.Writer) (*card, error) {
	src, release, rearm, err := openSource(ctx, o, log, stderr)
	if err != nil {
		return nil, err
	}
	return &card{src: src, rearm: rearm, release: release}, nil
}

// checkCard checks that the card options go together.
func checkCard(o *options) error {
	kind := cardKind(o.card)
	switch {
	case kind != "pcsc" && kind != "soft" && kind != "pkcs11":
		return cli.WithHint(cli.Usagef("--card %q: unknown card", o.card), "use pcsc, pcsc:NAME, pkcs11:URI, soft or soft:DIR")
	case kind != "pkcs11" && len(o.slots) > 0:
		return cli.Usagef("--slot applies to --card pkcs11:...")
	case kind != "pcsc" && o.shared:
		return cli.Usagef("--shared applies to --card pcsc")
	case kind != "soft" && o.pinFile != "":
		return cli.Usagef("--pin-file applies to --card soft (a token's PIN comes from the guest)")
	case o.maxWrongPINs < 1:
		return cli.WithHint(cli.Usagef("--max-wrong-pins %d: the PIN guard needs at least 1", o.maxWrongPINs),
			fmt.Sprintf("it stops passing the guest's PINs to the token after that many wrong ones in a row (default %d); the token's own limit applies as well", piv.DefaultMaxWrongPINs))
	}
	return nil
}

func openSource(ctx context.Context, o *options, log *slog.Logger, stderr io.Writer) (bridge.Source, func(), func(), error) {
	if err := checkCard(o); err != nil {
		return nil, nil, nil, err
	}
	kind, arg := cardKind(o.card), cardArg(o.card)
	switch kind {
	case "pcsc":
		src, release, err := openPCSC(o, arg, log)
		return src, release, nil, err
	case "soft":
		st, err := openSoft(arg, o.pinFile, log, stderr)
		if err != nil {
			return nil, nil, nil, err
		}
		src, rearm := pivSource(st, o, "vscardkit virtual PIV", log)
		return src, func() {}, rearm, nil
	case "pkcs11":
		st, err := openPKCS11(ctx, o, log, stderr)
		if err != nil {
			return nil, nil, nil, err
		}
		src, rearm := pivSource(tokenstore.New(st), o, "vscardkit virtual PIV ("+st.Token().Label+")", log)
		return src, func() { st.Close() }, rearm, nil
	}
	return nil, nil, nil, cli.WithHint(cli.Usagef("--card %q: unknown card", o.card), "use pcsc, pcsc:NAME, pkcs11:URI, soft or soft:DIR")
}

func openSoft(dir, pinFile string, log *slog.Logger, stderr io.Writer) (*softstore.Store, error) {
	opts := softstore.Options{}
	if pinFile != "" {
		pin, err := cli.ReadPINFile(pinFile)
		if err != nil {
			return nil, err
		}
		if w := cli.PINFileWarning(pinFile); w != "" {
			log.Warn(w)
		}
		opts.PIN = pin
	}
	var (
		st  *softstore.Store
		err error
	)
	if dir == "" {
		st, err = softstore.Generate(opts)
	} else {
		st, err = softstore.Load(dir, opts)
	}
	if err != nil {
		return nil, cli.WithHint(err, "soft:DIR reads 9a.crt and 9a.key (and 9c, 9d, 9e) PEM files")
	}
	describeSlots(stderr, log, "soft card", st)
	if pinFile == "" {
		fmt.Fprintf(stderr, "soft card: PIN %s (the default; --pin-file sets another)\n", softstore.DefaultPIN)
	}
	return st, nil
}

func openPKCS11(ctx context.Context, o *options, log *slog.Logger, stderr io.Writer) (*certsrc.Store, error) {
	u, err := certsrc.ParseURI(o.card)
	if err != nil {
		return nil, cli.WithHint(err, "e.g. --card 'pkcs11:token=alice?module-path=/usr/lib/softhsm/libsofthsm2.so' (quote it for the shell)")
	}
	// PINRetries -1: the token's own count (PKCS#11 has none) is left to the
	// PIN guard, which knows how many wrong PINs it allows; certsrc still
	// reports the token's final-try and locked flags.
	cfg := certsrc.Config{Logger: log, PINRetries: -1}
	for _, s := range o.slots {
		slot, sel, err := certsrc.ParseSlotMapping(s)
		if err != nil {
			return nil, cli.WithHint(cli.Usagef("--slot %q: %v", s, err), "write --slot 9a=id:01, 9c=label:Signing or 9e=none")
		}
		if cfg.Slots == nil {
			cfg.Slots = map[certsrc.Slot]certsrc.Selector{}
		}
		cfg.Slots[slot] = sel
	}
	st, err := certsrc.Open(ctx, u, cfg)
	if errors.Is(err, certsrc.ErrNoPKCS11Support) {
		return nil, cli.WithHint(err, "this vscclient-go was built without cgo; rebuild it with CGO_ENABLED=1 and a C compiler (mingw-w64 on Windows) for --card pkcs11:..., or use --card pcsc")
	}
	if errors.Is(err, certsrc.ErrNoModule) {
		return nil, cli.WithHint(err, "name the module's file in the URI, e.g. ?module-path=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so (OpenSC) or ?module-path=/usr/lib/softhsm/libsofthsm2.so (softhsm2)")
	}
	if err != nil {
		module, _ := u.ModuleFile()
		return nil, cli.WithHint(err, "list the module's tokens and objects with: pkcs11-tool --module "+cmp.Or(module, "MODULE")+" --list-token-slots --list-objects")
	}
	fmt.Fprintf(stderr, "token %q (serial %s)\n", st.Token().Label, st.Token().Serial)
	describeSlots(stderr, log, "token", tokenstore.New(st))
	for _, lo := range st.LeftOut() {
		hint := "the card cannot hold its key"
		if lo.Slot != 0 {
			hint = fmt.Sprintf("--slot %s=id:%x places it", strings.ToLower(lo.Slot.String()), lo.ID)
		}
		log.Warn("a certificate of the token is not on the card", "id", fmt.Sprintf("%x", lo.ID), "label", lo.Label,
			"subject", lo.Certificate.Subject.String(), "why", lo.Reason, "hint", hint)
	}
	return st, nil
}

// describeSlots prints which certificate each PIV slot holds, and warns
// about what a guest may not take: no certificate at all, a CA certificate.
func describeSlots(w io.Writer, log *slog.Logger, what string, st piv.Store) {
	n := 0
	for _, slot := range piv.Slots {
		der, err := st.Certificate(slot)
		if err != nil {
			continue
		}
		n++
		desc := "unparsable certificate"
		if cert, err := x509.ParseCertificate(der); err == nil {
			desc = fmt.Sprintf("%s, %s", cert.Subject, cert.PublicKeyAlgorithm)
			if cert.BasicConstraintsValid && cert.IsCA {
				log.Warn("a CA certificate is on the card; clients such as Windows logon may refuse it", "slot", slot.String(), "subject", cert.Subject.String(),
					"hint", "make an end-entity certificate: openssl req -x509 -addext basicConstraints=critical,CA:FALSE ...")
			}
		}
		sum := sha256.Sum256(der)
		fmt.Fprintf(w, "%s: slot %v: %s, SHA-256 %X\n", what, slot, desc, sum[:8])
	}
	if n == 0 {
		log.Warn("the card has no certificate: the guest sees an empty PIV card", "card", what)
	}
}

// pivCard is the PIV applet as the bridge's card.
type pivCard struct{ a *piv.Applet }

func (c pivCard) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	return c.a.Transmit(ctx, cmd)
}

// IgnoresDeadline: the applet looks at its context only before a command.
func (pivCard) IgnoresDeadline() {}

// Reset is a card reset: the PIN is no longer verified.
func (c pivCard) Reset(context.Context) error {
	c.a.Reset()
	return nil
}

// pivSource presents an emulated PIV card over st, behind a PIN guard; the
// returned function re-arms the guard.
func pivSource(st piv.Store, o *options, defaultName string, log *slog.Logger) (bridge.Source, func()) {
	guard := piv.NewPINGuard(st, piv.GuardOptions{MaxWrongPINs: o.maxWrongPINs, AllowFinalTry: o.allowFinalTry, RearmHint: rearmHint(o), Logger: log})
	applet := piv.New(guard, piv.Options{Logger: log})
	name := o.readerName
	if name == "" {
		name = defaultName
	}
	return bridge.NewStatic(name, piv.ATR(), pivCard{applet}), guard.Rearm
}

func openPCSC(o *options, arg string, log *slog.Logger) (bridge.Source, func(), error) {
	src := pcscsource.New(pcscsource.Config{
		Selector: reader.ParseSelector(arg),
		Shared:   o.shared,
		Name:     o.readerName,
		Logger:   log,
	})
	return src, func() {}, nil
}

// rearmHint says how the user re-arms the PIN guard of the vscclient-go o
// describes.
func rearmHint(o *options) string {
	switch {
	case o.serve:
		return "vscclient-go rearm " + o.domain
	case o.control != "" && o.domain != "":
		return fmt.Sprintf("vscclient-go rearm --control %s %s, or systemctl reload vscclient-go@%s", o.control, o.domain, o.domain)
	case o.control != "":
		return "vscclient-go rearm --control " + o.control
	case o.domain != "" && runtime.GOOS != "windows":
		return fmt.Sprintf("kill -HUP %d (systemctl reload vscclient-go@%s under systemd)", os.Getpid(), o.domain)
	case runtime.GOOS != "windows":
		return fmt.Sprintf("kill -HUP %d", os.Getpid())
	}
	return "restart vscclient-go (start it with --control PATH to re-arm with vscclient-go rearm)"
}
