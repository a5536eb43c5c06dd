// Command demo is `make demo`: it starts fake-ccid-server (a fake QEMU) and
// vscclient-go --card soft (an emulated PIV card), plays the guest through a
// short script (select PIV, read the certificate, VERIFY, sign a challenge)
// and shows what the guest sees, ending with the signature verified against
// the certificate.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/procnet"
)

const challenge = "vscardkit demo: sign me"

func main() {
	bin := flag.String("bin", "bin", "directory holding fake-ccid-server and vscclient-go")
	flag.Parse()
	os.Exit(cli.Report(os.Stderr, "demo", run(*bin, os.Stdout)))
}

// step is one line of fake-ccid-server's --json output for a script step.
type step struct {
	Event    string `json:"event"`
	Step     int    `json:"step"`
	SW       string `json:"sw"`
	Result   string `json:"result"`
	Response string `json:"response"`
	Name     string `json:"name"`
	ATR      string `json:"atr"`
	Command  string `json:"command"`
	Error    string `json:"error"`
}

func run(bin string, out io.Writer) error {
	for _, p := range []string{"fake-ccid-server", "vscclient-go"} {
		if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
			return cli.WithHint(err, "build the commands first: make build")
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	digest := sha256.Sum256([]byte(challenge))
	dir, err := os.MkdirTemp("", "vscardkit-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	scriptFile := filepath.Join(dir, "guest.apdu")
	if err := os.WriteFile(scriptFile, []byte(script(digest[:])), 0o600); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fake := exec.CommandContext(ctx, filepath.Join(bin, "fake-ccid-server"),
		"--listen", addr, "--json", "--script", scriptFile, "--get-response", "--once", "--timeout", "30s", "--log-level", "warn")
	var fakeOut, fakeErr bytes.Buffer
	fake.Stdout, fake.Stderr = &fakeOut, &fakeErr
	if err := fake.Start(); err != nil {
		return err
	}
	fmt.Fprintf(out, "== fake QEMU (fake-ccid-server) listening on %s\n", addr)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	err = procnet.WaitListening(wctx, addr, nil)
	wcancel()
	if err != nil {
		fake.Process.Kill()
		fake.Wait()
		return fmt.Errorf("fake-ccid-server did not start: %v\n%s", err, fakeErr.String())
	}
	client := exec.CommandContext(ctx, filepath.Join(bin, "vscclient-go"), "--card", "soft", "--log-level", "warn", "127.0.0.1", fmt.Sprint(port))
	var clientErr bytes.Buffer
	client.Stderr = &clientErr
	client.Cancel = func() error { return client.Process.Signal(syscall.SIGTERM) }
	if err := client.Start(); err != nil {
		fake.Process.Kill()
		fake.Wait()
		return err
	}
	fmt.Fprintf(out, "== vscclient-go --card soft 127.0.0.1 %d: an emulated PIV card, keys in memory\n\n", port)

	fakeErrWait := fake.Wait()
	client.Process.Signal(syscall.SIGTERM)
	clientWait := client.Wait()
	for _, line := range strings.Split(strings.TrimSpace(clientErr.String()), "\n") {
		if strings.HasPrefix(line, "soft card:") {
			fmt.Fprintf(out, "   %s\n", line)
		}
	}
	fmt.Fprintln(out)
	steps, err := parse(&fakeOut)
	if err != nil {
		return err
	}
	verr := tell(out, steps, digest[:])
	if fakeErrWait != nil {
		return fmt.Errorf("fake-ccid-server: %v\n%s%s", fakeErrWait, fakeErr.String(), fakeOut.String())
	}
	if clientWait != nil {
		return fmt.Errorf("vscclient-go did not exit cleanly on SIGTERM: %v\n%s", clientWait, clientErr.String())
	}
	return verr
}

// script is what the guest does.
func script(digest []byte) string {
	// GENERAL AUTHENTICATE, ECC P-256 (11), key 9A: 7C { 82 00, 81 digest }
	tmpl := append([]byte{0x82, 0x00, 0x81, byte(len(digest))}, digest...)
	ga := append([]byte{0x7C, byte(len(tmpl))}, tmpl...)
	sign := fmt.Sprintf("0087119A%02X%X", len(ga), ga)
	return strings.Join([]string{
		"# SELECT the PIV application",
		"00A4040009A00000030800001000 9000",
		"# GET DATA: the PIV Authentication certificate (5FC105)",
		"00CB3FFF055C035FC105 9000",
		"# VERIFY the PIN (123456, padded with FF)",
		"0020008008313233343536FFFF 9000",
		"# GENERAL AUTHENTICATE: sign the challenge's SHA-256 with key 9A",
		sign + " 9000",
		"",
	}, "\n")
}

func parse(r io.Reader) (map[string][]step, error) {
	got := map[string][]step{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<22)
	for sc.Scan() {
		var s step
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("fake-ccid-server printed %q: %w", sc.Text(), err)
		}
		got[s.Event] = append(got[s.Event], s)
	}
	return got, sc.Err()
}

// tell prints what the guest saw and verifies the signature.
func tell(out io.Writer, ev map[string][]step, digest []byte) error {
	if e := ev["script-error"]; len(e) > 0 {
		return fmt.Errorf("the guest's script failed: %s", e[0].Error)
	}
	if r := ev["reader-added"]; len(r) > 0 {
		fmt.Fprintf(out, "guest: reader %q appeared\n", r[0].Name)
	}
	if c := ev["card-inserted"]; len(c) > 0 {
		fmt.Fprintf(out, "guest: card inserted, ATR %s\n", c[0].ATR)
	}
	var steps []step
	for _, s := range ev["script"] {
		if s.Step > 0 {
			steps = append(steps, s)
		}
	}
	if len(steps) < 4 {
		return fmt.Errorf("the guest's script ran %d of 4 steps", len(steps))
	}
	var resp [4][]byte
	for i := range 4 {
		b, err := hex.DecodeString(steps[i].Response)
		if err != nil || len(b) < 2 {
			return fmt.Errorf("step %d: response %q", i+1, steps[i].Response)
		}
		resp[i] = b[:len(b)-2]
		if steps[i].Result != "ok" {
			return fmt.Errorf("step %d answered %s (%s)", i+1, steps[i].SW, steps[i].Result)
		}
	}
	fmt.Fprintf(out, "guest: SELECT PIV -> %s, application %q\n", steps[0].SW, label(resp[0]))

	cert, err := certificate(resp[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "guest: GET DATA 5FC105 -> %s, %d-byte certificate %q, %s\n", steps[1].SW, len(cert.Raw), cert.Subject.CommonName, cert.PublicKeyAlgorithm)
	fmt.Fprintf(out, "guest: VERIFY PIN -> %s (the PIN itself never appears in any log)\n", steps[2].SW)
	sig, err := signature(resp[3])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "guest: GENERAL AUTHENTICATE 9A, SHA-256(%q) -> %s, signature %X...\n", challenge, steps[3].SW, sig[:16])
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("the certificate holds a %T, the demo signs with ECDSA", cert.PublicKey)
	}
	if !ecdsa.VerifyASN1(pub, digest, sig) {
		return errors.New("the signature does NOT verify against the certificate")
	}
	fmt.Fprintf(out, "\nsignature verified against the certificate's public key: OK\n")
	return nil
}

