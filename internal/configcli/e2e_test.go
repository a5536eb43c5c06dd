package configcli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard"
)

// End to end: what `vscclient-go config` prints runs. The domain it prints
// is defined and started under a private libvirtd whose qemu.conf holds the
// settings it prints, with certificates `config tls-certs` wrote; the QEMU
// argv it prints starts a QEMU; and a VSCard client dialled as the client
// command it prints says completes the handshake with each.

var (
	libvirtd harness.SharedLibvirtd
	// pkiDir holds the certificates `config tls-certs` wrote, and is the
	// shared libvirtd's chardev TLS directory.
	pkiDir string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "configcli-pki-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		pkiDir = dir
		var out bytes.Buffer
		if code := Main(context.Background(), []string{"tls-certs", "--force", dir}, nil, io.Discard, &out); code != 0 {
			fmt.Fprintf(os.Stderr, "config tls-certs: exit %d: %s", code, out.String())
			return 1
		}
		out.Reset()
		if code := Main(context.Background(), []string{"--tls", "--tls-dir", dir, "--format", "qemu-conf"}, nil, &out, os.Stderr); code != 0 {
			fmt.Fprintf(os.Stderr, "config --format qemu-conf: exit %d", code)
			return 1
		}
		libvirtd.Options.QEMUConf = out.String()
		defer func() {
			if err := libvirtd.Close(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
		return m.Run()
	}())
}

// config runs `vscclient-go config args...`, requires success and returns what
// it printed on stdout.
func config(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCLI(t, args, nil)
	if code != 0 {
		t.Fatalf("vscclient-go config %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// splitWords splits what the command prints into words: blanks separate,
// '...' quotes (the only quoting shellQuote uses), backslash-newline
// continues a line.
func splitWords(t *testing.T, s string) []string {
	t.Helper()
	s = strings.ReplaceAll(s, "\\\n", " ")
	var words []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unterminated quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == ' ' || c == '\n' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// clientFlags parses the printed client command the way vscclient-go reads
// its flags: --connect URL and the three --tls-* files.
type clientFlags struct {
	network, addr          string
	tlsCA, tlsCert, tlsKey string
	useTLS                 bool
}

func parseClient(t *testing.T, line string) clientFlags {
	t.Helper()
	words := splitWords(t, line)
	if len(words) < 3 || words[0] != "vscclient-go" {
		t.Fatalf("not a vscclient-go command: %q", line)
	}
	var f clientFlags
	for i := 1; i < len(words); i += 2 {
		if i+1 >= len(words) {
			t.Fatalf("flag %s without a value in %q", words[i], line)
		}
		v := words[i+1]
		switch words[i] {
		case "--connect":
			switch {
			case strings.HasPrefix(v, "tcp://"):
				f.network, f.addr = "tcp", strings.TrimPrefix(v, "tcp://")
			case strings.HasPrefix(v, "tls://"):
				f.network, f.addr, f.useTLS = "tcp", strings.TrimPrefix(v, "tls://"), true
			case strings.HasPrefix(v, "unix:"):
				f.network, f.addr = "unix", strings.TrimPrefix(v, "unix:")
			default:
				t.Fatalf("--connect %q: unknown scheme", v)
			}
		case "--tls-ca":
			f.tlsCA = v
		case "--tls-cert":
			f.tlsCert = v
		case "--tls-key":
			f.tlsKey = v
		default:
			t.Fatalf("unknown client flag %s in %q", words[i], line)
		}
	}
	if f.useTLS != (f.tlsCA != "" && f.tlsCert != "" && f.tlsKey != "") {
		t.Fatalf("tls:// and the three --tls-* files go together: %q", line)
	}
	return f
}

// tlsConfig loads the files the client command names.
func (f clientFlags) tlsConfig(t *testing.T) *tls.Config {
	t.Helper()
	if !f.useTLS {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(f.tlsCA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("no certificate in %s", f.tlsCA)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}
}

// waitChardev waits until the chardev the client will dial listens,
// without connecting to it (QEMU serves one client at a time).
func waitChardev(t *testing.T, f clientFlags, exited func() bool) {
	t.Helper()
	harness.WaitFor(t, 20*time.Second, "the smartcard chardev to listen on "+f.addr, func() bool {
		if exited() {
			return true
		}
		if f.network == "unix" {
			fi, err := os.Stat(f.addr)
			return err == nil && fi.Mode()&os.ModeSocket != 0
		}
		ok, _ := harness.Listening(f.addr)
		return ok
	})
}

// handshake dials as the printed client command says and completes the
// VSCard Init exchange.
func handshake(t *testing.T, f clientFlags) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	c, err := vscard.Dial(ctx, f.network, f.addr, &vscard.DialConfig{TLS: f.tlsConfig(t)})
	if err != nil {
		t.Fatalf("VSCard handshake with QEMU at %s %s: %v", f.network, f.addr, err)
	}
	defer c.Close()
	t.Logf("VSCard handshake over %s (TLS %v) took %v", f.network, f.useTLS, time.Since(start))
	in := c.HostInit()
	if string(in.Magic[:]) != vscard.Magic || in.Version != vscard.CurrentVersion {
		t.Errorf("QEMU's Init = %+v", in)
	}
}

// refused checks that a client without TLS, and one without a client
// certificate, cannot complete the handshake with a TLS chardev.
func refused(t *testing.T, f clientFlags) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := vscard.Dial(ctx, "tcp", f.addr, nil); err == nil {
		c.Close()
		t.Errorf("a client without TLS completed the handshake with a TLS chardev")
	}
	noCert := f.tlsConfig(t)
	noCert.Certificates = nil
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if c, err := vscard.Dial(ctx2, "tcp", f.addr, &vscard.DialConfig{TLS: noCert}); err == nil {
		c.Close()
		t.Errorf("a client without a certificate completed the handshake (verify-peer is off?)")
	}
}

// libvirtCases are the transports a vscclient-go client reaches.
func libvirtCases(t *testing.T) []struct {
	name string
	args []string
} {
	port := strconv.Itoa(harness.FreePort(t))
	return []struct {
		name string
		args []string
	}{
		{"tcp", []string{"--port", port}},
		{"tls", []string{"--port", port, "--tls", "--tls-dir", pkiDir}},
		{"unix", []string{"--transport", "unix", "--socket", filepath.Join(t.TempDir(), "sc.sock")}},
	}
}

// TestLibvirtDomainHandshake: the domain `config --new-domain` prints is
// defined and started (paused) under libvirtd, and the client command
// `config --format client` prints completes the VSCard handshake with it.
func TestLibvirtDomainHandshake(t *testing.T) {
	l := libvirtd.Get(t)
	t.Logf("libvirtd started in %v", l.Started)
	for _, tc := range libvirtCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			name := "vsck-cli-" + tc.name
			dom := config(t, append([]string{"--new-domain", name, "--format", "xml"}, tc.args...)...)
			f := filepath.Join(t.TempDir(), "domain.xml")
			if err := os.WriteFile(f, []byte(dom), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := l.Virsh(ctx, "define", f); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				l.Virsh(ctx, "destroy", name)
				l.Virsh(ctx, "undefine", name)
			})
			start := time.Now()
			if _, err := l.Virsh(ctx, "start", "--paused", name); err != nil {
				t.Fatalf("%v\n%s", err, l.DomainLog(name))
			}
			t.Logf("virsh start --paused took %v", time.Since(start))

			client := parseClient(t, config(t, append([]string{"--format", "client"}, tc.args...)...))
			waitChardev(t, client, func() bool { return false })
			handshake(t, client)
			if client.useTLS {
				refused(t, client)
				// The QEMU libvirt started has the object the argv
				// form describes.
				if log := l.DomainLog(name); !strings.Contains(log, `"qom-type":"tls-creds-x509"`) || !strings.Contains(log, pkiDir) {
					t.Errorf("libvirt's QEMU command line lacks the TLS object on %s:\n%s", pkiDir, log)
				}
			}
		})
	}
}

