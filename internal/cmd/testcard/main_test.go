package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/harness"
)

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--vpcd", "127.0.0.1:1", "extra"},
		{"--vpcd", "127.0.0.1:1", "--atr", "zz"},
		{"--vpcd", "127.0.0.1:1", "--program", "80FE0000"},
		{"--bogus"},
	} {
		var stderr bytes.Buffer
		err := run(args, &stderr)
		if err == nil {
			t.Errorf("run(%q) succeeded", args)
			continue
		}
		// One style: "testcard: error: ..." and a hint, exit 2, and
		// nothing from package flag.
		var report bytes.Buffer
		if code := cli.Report(&report, "testcard", err); code != cli.ExitUsage || stderr.Len() > 0 ||
			!strings.HasPrefix(report.String(), "testcard: error: ") || !strings.Contains(report.String(), "\nhint: ") {
			t.Errorf("run(%q): exit %d, printed %q, reported %q", args, code, stderr.String(), report.String())
		}
	}
}

// TestProcess builds the command, runs it against a private pcscd, sends a
// programmed APDU with opensc-tool, and stops it with SIGTERM.
func TestProcess(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{})
	bin := filepath.Join(t.TempDir(), "testcard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	proc := harness.Start(t, "testcard", exec.Command(bin, "--vpcd", p.VPCDAddr(1), "--program", "80FE0000=C0FFEE9000"))
	send := func() (string, error) { return p.OpenSCTool(t, "-r", "1", "-c", "default", "-s", "80:FE:00:00") }
	var out string
	harness.WaitFor(t, 10*time.Second, "the card to answer in reader 1", func() bool {
		var err error
		out, err = send()
		return err == nil
	})
	if !strings.Contains(out, "C0 FF EE") {
		t.Fatalf("programmed answer missing:\n%s", out)
	}
	proc.Signal(syscall.SIGTERM)
	if err := proc.WaitExit(context.Background()); err != nil {
		t.Fatalf("testcard exited with %v:\n%s", err, proc.Output())
	}
	if !strings.Contains(proc.Output(), "card removed after 1 APDUs") {
		t.Fatalf("output:\n%s", proc.Output())
	}
}
