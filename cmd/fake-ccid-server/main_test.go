package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupCommands()
	os.Exit(code)
}

func bin(t *testing.T, name string) string {
	return filepath.Join(harness.Commands(t), name)
}

// fake starts fake-ccid-server on a free port with args and returns it with
// its address.
func fake(t *testing.T, args ...string) (*harness.Process, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	p := harness.Start(t, "fake-ccid-server", exec.Command(bin(t, "fake-ccid-server"), append([]string{"--listen", addr}, args...)...))
	harness.WaitListening(t, p, addr, 10*time.Second)
	return p, addr
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsage(t *testing.T) {
	badHex := writeFile(t, "bad.apdu", "# comment\n00A4040009A0000003080000100 9000\n")
	badSW := writeFile(t, "badsw.apdu", "00A40400 90\n")
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--help"}, 0, "Examples:"},
		{[]string{"--version"}, 0, "fake-ccid-server "},
		{[]string{"--bogus"}, 2, "unknown flag --bogus"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--script", "x", "--vpcd", "y:1"}, 2, "--script and --vpcd cannot be used together"},
		{[]string{"--tls-cert", "c"}, 2, "--tls-cert needs --tls-key"},
		{[]string{"--timeout", "1s"}, 2, "--timeout applies to --script"},
		{[]string{"--script", badHex}, 1, "bad.apdu:2: APDU is not hex"},
		{[]string{"--script", badSW}, 1, `expected status word "90"`},
		{[]string{"--script", "/nonexistent"}, 1, "reading the script"},
		{[]string{"--listen", "256.0.0.1:1"}, 1, "hint:"},
		{[]string{"--log-level", "loud"}, 2, "--log-level"},
	} {
		cmd := exec.Command(bin(t, "fake-ccid-server"), append([]string{"--listen", addr}, tc.args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Stdout = &stderr
		code := exitCode(cmd.Run())
		if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%q: exit %d, want %d; output lacks %q?\n%s", tc.args, code, tc.code, tc.stderr, stderr.String())
		}
	}
}

// The script plays the guest against vscclient-go --card soft: every
// expectation holds (exit 0), or one does not (exit 1).
func TestScript(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		code         int
		want         []string
	}{
		{"pass", "00A4040009A00000030800001000 9000\n00CB3FFF055C035FC105 61XX # the certificate, in pieces\n00C0000000\n", 0,
			[]string{`"event":"script-done"`, `"failed":0`, `"sw":"61`}},
		{"fail", "00A4040009A00000030800001000 6A82\n", 1,
			[]string{`"result":"MISMATCH expected 6A82"`, `"failed":1`}},
		{"get-response", "00CB3FFF055C035FC105 9000\n", 0, []string{`"failed":0`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--json", "--script", writeFile(t, "s.apdu", tc.script), "--timeout", "30s"}
			if tc.name == "get-response" {
				args = append(args, "--get-response")
			}
			p, addr := fake(t, args...)
			host, port, _ := strings.Cut(addr, ":")
			harness.Start(t, "vscclient-go", exec.Command(bin(t, "vscclient-go"), "--card", "soft", host, port))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := p.WaitExit(ctx); exitCode(err) != tc.code {
				t.Fatalf("exit %v, want %d\n%s", err, tc.code, p.Output())
			}
			for _, w := range tc.want {
				if !strings.Contains(p.Output(), w) {
					t.Errorf("output lacks %s:\n%s", w, p.Output())
				}
			}
		})
	}
}

// --json event lines for what a client does, and --once.
func TestEventsAndOnce(t *testing.T) {
	p, addr := fake(t, "--json", "--once")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := vscard.Dial(ctx, "tcp", addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.AddReader(ctx, "My Reader")
	c.InsertCard(ctx, 0, []byte{0x3B, 0x02, 0x01}) // refused
	c.InsertCard(ctx, 0, []byte{0x3B, 0x80, 0x80, 0x01, 0x01})
	c.RemoveCard(ctx, 0)
	c.Close()
	if err := p.WaitExit(ctx); err != nil {
		t.Fatalf("--once: %v\n%s", err, p.Output())
	}
	var kinds []string
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev["event"] == nil {
			continue // a log line
		}
		kinds = append(kinds, fmt.Sprint(ev["event"]))
		switch ev["event"] {
		case "reader-added":
			if ev["name"] != "My Reader" {
				t.Errorf("reader-added: %v", ev)
			}
		case "card-inserted":
			if ev["atr"] != "3B80800101" {
				t.Errorf("card-inserted: %v", ev)
			}
		}
	}
	want := "connected init reader-added atr-rejected card-inserted card-removed disconnected"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
}

// --vpcd: the client's card appears in the local pcscd's vpcd reader, and
// leaves it when the client goes.
func TestVPCD(t *testing.T) {
	pcscd := harness.StartPCSCD(t, harness.PCSCDOptions{})
	_, addr := fake(t, "--vpcd", pcscd.VPCDAddr(0))
	host, port, _ := strings.Cut(addr, ":")
	client := harness.Start(t, "vscclient-go", exec.Command(bin(t, "vscclient-go"), "--card", "soft", host, port))
	atr := func() string {
		out, err := pcscd.OpenSCTool(t, "--reader", "0", "--atr")
		if err != nil {
			return "" // no card: opensc-tool fails, its output is the reason
		}
		return strings.TrimSpace(out)
	}
	harness.WaitFor(t, 10*time.Second, "the card in pcscd's reader", func() bool {
		return strings.HasPrefix(strings.ReplaceAll(atr(), ":", ""), "3b8b80")
	})
	out, err := pcscd.OpenSCTool(t, "--reader", "0", "-c", "default", "--send-apdu", "00A4040009A00000030800001000")
	if err != nil || !strings.Contains(out, "SW1=0x90, SW2=0x00") && !strings.Contains(out, "90 00") {
		t.Fatalf("SELECT PIV through pcscd: %v\n%s", err, out)
	}
	client.Stop()
	harness.WaitFor(t, 10*time.Second, "the card to leave pcscd's reader", func() bool { return atr() == "" })
}
