// Command demo-vm is `make demo-vm`: it boots a real Linux guest under
// QEMU (the minimal guest of package internal/guest, TCG, a few seconds)
// with the smartcard exactly as libvirt makes it, gives the guest a card
// with the built vscclient-go (an emulated PIV card with its key in memory,
// --card soft, unless --card says otherwise), and shows what the guest's
// own PC/SC stack sees: QEMU's reader, the card's ATR, the PIV objects
// OpenSC's PKCS#11 module lists, and a signature the card makes after the
// guest logs in with the PIN, which the host then verifies against the
// certificate the guest read.
//
// Usage:
//
//	demo-vm [--bin DIR] [--card CARD] [--pin-file FILE] [--console]
//
// The first run builds the guest image, downloading the Debian kernel
// package with apt-get (cached under ~/.cache/vscardkit/guest).
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vscardkit/vscardkit/internal/cli"
	e2e "github.com/vscardkit/vscardkit/internal/e2e/guest"
	"github.com/vscardkit/vscardkit/internal/guest"
	"github.com/vscardkit/vscardkit/internal/procnet"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

const prog = "demo-vm"

// challenge is what the guest asks the card to sign: its SHA-256, signed
// as a hash (ECDSA) or as raw bytes in PKCS #1 v1.5 padding (RSA).
const challenge = "vscardkit demo-vm: sign me"

// defaultPIN is the soft card's PIN (and softhsm2 test tokens').
const defaultPIN = "123456"

// options are demo-vm's flags.
type options struct {
	bin     string
	card    string
	pinFile string
	console bool
	timeout time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "the `directory` holding the built vscclient-go")
	flag.StringVar(&o.card, "card", "soft", "the `card` vscclient-go gives the guest (see vscclient-go --help)")
	flag.StringVar(&o.pinFile, "pin-file", "", "read the PIN the guest logs in with from the first line of `file` (default 123456, the soft card's)")
	flag.BoolVar(&o.console, "console", false, "show the guest's serial console as it runs")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "give up after this long (the first run also builds the guest image)")
	flag.Parse()
	if flag.NArg() > 0 {
		os.Exit(cli.Report(os.Stderr, prog, cli.Usagef("unexpected arguments %q", flag.Args())))
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	code := cli.Report(os.Stderr, prog, run(ctx, o, os.Stdout))
	cancel()
	os.Exit(code)
}

// run runs the demo and writes what the guest saw to out.
func run(ctx context.Context, o options, out io.Writer) error {
	start := time.Now()
	client := filepath.Join(o.bin, xmlconfig.ClientProgram)
	if _, err := os.Stat(client); err != nil {
		return cli.WithHint(err, "build the commands first: make build")
	}
	pin := defaultPIN
	if o.pinFile != "" {
		p, err := cli.ReadPINFile(o.pinFile)
		if err != nil {
			return err
		}
		pin = p
	}

	fmt.Fprintln(out, "== the guest image (a Debian kernel, busybox, pcscd with libccid, OpenSC)")
	fmt.Fprintln(out, "   (built once, the first time with the Debian kernel package that apt-get downloads; cached after)")
	img, err := guest.Build(ctx, guest.BuildOptions{
		Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return cli.WithHint(err, "the guest is built from the host's packages (make deps) and a Debian kernel package that apt-get downloads (apt-get update if apt has no lists)")
	}
	how := "built"
	if img.Cached {
		how = "cached"
	}
	fmt.Fprintf(out, "   kernel %s, %s: %s\n", img.KernelRelease, how, filepath.Dir(img.Initramfs))

	port, err := freePort()
	if err != nil {
		return err
	}
	c := e2e.Smartcard(port)
	qemuArgs, err := c.QEMUArgs()
	if err != nil {
		return err
	}
	clientArgs, err := c.ClientArgs()
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(challenge))
	opts := guest.BootOptions{
		Scenario:      "wait_card,readers,piv",
		Params:        map[string]string{"pin": pin, "keyid": "01", "challenge": hex.EncodeToString(digest[:])},
		LibvirtUSB:    true,
		ExtraQEMUArgs: qemuArgs,
	}
	if o.console {
		opts.Console = prefixWriter{w: out, prefix: "   | "}
	}
	fmt.Fprintln(out, "== QEMU with the smartcard as libvirt makes it (xmlconfig; the chardev has no nodelay):")
	fmt.Fprintf(out, "   qemu-system-x86_64 ... %s\n", strings.Join(qemuArgs, " "))
	vm, err := guest.Boot(ctx, img, opts)
	if err != nil {
		return cli.WithHint(err, "QEMU comes with make deps (qemu-system-x86)")
	}
	defer vm.Close()
	addr := net.JoinHostPort(xmlconfig.DefaultHost, strconv.Itoa(port))
	if err := procnet.WaitListening(ctx, addr, vm.Done()); err != nil {
		return fmt.Errorf("%w\n%s", err, vm.Console())
	}

	args := append([]string{"--card", o.card, "--log-level", "warn"}, clientArgs...)
	fmt.Fprintf(out, "== %s %s\n", xmlconfig.ClientProgram, strings.Join(args, " "))
	cmd := exec.Command(client, args...)
	var clientOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &clientOut, &clientOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	clientDone := make(chan error, 1)
	go func() { clientDone <- cmd.Wait() }()
	stopClient := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-clientDone:
			return err
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-clientDone
			return errors.New("did not stop within 5 s of SIGTERM")
		}
	}

	res, werr := watch(ctx, vm, out)
	cerr := stopClient()
	for _, l := range strings.Split(strings.TrimSpace(clientOut.String()), "\n") {
		if strings.Contains(l, "slot") || strings.Contains(l, "PIN") || strings.HasPrefix(l, "token") {
			fmt.Fprintf(out, "   %s: %s\n", xmlconfig.ClientProgram, l)
		}
	}
	if werr != nil {
		return fmt.Errorf("the guest: %w\n--- guest console:\n%s\n--- %s:\n%s", werr, vm.Console(), xmlconfig.ClientProgram, clientOut.String())
	}
	if err := tell(out, res.Values, clientOut.String()); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("%s did not exit cleanly on SIGTERM: %v\n%s", xmlconfig.ClientProgram, cerr, clientOut.String())
	}
	fmt.Fprintf(out, "\n(the whole demo took %.1f s)\n", time.Since(start).Seconds())
	return nil
}