// tlv finds tag in a BER-TLV list (one- or two-byte tags, lengths up to 3
// bytes) and returns its value.
func tlv(b []byte, tag []byte) ([]byte, bool) {
	for len(b) > 0 {
		tl := 1
		if b[0]&0x1F == 0x1F {
			tl = 2
		}
		if len(b) < tl+1 {
			return nil, false
		}
		t := b[:tl]
		n, ll := int(b[tl]), 1
		switch b[tl] {
		case 0x81:
			if len(b) < tl+2 {
				return nil, false
			}
			n, ll = int(b[tl+1]), 2
		case 0x82:
			if len(b) < tl+3 {
				return nil, false
			}
			n, ll = int(b[tl+1])<<8|int(b[tl+2]), 3
		}
		v := b[tl+ll:]
		if len(v) < n {
			return nil, false
		}
		if bytes.Equal(t, tag) {
			return v[:n], true
		}
		b = v[n:]
	}
	return nil, false
}

func label(selectResp []byte) string {
	apt, ok := tlv(selectResp, []byte{0x61})
	if !ok {
		return "?"
	}
	l, _ := tlv(apt, []byte{0x50})
	return string(l)
}

func certificate(getData []byte) (*x509.Certificate, error) {
	obj, ok := tlv(getData, []byte{0x53})
	if !ok {
		return nil, errors.New("GET DATA answer is not a 53 data object")
	}
	der, ok := tlv(obj, []byte{0x70})
	if !ok {
		return nil, errors.New("no certificate (tag 70) in the data object")
	}
	return x509.ParseCertificate(der)
}

func signature(ga []byte) ([]byte, error) {
	dat, ok := tlv(ga, []byte{0x7C})
	if !ok {
		return nil, errors.New("GENERAL AUTHENTICATE answer is not a 7C template")
	}
	sig, ok := tlv(dat, []byte{0x82})
	if !ok || len(sig) < 16 {
		return nil, errors.New("no signature (tag 82) in the answer")
	}
	return sig, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
