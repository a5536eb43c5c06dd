package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
)

// TestHotplugScenario checks the guest's hot-plug machinery without
// vscclient-go: an image with udevd and, as /usr/bin/vscclient-go, a stand-in
// script that spins on the CPU. The test unplugs QEMU's reader with QMP
// device_del, marks the idle window on the console, plugs the reader back
// with device_add, and checks what the guest reported: the reader's USB
// changes, the stand-in's CPU use over the window (most of it: the
// measurement sees a client that does not sleep), and pcscd, with udevd,
// listing the reader that came back.
func TestHotplugScenario(t *testing.T) {
	t.Parallel()
	testImage(t) // the peers, and the base image's cache
	harness.LookPath(t, "udev (systemd-udevd for the guest)", "udevadm")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	spin := filepath.Join(t.TempDir(), "spin")
	if err := os.WriteFile(spin, []byte("#!/bin/sh\nwhile :; do :; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := Build(ctx, BuildOptions{Udev: true, ExtraFiles: []File{{Host: spin, Guest: "/usr/bin/vscclient-go"}}})
	if err != nil {
		t.Fatal(err)
	}
	port := harness.FreePort(t)
	vm := bootTest(t, ctx, img, BootOptions{
		Scenario: "client,hotplug,readers",
		Params:   map[string]string{"udev": "1", "connect": "127.0.0.1:9", "changes": "2"},
		QMP:      true,
		ExtraQEMUArgs: []string{
			"-device", "usb-ccid,id=ccid0",
			"-chardev", fmt.Sprintf("socket,id=sc0,host=127.0.0.1,port=%d,server=on,wait=off", port),
			"-device", "ccid-card-passthru,chardev=sc0,bus=ccid0.0,id=card0",
		},
	})
	if _, err := vm.WaitEvent(ctx, "client"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.QMP(ctx, "device_del", map[string]any{"id": "ccid0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitQMPEvent(ctx, "DEVICE_DELETED", DeviceDeleted("ccid0")); err != nil {
		t.Fatal(err)
	}
	if ev, err := vm.WaitEvent(ctx, "usb"); err != nil || ev.Fields["state"] != "absent" {
		t.Fatalf("usb event %v (%v), want state=absent", ev.Fields, err)
	}
	if err := vm.SendLine("idle"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitEvent(ctx, "idle-start"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the window the guest measures
	for _, dev := range []map[string]any{
		{"driver": "usb-ccid", "id": "ccid0"},
		{"driver": "ccid-card-passthru", "chardev": "sc0", "bus": "ccid0.0", "id": "card0"},
	} {
		if _, err := vm.QMP(ctx, "device_add", dev); err != nil {
			t.Fatal(err)
		}
	}
	res, err := vm.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ms, err1 := res.Int("idle_ms.0")
	ticks, err2 := res.Int("idle_ticks.0")
	if err := errors.Join(err1, err2); err != nil || res.Values["idle_measured"] != "1" || res.Values["changes"] != "2" {
		t.Fatalf("results %v (%v), want changes=2 and one idle window", res.Values, err)
	}
	// The spinning stand-in shares the one vCPU with the guest's shell and
	// pcscd: it gets most of the window, never a tenth of it, which is what
	// the end-to-end test allows vscclient-go.
	if ticks*10 < ms/2 {
		t.Errorf("the spinning client used %d ms of CPU in a %d ms window; the measurement misses a busy client", ticks*10, ms)
	}
	// pcscd saw the reader go and come back (udev hotplug): it lists the
	// new one, on the second USB port.
	if res.Values["readers"] != "1" || !strings.Contains(res.Values["reader.0"], "Gemalto") {
		t.Errorf("after the replug pcscd lists %s readers: %q", res.Values["readers"], res.Values["reader.0"])
	}
	t.Logf("the spinning client used %d ms of CPU in %d ms; reader after the replug: %q", ticks*10, ms, res.Values["reader.0"])
}

// TestQMPError checks that a command QEMU refuses returns a *QMPError,
// and that a VM without QMP says so.
func TestQMPError(t *testing.T) {
	t.Parallel()
	img := testImage(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// No reader: the guest waits for one for 10 s, long enough to ask.
	vm := bootTest(t, ctx, img, BootOptions{Scenario: "none", QMP: true})
	_, err := vm.QMP(ctx, "device_del", map[string]any{"id": "nosuch"})
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "DeviceNotFound" {
		t.Fatalf("device_del of a missing device: %v, want a *QMPError of class DeviceNotFound", err)
	}
	if _, err := vm.QMP(ctx, "query-status", nil); err != nil {
		t.Fatalf("query-status: %v", err)
	}
	var plain VM // as Boot makes it without BootOptions.QMP
	if _, err := plain.QMP(ctx, "query-status", nil); !errors.Is(err, ErrNoQMP) {
		t.Errorf("QMP without BootOptions.QMP: %v, want ErrNoQMP", err)
	}
}
