package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/guest"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupCommands()
	os.Exit(code)
}

// The demo boots the real guest with the built vscclient-go --card soft
// and ends with the guest's signature verified on the host.
func TestDemoVM(t *testing.T) {
	harness.RequireRoot(t, "guest image builder (apt-get download)")
	for _, prog := range []string{"apt-get", "dpkg-deb", "ldd", "busybox", "pcscd", "opensc-tool", "pkcs11-tool", "pcsc_scan"} {
		harness.LookPath(t, "guest image builder", prog)
	}
	harness.LookPath(t, "QEMU (qemu-system-x86)", guest.DefaultQEMU)
	bin := harness.Commands(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, options{bin: bin, card: "soft"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("demo output:\n%s", out.String())
	for _, want := range []string{
		`guest: reader "Gemalto`,
		fmt.Sprintf("guest: card present, ATR %X", piv.ATR()),
		"guest:   certificate id 01: Certificate for PIV Authentication",
		"(the certificate vscclient-go serves in slot 9A)",
		"host: the guest's signature verifies with the certificate's public key: OK",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

// Without the built commands the demo says how to get them.
func TestDemoVMWithoutBinaries(t *testing.T) {
	err := run(t.Context(), options{bin: t.TempDir(), card: "soft"}, &bytes.Buffer{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(cli.Hint(err), "make build") {
		t.Errorf("run without binaries: %v, want a not-exist error with the make build hint", err)
	}
}
