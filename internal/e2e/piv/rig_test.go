package piv_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupCommands()
	os.Exit(code)
}

// openscModule is OpenSC's PKCS#11 module as Debian's opensc-pkcs11
// installs it.
const openscModule = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"

// rig is a private pcscd whose two vpcd slots take cards that come the
// whole way: vscclient-go -> VSCard -> fake-ccid-server --vpcd -> pcscd.
//
// The daemon is the test binary's in-process one (harness.InProcessPCSC),
// so that piv-go, which calls libpcsclite in this process, reaches it:
// libpcsclite reads PCSCLITE_CSOCK_NAME once per process, and every
// in-process daemon of the binary uses the same socket path.
type rig struct {
	pcscd *harness.PCSCD
	bin   string // the built commands
	home  string // HOME of the OpenSC tools (their cache, if any)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	harness.LookPath(t, harness.OpenSCPeer, "pkcs11-tool")
	harness.LookPath(t, harness.OpenSCPeer, "opensc-tool")
	harness.RequireFile(t, harness.OpenSCPeer, openscModule)
	r := &rig{pcscd: harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: true}), home: t.TempDir()}
	r.bin = harness.Commands(t)
	return r
}

// card is a card in one of the rig's readers: a vscclient-go and the
// fake-ccid-server that hands its card to pcscd.
type card struct {
	r      *rig
	slot   int              // the vpcd slot, which is also the reader's index
	host   *harness.Process // fake-ccid-server
	client *harness.Process // vscclient-go
}

// insert starts fake-ccid-server for the rig's vpcd slot and vscclient-go
// with args (and env, its whole environment; nil means this process's),
// and waits until OpenSC sees the card in the reader.
func (r *rig) insert(t *testing.T, slot int, env []string, args ...string) *card {
	t.Helper()
	c := &card{r: r, slot: slot}
	host, port := "127.0.0.1", strconv.Itoa(harness.FreePort(t))
	listen := net.JoinHostPort(host, port)
	c.host = harness.Start(t, "fake-ccid-server", exec.Command(filepath.Join(r.bin, "fake-ccid-server"),
		"--listen", listen, "--vpcd", r.pcscd.VPCDAddr(slot), "--log-level", "debug"))
	// Probing with a connection would count as the host's client.
	harness.WaitListening(t, c.host, listen, 10*time.Second)
	cmd := exec.Command(filepath.Join(r.bin, "vscclient-go"), append(slices.Clip(args), host, port)...)
	cmd.Env = env
	c.client = harness.Start(t, "vscclient-go", cmd)
	c.waitPresent(t)
	return c
}

// waitPresent waits until the card is in the reader with the PIV ATR.
func (c *card) waitPresent(t *testing.T) {
	t.Helper()
	want := strings.ToUpper(hex.EncodeToString(piv.ATR()))
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := c.r.tool(t, "opensc-tool", "-r", strconv.Itoa(c.slot), "--atr")
		if err == nil && strings.Contains(strings.ToUpper(strings.ReplaceAll(strings.ReplaceAll(out, ":", ""), " ", "")), want) {
			return
		}
		last = out
		if c.client.Exited() || c.host.Exited() || time.Now().After(deadline) {
			t.Fatalf("the card never came into reader %d (want ATR %s); last opensc-tool output:\n%s\nvscclient-go:\n%s\nfake-ccid-server:\n%s",
				c.slot, want, last, c.client.Output(), c.host.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tool runs an OpenSC tool against the rig's pcscd and returns its combined
// output.
func (r *rig) tool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), r.pcscd.Env(), "HOME="+r.home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pkcs11 runs pkcs11-tool with OpenSC's module on the card's token and
// fails the test when it fails.
func (c *card) pkcs11(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.pkcs11Try(t, args...)
	if err != nil {
		t.Fatalf("pkcs11-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// pkcs11Try is pkcs11 for a call that may fail.
func (c *card) pkcs11Try(t *testing.T, args ...string) (string, error) {
	t.Helper()
	base := []string{"--module", openscModule, "--slot-index", strconv.Itoa(c.slot)}
	return c.r.tool(t, "pkcs11-tool", append(base, args...)...)
}

// pkcs11File runs pkcs11-tool as pkcs11 does, with in (unless nil) as
// its --input-file, and returns what it wrote to its --output-file.
func (c *card) pkcs11File(t *testing.T, in []byte, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	args = append(args, "--output-file", out)
	if in != nil {
		f := filepath.Join(dir, "in")
		if err := os.WriteFile(f, in, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--input-file", f)
	}
	c.pkcs11(t, args...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("pkcs11-tool %s wrote no output: %v", strings.Join(args, " "), err)
	}
	return b
}

// swRE matches opensc-tool's report of a response's status word.
var swRE = regexp.MustCompile(`Received \(SW1=0x([0-9a-fA-F]{2}), SW2=0x([0-9a-fA-F]{2})\)`)

// apdus sends raw command APDUs (hex) to the card in one PC/SC session of
// opensc-tool, with OpenSC's default driver so that nothing else is sent,
// and returns each response's status word.
func (c *card) apdus(t *testing.T, cmds ...string) []apdu.SW {
	t.Helper()
	args := []string{"-r", strconv.Itoa(c.slot), "-c", "default"}
	for _, cmd := range cmds {
		args = append(args, "-s", cmd)
	}
	out, err := c.r.tool(t, "opensc-tool", args...)
	if err != nil {
		t.Fatalf("opensc-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var sws []apdu.SW
	for _, m := range swRE.FindAllStringSubmatch(out, -1) {
		sw, _ := strconv.ParseUint(m[1]+m[2], 16, 16) // swRE matched 4 hex digits
		sws = append(sws, apdu.SW(sw))
	}
	if len(sws) != len(cmds) {
		t.Fatalf("opensc-tool answered %d of %d commands:\n%s", len(sws), len(cmds), out)
	}
	return sws
}

// PIV commands in the hex opensc-tool takes.
const (
	selectPIV   = "00A4040009A00000030800001000"
	pinStatus   = "00200080"   // VERIFY, no data: 9000, 63Cx or 6983
	pinReset    = "0020FF80"   // VERIFY P1 FF: the PIN is no longer verified
	verifyPINHd = "0020008008" // VERIFY header; the padded PIN follows
)

// verifyAPDU is VERIFY of pin, padded with FF to 8 bytes, in hex.
func verifyAPDU(pin string) string {
	block := bytes.Repeat([]byte{0xFF}, 8)
	copy(block, pin)
	return verifyPINHd + strings.ToUpper(hex.EncodeToString(block))
}

// step is a raw command and the status word the card must answer.
type step struct {
	cmd  string
	want apdu.SW
}

// expectSWs sends the steps' commands in one opensc-tool session and fails
// the test, showing every status word, unless each answers its want.
func (c *card) expectSWs(t *testing.T, what string, steps ...step) {
	t.Helper()
	cmds := make([]string, len(steps))
	want := make([]apdu.SW, len(steps))
	for i, s := range steps {
		cmds[i], want[i] = s.cmd, s.want
	}
	if got := c.apdus(t, cmds...); !slices.Equal(got, want) {
		t.Errorf("%s: status words %v, want %v", what, got, want)
	}
}

// wrongPIN returns a PIN of the same length as pin that is not pin.
func wrongPIN(pin string) string {
	return strings.Repeat("0", len(pin))
}
