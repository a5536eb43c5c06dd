package guest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
)

// Integration tests: they build the image (cached between runs) and boot it
// under the real QEMU with usb-ccid and ccid-card-passthru.

var (
	imageOnce sync.Once
	image     Image
	imageErr  error
)

// testImage builds the guest image once per test binary, or reports the
// peers missing.
func testImage(t testing.TB) Image {
	t.Helper()
	harness.RequireRoot(t, "guest image builder (apt-get download)")
	for _, prog := range []string{"apt-get", "apt-cache", "dpkg-deb", "xz", "ldd", "busybox", "pcscd", "opensc-tool", "pkcs11-tool", "pcsc_scan"} {
		harness.LookPath(t, "guest image builder", prog)
	}
	harness.LookPath(t, "QEMU", DefaultQEMU)
	imageOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		image, imageErr = Build(ctx, BuildOptions{})
	})
	if imageErr != nil {
		t.Fatalf("building the guest image: %v", imageErr)
	}
	return image
}

// libvirtCCIDArgs returns the QEMU arguments libvirt 9 generates for the pc
// machine's USB controller and a passthrough smartcard on a TCP chardev (see
// the protocol notes), with nodelay=on added when nodelay is set. Boot them
// with NoDefaultUSB.
func libvirtCCIDArgs(port int, nodelay bool) []string {
	chardev := fmt.Sprintf("socket,id=charsmartcard0,host=127.0.0.1,port=%d,server=on,wait=off", port)
	if nodelay {
		chardev += ",nodelay=on"
	}
	return []string{
		"-device", `{"driver":"piix3-usb-uhci","id":"usb","bus":"pci.0","addr":"0x1.0x2"}`,
		"-device", `{"driver":"usb-ccid","id":"ccid0","bus":"usb.0","port":"1"}`,
		"-chardev", chardev,
		"-device", `{"driver":"ccid-card-passthru","chardev":"charsmartcard0","id":"smartcard0","bus":"ccid0.0"}`,
	}
}

// bootTest boots img and registers a cleanup that closes the VM and, when
// the test failed, logs its console.
func bootTest(t testing.TB, ctx context.Context, img Image, opts BootOptions) *VM {
	t.Helper()
	vm, err := Boot(ctx, img, opts)
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	t.Cleanup(func() {
		vm.Close()
		if t.Failed() {
			t.Logf("--- guest console (QEMU pid %d):\n%s", vm.PID(), vm.Console())
		}
	})
	return vm
}

// withResponder boots a guest running scenario with the QEMU chardev, then
// connects a responder to it once QEMU listens.
func withResponder(t testing.TB, ctx context.Context, scenario string, params map[string]string, nodelay bool, mode ackMode, answer func([]byte) []byte) (*VM, *responder) {
	t.Helper()
	return withClient(t, ctx, scenario, params, nodelay, clientConfig{ack: mode}, answer)
}

// clientConfig is how the test's VSCard client treats its socket.
type clientConfig struct {
	ack        ackMode
	splitNagle bool
	atr        []byte // nil means testATR
}

func (c clientConfig) String() string {
	if c.splitNagle {
		return c.ack.String() + "+split-writes-nagle"
	}
	return c.ack.String()
}

func withClient(t testing.TB, ctx context.Context, scenario string, params map[string]string, nodelay bool, cc clientConfig, answer func([]byte) []byte) (*VM, *responder) {
	t.Helper()
	img := testImage(t)
	port := harness.FreePort(t)
	vm := bootTest(t, ctx, img, BootOptions{Scenario: scenario, Params: params, NoDefaultUSB: true, ExtraQEMUArgs: libvirtCCIDArgs(port, nodelay)})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	harness.WaitTCP(t, addr, 30*time.Second)
	r, err := dialResponder(ctx, addr, cc.ack, cc.splitNagle, cc.atr, answer)
	if err != nil {
		t.Fatalf("responder: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("responder: %v", err)
		}
	})
	return vm, r
}

