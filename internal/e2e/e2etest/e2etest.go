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
	"testing"

	"github.com/vscardkit/vscardkit/internal/guest"
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
