// Package e2etest holds what the end-to-end test packages under
// internal/e2e share: booting a guest of package internal/guest whose QEMU
// serves the smartcard's chardev, for a test.
//
// References:
//   - QEMU chardev socket options (server=on, wait=off):
//     https://www.qemu.org/docs/master/system/qemu-manpage.html
//   - proc(5): /proc/net/tcp, read by procnet.WaitListening
package e2etest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/guest"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/procnet"
)

// Boot boots img with opts, registers a cleanup that closes the VM and,
// if the test failed, logs the guest's console, and waits until QEMU's
// chardev listens on addr. It does not connect to find out: QEMU would take
// the connection for its client. It fails t if QEMU exits or ctx ends
// first.
func Boot(t testing.TB, ctx context.Context, img guest.Image, opts guest.BootOptions, addr string) *guest.VM {
	t.Helper()
	vm, err := guest.Boot(ctx, img, opts)
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	t.Cleanup(func() {
		vm.Close()
		if t.Failed() {
			t.Logf("--- guest console (QEMU pid %d, scenario %s):\n%s", vm.PID(), opts.Scenario, vm.Console())
		}
	})
	if err := procnet.WaitListening(ctx, addr, vm.Done()); err != nil {
		t.Fatalf("QEMU's chardev: %v (the console follows)", err)
	}
	return vm
}

var defaultImage struct {
	once sync.Once
	img  guest.Image
	err  error
}

// Image returns the default guest image (guest.BuildOptions{}), built once
// per test binary and cached between runs, or reports the builder's peers
// (and QEMU) missing.
func Image(t testing.TB) guest.Image {
	t.Helper()
	harness.RequireRoot(t, "guest image builder (apt-get download)")
	for _, prog := range []string{"apt-get", "dpkg-deb", "ldd", "busybox", "pcscd", "opensc-tool", "pkcs11-tool", "pcsc_scan"} {
		harness.LookPath(t, "guest image builder", prog)
	}
	harness.LookPath(t, "QEMU (qemu-system-x86)", guest.DefaultQEMU)
	defaultImage.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		defaultImage.img, defaultImage.err = guest.Build(ctx, guest.BuildOptions{})
	})
	if defaultImage.err != nil {
		t.Fatalf("building the guest image: %v", defaultImage.err)
	}
	return defaultImage.img
}