// TestQEMUArgvHandshake: QEMU started with the options `config --format
// argv` prints (on a pc machine with -usb, paused) accepts the handshake of
// the printed client command.
func TestQEMUArgvHandshake(t *testing.T) {
	bin := harness.LookPath(t, "QEMU (qemu-system-x86)", harness.QEMUBinary)
	for _, tc := range libvirtCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			opts := splitWords(t, config(t, append([]string{"--format", "argv"}, tc.args...)...))
			args := append([]string{"-machine", "pc,accel=tcg", "-nodefaults", "-display", "none", "-S", "-usb"}, opts...)
			p := harness.Start(t, "qemu", exec.Command(bin, args...))
			client := parseClient(t, config(t, append([]string{"--format", "client"}, tc.args...)...))
			waitChardev(t, client, p.Exited)
			if p.Exited() {
				t.Fatalf("QEMU %q exited: %v\n%s", args, p.Err(), p.Output())
			}
			handshake(t, client)
			if client.useTLS {
				refused(t, client)
			}
		})
	}
}

// TestTLSCertsCommand: `config tls-certs` writes the five files, refuses
// to overwrite them, and says what to do next.
func TestTLSCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	code, stdout, stderr := runCLI(t, []string{"tls-certs", "--host", "vmhost.example", "--host", "192.0.2.1", dir}, nil)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, name := range []string{"ca-cert.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !strings.Contains(stdout, name) {
			t.Errorf("the report does not name %s:\n%s", name, stdout)
		}
	}
	if !strings.Contains(stdout, "vmhost.example, 192.0.2.1") || !strings.Contains(stdout, "--tls --tls-dir") {
		t.Errorf("the report does not say what the certificate is for and what comes next:\n%s", stdout)
	}
	code, _, stderr = runCLI(t, []string{"tls-certs", dir}, nil)
	if code != cli.ExitFailure || !strings.Contains(stderr, "file exists") || !strings.Contains(stderr, "hint: add --force") {
		t.Errorf("second run: exit %d, stderr %q; want a refusal with a --force hint", code, stderr)
	}
	if code, _, stderr := runCLI(t, []string{"tls-certs", "--force", dir}, nil); code != 0 {
		t.Errorf("--force: exit %d: %s", code, stderr)
	}
}