// watch prints the guest's progress as it happens and returns its
// results once it has powered off.
func watch(ctx context.Context, vm *guest.VM, out io.Writer) (guest.Result, error) {
	for _, ev := range []struct{ name, say string }{
		{"reader", "the guest's pcscd lists QEMU's reader"},
		{"card-present", "the guest sees the card"},
	} {
		m, err := vm.WaitEvent(ctx, ev.name)
		if err != nil {
			break // Wait says why
		}
		fmt.Fprintf(out, "   %4.1f s  %s\n", m.At.Seconds(), ev.say)
	}
	return vm.Wait(ctx)
}

// fingerprint is how vscclient-go reports the certificate it serves in
// slot 9A: the first 8 bytes of its SHA-256.
var fingerprint = regexp.MustCompile(`slot 9A: .*SHA-256 ([0-9A-F]{16})`)

// tell prints what the guest saw and verifies its signature.
func tell(out io.Writer, v map[string]string, clientOut string) error {
	fmt.Fprintf(out, "\nguest: reader %q\n", v["reader.0"])
	fmt.Fprintf(out, "guest: card %s, ATR %s\n", v["card.0"], strings.ToUpper(v["atr.0"]))
	fmt.Fprintf(out, "guest: pkcs11-tool -L: token %q; -O: %s objects before login\n", v["token_label"], v["objects"])
	for i := 0; ; i++ {
		cert, ok := v[fmt.Sprintf("cert.%d", i)]
		if !ok {
			break
		}
		id, label, _ := strings.Cut(cert, " ")
		fmt.Fprintf(out, "guest:   certificate id %s: %s\n", id, label)
	}
	cert, err := e2e.Certificate(v)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(cert.Raw)
	fmt.Fprintf(out, "guest: pkcs11-tool --read-object --id 01: %s, %s, SHA-256 %X...\n", cert.Subject, keyDesc(cert), sum[:8])
	if m := fingerprint.FindStringSubmatch(clientOut); m != nil {
		if m[1] != fmt.Sprintf("%X", sum[:8]) {
			return fmt.Errorf("the guest read a certificate whose SHA-256 starts %X, but vscclient-go serves one whose SHA-256 starts %s", sum[:8], m[1])
		}
		fmt.Fprintln(out, "       (the certificate vscclient-go serves in slot 9A)")
	}
	sig := v["signature"]
	fmt.Fprintf(out, "guest: pkcs11-tool --login --sign -m %s over SHA-256(%q) -> %d-byte signature %s...\n",
		v["mechanism"], challenge, len(sig)/2, strings.ToUpper(sig[:min(32, len(sig))]))
	if err := e2e.VerifySignature(cert.PublicKey, v); err != nil {
		return fmt.Errorf("host: %w", err)
	}
	fmt.Fprintln(out, "\nhost: the guest's signature verifies with the certificate's public key: OK")
	return nil
}

// keyDesc names a certificate's key.
func keyDesc(cert *x509.Certificate) string {
	switch k := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	}
	return cert.PublicKeyAlgorithm.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// prefixWriter writes each line with a prefix (the guest's console comes
// a line at a time).
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := fmt.Fprintf(p.w, "%s%s", p.prefix, b); err != nil {
		return 0, err
	}
	return len(b), nil
}
