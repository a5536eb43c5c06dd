package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupCommands()
	os.Exit(code)
}

// The demo runs the real binaries and ends with a verified signature.
func TestDemo(t *testing.T) {
	bin := harness.Commands(t)
	var out bytes.Buffer
	if err := run(bin, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"SELECT PIV -> 9000", "VERIFY PIN -> 9000", "signature verified against the certificate's public key: OK"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