func TestBuildIsCached(t *testing.T) {
	img := testImage(t)
	ctx := t.Context()
	again, err := Build(ctx, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.Key != img.Key || again.Initramfs != img.Initramfs || again.Kernel != img.Kernel {
		t.Fatalf("second Build = %+v, want the cached %+v", again, img)
	}
	// The archive must hold what the init script needs; cpio(1) reads it
	// back (an independent reader of the format).
	if _, err := exec.LookPath("cpio"); err != nil {
		harness.Missing(t, "cpio", err)
	}
	out, err := exec.CommandContext(ctx, "sh", "-c", `cpio -it --quiet < "$1"`, "sh", img.Initramfs).Output()
	if err != nil {
		t.Fatalf("cpio -it: %v", err)
	}
	names := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		names[l] = true
	}
	for _, want := range []string{
		"init", "dev/console", "usr/bin/busybox", "usr/sbin/pcscd", "usr/bin/opensc-tool",
		"usr/bin/pkcs11-tool", "usr/bin/pcsc_scan", "usr/lib64/ld-linux-x86-64.so.2",
		"usr/lib/x86_64-linux-gnu/libpcsclite.so.1", "usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
		"usr/lib/x86_64-linux-gnu/libgcc_s.so.1", "usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist",
		"usr/lib/modules/usb-common.ko", "usr/lib/modules/usbcore.ko", "usr/lib/modules/uhci-hcd.ko",
	} {
		if !names[want] {
			t.Errorf("initramfs lacks %s", want)
		}
	}
}

func TestReadersWithoutClient(t *testing.T) {
	t.Parallel()
	img := testImage(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// QEMU's chardev listens but no client connects: the reader is there,
	// without a card. The short form of the notes, on -usb's controller.
	port := harness.FreePort(t)
	vm := bootTest(t, ctx, img, BootOptions{Scenario: "readers", ExtraQEMUArgs: []string{
		"-device", "usb-ccid,id=ccid0",
		"-chardev", fmt.Sprintf("socket,id=sc0,host=127.0.0.1,port=%d,server=on,wait=off", port),
		"-device", "ccid-card-passthru,chardev=sc0,bus=ccid0.0",
	}})
	ev, err := vm.WaitEvent(ctx, "reader")
	if err != nil {
		t.Fatal(err)
	}
	res, err := vm.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.Int("readers"); err != nil || n != 1 {
		t.Fatalf("readers = %q, want 1 (%v)", res.Values["readers"], err)
	}
	// libccid names QEMU's emulated reader (08e6:4433) after the Gemalto
	// reader it imitates.
	if name := res.Values["reader.0"]; !strings.Contains(name, "Gemalto") || !strings.HasSuffix(name, " 00 00") {
		t.Errorf("reader.0 = %q, want libccid's name for 08e6:4433", name)
	}
	if res.Values["card.0"] != "absent" {
		t.Errorf("card.0 = %q, want absent", res.Values["card.0"])
	}
	t.Logf("reader listed after %v (QEMU start to marker); guest uptime %s ms", ev.At.Round(time.Millisecond), ev.Fields["uptime_ms"])
}

// TestCardPath runs three scenarios in one boot with the test's VSCard
// client as the card: the reader with the card's ATR, raw APDUs whose
// responses carry data, and the latency scenario (its numbers are
// measured by BenchmarkAPDULatency; here it only has to run and count
// right).
func TestCardPath(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	select9 := "00a4040009a00000030800001000"
	echo := "80ee000004deadbeef00"
	// 40 data bytes, so the response spans more than one line of
	// opensc-tool's hex dump.
	long := "80ee000028" + strings.Repeat("0123456789", 8) + "00"
	params := map[string]string{"apdus": select9 + "," + echo + "," + long, "count": "20"}
	vm, r := withResponder(t, ctx, "readers,apdu,latency", params, false, ackQuick, answer9000)
	res, err := vm.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []End{{"readers", 0}, {"apdu", 0}, {"latency", 0}}
	if !slices.Equal(res.Ends, want) {
		t.Errorf("Ends = %v, want %v", res.Ends, want)
	}

	// readers
	if res.Values["card.0"] != "present" || res.Values["atr.0"] != hex.EncodeToString(testATR) {
		t.Errorf("card.0 = %q atr.0 = %q, want present %x", res.Values["card.0"], res.Values["atr.0"], testATR)
	}

	// apdu
	wantResp := []string{"9000", "deadbeef9000", strings.Repeat("0123456789", 8) + "9000"}
	if n, _ := res.Int("apdus"); n != len(wantResp) {
		t.Errorf("guest printed %d responses, want %d: %v", n, len(wantResp), res.Values)
	}
	for i, w := range wantResp {
		if got := res.Values[fmt.Sprintf("apdu.%d", i)]; got != w {
			t.Errorf("apdu.%d = %s, want %s", i, got, w)
		}
	}
	// The card received our commands. The ATR's first protocol is T=0
	// (TD1 = 80), where a case 4 command travels without its Le, so
	// OpenSC drops the trailing 00.
	seen := map[string]int{}
	for _, a := range r.received() {
		seen[hex.EncodeToString(a)]++
	}
	for _, a := range []string{strings.TrimSuffix(echo, "00"), strings.TrimSuffix(long, "00")} {
		if seen[a] != 1 {
			t.Errorf("the card received %s %d times, want once; it received %x", a, seen[a], r.received())
		}
	}

	// latency: 1 + 20 SELECTs, plus the one of the apdu scenario.
	if n, err := res.Int("responses"); err != nil || n != 20 {
		t.Errorf("responses = %q (%v), want 20", res.Values["responses"], err)
	}
	for _, k := range []string{"total_ms", "base_ms", "per_apdu_us"} {
		if _, err := res.Int(k); err != nil {
			t.Error(err)
		}
	}
	if seen[select9] != 22 {
		t.Errorf("the card received the SELECT %d times, want 22", seen[select9])
	}
}

func TestWatch(t *testing.T) {
	for _, method := range []string{"poll", "pcsc_scan"} {
		t.Run(method, func(t *testing.T) { testWatch(t, method) })
	}
}

func testWatch(t *testing.T, method string) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	vm, r := withResponder(t, ctx, "watch", map[string]string{"changes": "4", "method": method, "timeout": "60"}, false, ackQuick, answer9000)
	expect := func(state string) {
		t.Helper()
		ev, err := vm.WaitEvent(ctx, "card")
		if err != nil {
			t.Fatal(err)
		}
		if ev.Fields["state"] != state {
			t.Fatalf("card event %v, want state=%s", ev.Fields, state)
		}
	}
	expect("present")
	for range 2 {
		if err := r.removeCard(); err != nil {
			t.Fatal(err)
		}
		expect("absent")
		if err := r.insertCard(); err != nil {
			t.Fatal(err)
		}
		expect("present")
	}
	res, err := vm.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.Int("changes"); n != 4 {
		t.Errorf("changes = %q, want 4", res.Values["changes"])
	}
}

