package guest_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/e2e/e2etest"
	"github.com/vscardkit/vscardkit/internal/guest"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupCommands()
	os.Exit(code)
}

// testImage is the default guest image (e2etest.Image).
func testImage(t testing.TB) guest.Image {
	t.Helper()
	return e2etest.Image(t)
}

// bootOptions returns the options that boot the guest with c's smartcard,
// its QEMU arguments as xmlconfig writes them, on libvirt's USB controller.
func bootOptions(t testing.TB, c xmlconfig.Config, scenario string, params map[string]string) guest.BootOptions {
	t.Helper()
	args, err := c.QEMUArgs()
	if err != nil {
		t.Fatal(err)
	}
	return guest.BootOptions{Scenario: scenario, Params: params, LibvirtUSB: true, ExtraQEMUArgs: args}
}

// boot boots the guest with opts and waits until QEMU's chardev listens on
// c's port (see e2etest.Boot).
func boot(t testing.TB, ctx context.Context, c xmlconfig.Config, opts guest.BootOptions) *guest.VM {
	t.Helper()
	return e2etest.Boot(t, ctx, testImage(t), opts, net.JoinHostPort(xmlconfig.DefaultHost, strconv.Itoa(c.Port)))
}

// startClient starts the built vscclient-go with the card arguments, then
// the client command xmlconfig prints for c. env, when not nil, is added
// to this process's environment.
func startClient(t testing.TB, c xmlconfig.Config, env []string, cardArgs ...string) *harness.Process {
	t.Helper()
	connect, err := c.ClientArgs()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(harness.Commands(t), xmlconfig.ClientProgram), append(slices.Clip(cardArgs), connect...)...)
	cmd.Env = append(os.Environ(), env...)
	return harness.Start(t, xmlconfig.ClientProgram, cmd)
}

// run is one scenario's part of a guest's output: the markers between its
// VSCARD-BEGIN and VSCARD-END lines. A scenario may run more than once in
// a boot; guest.Result.Values keeps only the last value of each key.
type run struct {
	name   string
	rc     int
	values map[string]string
	errors []string
	events []guest.Marker
	// begin and end are when the host read the BEGIN and END lines,
	// from QEMU's start.
	begin, end time.Duration
}

// runs splits the guest's markers by scenario run, in order.
func runs(res guest.Result) []run {
	var out []run
	var cur *run
	for _, m := range res.Markers {
		switch m.Kind {
		case guest.KindBegin:
			out = append(out, run{name: m.Name, rc: -1, values: map[string]string{}, begin: m.At})
			cur = &out[len(out)-1]
		case guest.KindEnd:
			if cur != nil && cur.name == m.Name {
				if rc, err := m.Int("rc"); err == nil {
					cur.rc = rc
				}
				cur.end = m.At
			}
			cur = nil
		case guest.KindResult:
			if cur != nil {
				cur.values[m.Name] = m.Value
			}
		case guest.KindError:
			if cur != nil {
				cur.errors = append(cur.errors, m.Value)
			}
		case guest.KindEvent:
			if cur != nil {
				cur.events = append(cur.events, m)
			}
		}
	}
	return out
}

// waitRuns waits for the guest to power off and returns its scenario runs,
// failing t unless the guest ran exactly the scenarios of opts, in order,
// each with status 0.
func waitRuns(t testing.TB, ctx context.Context, vm *guest.VM, opts guest.BootOptions) []run {
	t.Helper()
	res, err := vm.Wait(ctx)
	if err != nil {
		t.Fatalf("the guest: %v", err)
	}
	rs := runs(res)
	var names, took []string
	for _, r := range rs {
		names = append(names, fmt.Sprintf("%s rc=%d", r.name, r.rc))
		took = append(took, fmt.Sprintf("%s %.1fs", r.name, (r.end-r.begin).Seconds()))
	}
	for _, m := range res.Markers {
		if m.Kind == guest.KindEvent && m.Name == "reader" {
			t.Logf("guest: reader listed %.1fs after QEMU started; scenarios: %s", m.At.Seconds(), strings.Join(took, ", "))
			break
		}
	}
	var want []string
	for _, s := range strings.Split(opts.Scenario, ",") {
		want = append(want, s+" rc=0")
	}
	if !slices.Equal(names, want) {
		t.Fatalf("the guest ran %v, want %v", names, want)
	}
	return rs
}

// checkReaders checks a readers run: one reader, QEMU's, holding a card
// with atr.
func checkReaders(t testing.TB, r run, atr []byte) {
	t.Helper()
	if r.values["readers"] != "1" {
		t.Errorf("the guest lists %q readers, want 1", r.values["readers"])
	}
	// libccid names QEMU's emulated reader (08e6:4433) after the Gemalto
	// reader it imitates.
	if name := r.values["reader.0"]; !strings.Contains(name, "Gemalto") {
		t.Errorf("the guest's reader is %q, want libccid's name for QEMU's usb-ccid", name)
	}
	if r.values["card.0"] != "present" || r.values["atr.0"] != fmt.Sprintf("%x", atr) {
		t.Errorf("the guest sees card.0=%s atr.0=%s, want present with %x", r.values["card.0"], r.values["atr.0"], atr)
	}
}

// checkAPDUs checks an apdu run: opensc-tool's exit status and each
// response (data and status word, lower-case hex) against want, where a
// "*" in a want stands for any hex digits.
func checkAPDUs(t testing.TB, r run, want []string) {
	t.Helper()
	if r.values["opensc_rc"] != "0" {
		t.Errorf("opensc-tool exited with %s: %v", r.values["opensc_rc"], r.errors)
	}
	if r.values["apdus"] != strconv.Itoa(len(want)) {
		t.Errorf("the guest printed %s responses, want %d", r.values["apdus"], len(want))
	}
	for i, w := range want {
		got := r.values["apdu."+strconv.Itoa(i)]
		ok := got == w
		if pre, post, wild := strings.Cut(w, "*"); wild {
			ok = len(got) >= len(pre)+len(post) && strings.HasPrefix(got, pre) && strings.HasSuffix(got, post)
		}
		if !ok {
			t.Errorf("response %d in the guest: %s (%d bytes)\nwant %s", i, abbrev(got), len(got)/2, abbrev(w))
		}
	}
}

// abbrev shortens a long hex string for messages.
func abbrev(s string) string {
	if len(s) <= 80 {
		return s
	}
	return fmt.Sprintf("%s...%s", s[:40], s[len(s)-20:])
}
