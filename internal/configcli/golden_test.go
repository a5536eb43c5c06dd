package configcli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/xmlconfig/cli")

const (
	fixtures  = "../../testdata/xmlconfig"
	goldenDir = "../../testdata/xmlconfig/cli"
)

// cliCases are the golden command lines: flags in, XML, argv, client
// command, messages and exit code out.
var cliCases = []struct {
	name  string
	args  []string
	stdin string // a fixture file name fed to standard input
	exit  int
}{
	{"default", nil, "", 0},
	{"xml", []string{"--format", "xml"}, "", 0},
	{"argv", []string{"--format", "argv"}, "", 0},
	{"client", []string{"--format", "client"}, "", 0},
	{"tls", []string{"--tls"}, "", 0},
	{"tls-argv", []string{"--tls", "--tls-dir", "/srv/pki/chardev", "--format", "argv"}, "", 0},
	{"tls-qemu-conf", []string{"--tls", "--format", "qemu-conf"}, "", 0},
	{"tls-remote-client", []string{"--host", "0.0.0.0", "--client-host", "vmhost.example", "--tls", "--tls-dir", "/srv/pki", "--client-tls-dir", "/home/alice/pki"}, "", 0},
	{"bind-all-warning", []string{"--host", "0.0.0.0", "--port", "3000"}, "", 0},
	{"bind-lan-warning", []string{"--host", "192.168.1.10", "--format", "client"}, "", 0},
	{"ipv6", []string{"--host", "::1", "--port", "3000"}, "", 0},
	{"unix", []string{"--transport", "unix", "--socket", "/run/vscardkit/vm.sock"}, "", 0},
	{"spicevmc", []string{"--transport", "spicevmc"}, "", 0},
	{"host", []string{"--mode", "host"}, "", 0},
	{"host-certificates", []string{"--mode", "host-certificates", "--cert", "id", "--cert", "sign", "--cert", "enc", "--database", "/var/lib/vscardkit/nssdb"}, "", 0},
	{"address-controller", []string{"--address", "--usb-port", "2", "--format", "all"}, "", 0},
	{"controller", []string{"--controller", "--format", "xml"}, "", 0},
	{"new-domain", []string{"--new-domain", "smartcard-demo", "--format", "xml"}, "", 0},
	{"new-domain-spicevmc", []string{"--new-domain", "spice-demo", "--transport", "spicevmc", "--format", "xml"}, "", 0},
	{"domain-realworld", []string{"--domain", fixtures + "/domain-realworld.xml", "--port", "2001", "--format", "xml"}, "", 0},
	{"domain-realworld-all", []string{"--domain", fixtures + "/domain-realworld.xml", "--tls", "--usb-port", "4"}, "", 0},
	{"domain-stdin", []string{"--domain", "-", "--format", "xml"}, "domain-minimal.xml", 0},
	{"domain-draft-tcp", []string{"--domain", "-", "--format", "all"}, "domain-draft-tcp.xml", 0},
	{"domain-draft-spicevmc", []string{"--domain", fixtures + "/domain-draft-spicevmc.xml", "--format", "xml"}, "", 0},
	{"domain-draft-nomode", []string{"--domain", "-", "--format", "xml"}, "domain-draft-nomode.xml", 0},
	{"ipv6-brackets", []string{"--host", "[::1]", "--port", "3000"}, "", 0},

	{"error-draft-and-flags", []string{"--domain", fixtures + "/domain-draft-tcp.xml", "--port", "3000"}, "", 1},
	{"error-second-smartcard", []string{"--domain", fixtures + "/domain-with-smartcard.xml"}, "", 1},
	{"error-spicevmc-no-spice", []string{"--domain", fixtures + "/domain-minimal.xml", "--transport", "spicevmc"}, "", 1},
	{"error-not-domain", []string{"--domain", "-"}, "cli-not-a-domain.txt", 1},
	{"error-no-such-domain", []string{"--domain", fixtures + "/no-such-file.xml"}, "", 1},
	{"error-port-0", []string{"--port", "0"}, "", 1},
	{"error-port-text", []string{"--port", "http"}, "", 2},
	{"error-tls-unix", []string{"--transport", "unix", "--socket", "/run/s.sock", "--tls"}, "", 1},
	{"error-unix-no-socket", []string{"--transport", "unix"}, "", 2},
	{"unix-default-socket", []string{"--transport", "unix", "--new-domain", "win11", "--format", "xml"}, "", 0},
	{"error-two-certs", []string{"--mode", "host-certificates", "--cert", "a", "--cert", "b"}, "", 1},
	{"error-client-host-mode", []string{"--mode", "host", "--format", "client"}, "", 1},
	{"error-client-bind-all", []string{"--host", "::", "--format", "client"}, "", 1},
	{"error-qemu-conf-no-tls", []string{"--format", "qemu-conf"}, "", 1},
	{"error-mode", []string{"--mode", "unknown"}, "", 1},
	{"error-format", []string{"--format", "json"}, "", 2},
	{"error-unknown-flag", []string{"--bogus"}, "", 2},
	{"error-argument", []string{"extra"}, "", 2},
	{"error-domain-and-new", []string{"--domain", "-", "--new-domain", "x"}, "", 2},
	{"help", []string{"--help"}, "", 0},
	{"tls-certs-help", []string{"tls-certs", "-h"}, "", 0},
	{"tls-certs-no-dir", []string{"tls-certs"}, "", 2},
	{"tls-certs-bad-days", []string{"tls-certs", "--days", "0", "/nonexistent/dir"}, "", 2},
}

// runCLI runs Main and returns its exit code and output.
// Golden output must not depend on whether this machine has the vscardkit
// package's socket directory.
func init() { statSocketDir = func() error { return os.ErrNotExist } }

func runCLI(t *testing.T, args []string, stdin []byte) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, bytes.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// caseStdin returns what a case feeds to standard input: its fixture, or
// nothing.
func caseStdin(t *testing.T, fixture string) []byte {
	t.Helper()
	if fixture == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(fixtures, fixture))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGolden(t *testing.T) {
	for _, tc := range cliCases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args, caseStdin(t, tc.stdin))
			if code != tc.exit {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", code, tc.exit, stderr)
			}
			if code == 0 && stdout == "" {
				t.Errorf("success with nothing on stdout")
			}
			if code != 0 {
				if !strings.HasPrefix(stderr, Program+": error: ") {
					t.Errorf("stderr does not start with %q:\n%s", Program+": error: ", stderr)
				}
				if stdout != "" {
					t.Errorf("an error with output on stdout:\n%s", stdout)
				}
			}
			var b strings.Builder
			fmt.Fprintf(&b, "$ vscclient-go config %s", strings.Join(tc.args, " "))
			if tc.stdin != "" {
				fmt.Fprintf(&b, " < %s", tc.stdin)
			}
			fmt.Fprintf(&b, "\nexit %d\n--- stdout\n%s--- stderr\n%s", code, stdout, stderr)
			got := b.String()
			path := filepath.Join(goldenDir, tc.name+".golden")
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

// TestGoldenFilesHaveCases: no golden file outlives its case.
func TestGoldenFilesHaveCases(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range cliCases {
		names[tc.name+".golden"] = true
	}
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !names[filepath.Base(f)] {
			t.Errorf("%s has no case in cliCases", f)
		}
	}
}