// TestDomainFromFileMatchesStdin: --domain FILE and --domain - give the
// same document.
func TestDomainFromFileMatchesStdin(t *testing.T) {
	path := filepath.Join(fixtures, "domain-realworld.xml")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, fromFile, _ := runCLI(t, []string{"--domain", path, "--format", "xml"}, nil)
	_, fromStdin, _ := runCLI(t, []string{"--domain", "-", "--format", "xml"}, doc)
	if fromFile == "" || fromFile != fromStdin {
		t.Errorf("--domain FILE and --domain - differ")
	}
	// An oversized input is refused without reading it all.
	big := io.MultiReader(strings.NewReader("<domain>"), zeroReader{})
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"--domain", "-"}, big, &stdout, &stderr); code != cli.ExitFailure || !strings.Contains(stderr.String(), "larger than") {
		t.Errorf("oversized stdin: exit %d, %s", code, stderr.String())
	}
}

// zeroReader is an endless stream of spaces.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// TestGoldenDomainsValidate: every whole domain the golden cases print
// (--new-domain, --domain) passes libvirt's schema.
func TestGoldenDomainsValidate(t *testing.T) {
	harness.LookPath(t, "virt-xml-validate (libvirt-clients)", "virt-xml-validate")
	harness.LookPath(t, "xmllint (libxml2-utils), which virt-xml-validate runs", "xmllint")
	n := 0
	for _, tc := range cliCases {
		whole, xmlOnly := false, false
		for i, a := range tc.args {
			whole = whole || a == "--domain" || a == "--new-domain"
			xmlOnly = xmlOnly || (a == "--format" && i+1 < len(tc.args) && tc.args[i+1] == "xml")
		}
		if !whole || !xmlOnly || tc.exit != 0 {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args, caseStdin(t, tc.stdin))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			f := filepath.Join(t.TempDir(), "domain.xml")
			if err := os.WriteFile(f, []byte(stdout), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("virt-xml-validate", f, "domain").CombinedOutput(); err != nil {
				t.Errorf("libvirt's schema refuses the printed domain: %v\n%s\n%s", err, out, stdout)
			}
		})
		n++
	}
	if n < 5 {
		t.Errorf("only %d golden cases print a whole domain", n)
	}
}

// TestClashWarnings: config warns when another domain of the libvirt it is
// given already takes the TCP port or the unix socket it would use, and
// --transport unix names the socket after the domain.
func TestClashWarnings(t *testing.T) {
	l := libvirtd.Get(t)
	port := harness.FreePort(t)
	for _, d := range []struct{ name, xml string }{
		{"vsck-clash-tcp", config(t, "--new-domain", "vsck-clash-tcp", "--format", "xml", "--port", strconv.Itoa(port))},
		{"vsck-clash-unix", config(t, "--new-domain", "vsck-clash-unix", "--format", "xml", "--transport", "unix")},
	} {
		f := filepath.Join(t.TempDir(), "domain.xml")
		os.WriteFile(f, []byte(d.xml), 0o600)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if out, err := l.Virsh(ctx, "define", f); err != nil {
			cancel()
			t.Fatalf("define %s: %v\n%s", d.name, err, out)
		}
		cancel()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l.Virsh(ctx, "undefine", d.name)
		})
	}
	run := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), append([]string{"--libvirt", l.URI, "--format", "xml"}, args...), nil, &stdout, &stderr); code != 0 {
			t.Fatalf("config %v: exit %d\n%s", args, code, stderr.String())
		}
		return stderr.String()
	}
	if got := run("--port", strconv.Itoa(port), "--new-domain", "another"); !strings.Contains(got, fmt.Sprintf("warning: domain vsck-clash-tcp's smartcard already takes TCP port %d", port)) {
		t.Errorf("the same port: stderr %q", got)
	}
	if got := run("--port", strconv.Itoa(port), "--new-domain", "vsck-clash-tcp"); strings.Contains(got, "warning") {
		t.Errorf("the domain's own port: stderr %q", got)
	}
	if got := run("--transport", "unix", "--socket", DefaultSocket("vsck-clash-unix"), "--new-domain", "another"); !strings.Contains(got, "warning: domain vsck-clash-unix's smartcard already listens on "+DefaultSocket("vsck-clash-unix")) {
		t.Errorf("the same socket: stderr %q", got)
	}
	if got := run("--transport", "unix", "--new-domain", "another"); strings.Contains(got, "warning") {
		t.Errorf("a socket named after another domain: stderr %q", got)
	}
	// A libvirt that cannot be reached is no error.
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"--libvirt", "qemu:///system?socket=/nonexistent/sock", "--format", "xml"}, nil, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
		t.Errorf("unreachable libvirt: exit %d, stderr %q", code, stderr.String())
	}
}