func TestUnknownScenario(t *testing.T) {
	t.Parallel()
	img := testImage(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// The guest checks the names before it waits for the reader, so no
	// USB device is needed.
	vm := bootTest(t, ctx, img, BootOptions{Scenario: "none,nosuch"})
	res, err := vm.Wait(ctx)
	var se *ScenarioError
	if !errors.As(err, &se) {
		t.Fatalf("Wait err = %v, want a *ScenarioError", err)
	}
	if se.Scenario != "nosuch" || se.RC != 2 || res.RC != 2 || len(se.Errors) == 0 {
		t.Errorf("ScenarioError = %+v, result rc %d; want scenario nosuch rc 2 with the guest's error", se, res.RC)
	}
	if len(res.Ends) != 1 {
		t.Errorf("Ends = %v, want only nosuch's (none must not run)", res.Ends)
	}
}

func TestContextEndKillsGuest(t *testing.T) {
	t.Parallel()
	img := testImage(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bootCtx, stop := context.WithCancel(ctx)
	// No USB device: left alone, the guest would wait 10 s for the reader.
	vm := bootTest(t, bootCtx, img, BootOptions{Scenario: "readers"})
	if _, err := vm.WaitEvent(ctx, "init"); err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case <-vm.Done():
	case <-ctx.Done():
		t.Fatal("QEMU still runs after Boot's context ended")
	}
	if _, err := vm.Wait(ctx); !errors.Is(err, ErrNoEnd) {
		t.Errorf("Wait err = %v, want ErrNoEnd", err)
	}
	if _, err := vm.WaitEvent(ctx, "reader"); !errors.Is(err, ErrExited) {
		t.Errorf("WaitEvent after exit: err = %v, want ErrExited", err)
	}
	if err := vm.Close(); err != nil {
		t.Errorf("Close after exit: %v", err)
	}
}
