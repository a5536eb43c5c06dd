package guest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	e2e "github.com/vscardkit/vscardkit/internal/e2e/guest"
	"github.com/vscardkit/vscardkit/internal/guest"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

// qemuOpt is a -device or -chardev option: its driver (or backend) and
// its other keys, booleans as on/off, from either syntax QEMU takes
// (libvirt writes -device in JSON, xmlconfig in key=value).
type qemuOpt struct {
	flag, kind string
	props      map[string]string
}

func (o qemuOpt) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", o.flag, o.kind)
	for _, k := range slices.Sorted(maps.Keys(o.props)) {
		fmt.Fprintf(&b, " %s=%s", k, o.props[k])
	}
	return b.String()
}

func normBool(v string) string {
	switch v {
	case "on", "true", "yes":
		return "on"
	case "off", "false", "no":
		return "off"
	}
	return v
}

func parseOpt(flag, val string) (qemuOpt, error) {
	o := qemuOpt{flag: flag, props: map[string]string{}}
	kindKey := map[string]string{"-device": "driver", "-chardev": "backend"}[flag]
	if strings.HasPrefix(val, "{") {
		var m map[string]any
		if err := json.Unmarshal([]byte(val), &m); err != nil {
			return o, fmt.Errorf("%s %s: %w", flag, val, err)
		}
		for k, v := range m {
			s := normBool(fmt.Sprint(v))
			if k == kindKey {
				o.kind = s
			} else {
				o.props[k] = s
			}
		}
		return o, nil
	}
	// key=value: no value here holds a comma, so ",," needs no care.
	for i, f := range strings.Split(val, ",") {
		k, v, ok := strings.Cut(f, "=")
		switch {
		case !ok && i == 0:
			o.kind = f
		case !ok:
			return o, fmt.Errorf("%s %s: field %q has no value", flag, val, f)
		case k == kindKey:
			o.kind = v
		default:
			o.props[k] = normBool(v)
		}
	}
	return o, nil
}

// smartcardOpts returns the options of args that make the guest's smart
// card path: the USB controller libvirt gives a pc machine, usb-ccid,
// ccid-card-passthru and the chardev charsmartcard0, keyed by flag and
// driver.
func smartcardOpts(args []string) (map[string]qemuOpt, error) {
	out := map[string]qemuOpt{}
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "-device" && args[i] != "-chardev" {
			continue
		}
		o, err := parseOpt(args[i], args[i+1])
		if err != nil {
			return nil, err
		}
		i++
		switch {
		case o.flag == "-device" && (o.kind == "piix3-usb-uhci" || o.kind == "usb-ccid" || o.kind == "ccid-card-passthru"):
		case o.flag == "-chardev" && o.props["id"] == xmlconfig.ChardevID:
		default:
			continue
		}
		key := o.flag + " " + o.kind
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("two %s", key)
		}
		out[key] = o
	}
	return out, nil
}

// shellWords splits the command line virsh domxml-to-native prints:
// blanks separate words, '...' quotes, backslash-newline continues.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"' || c == '\\':
			return nil, fmt.Errorf("unexpected %q in %q", c, s)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// TestQEMUArgvIsLibvirts: the guests of these tests boot with the USB
// controller, usb-ccid, chardev and ccid-card-passthru options that a real
// libvirtd 9 generates (virsh domxml-to-native) for the domain xmlconfig
// writes for the same smartcard: key for key, so the chardev has no
// nodelay, as a libvirt user's has not.
func TestQEMUArgvIsLibvirts(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	l := harness.StartLibvirtd(t, harness.LibvirtdOptions{})
	c := e2e.Smartcard(harness.FreePort(t))
	doc, err := xmlconfig.NewDomainXML("vsck-guest-e2e", c)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "domain.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := l.Virsh(ctx, "domxml-to-native", "qemu-argv", f)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	words, err := shellWords(out)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := smartcardOpts(words)
	if err != nil {
		t.Fatal(err)
	}
	args, err := bootOptions(t, c, "none", nil).QEMUArgs(guest.Image{Kernel: "vmlinux", Initramfs: "initramfs.cpio"})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(args, "-usb") {
		t.Errorf("the guest's argv has -usb besides libvirt's controller: %q", args)
	}
	ours, err := smartcardOpts(args)
	if err != nil {
		t.Fatal(err)
	}
	if len(theirs) != 4 {
		t.Fatalf("libvirt's argv has %d of the 4 options looked for:\n%s", len(theirs), out)
	}
	if ch := theirs["-chardev socket"]; ch.props["nodelay"] != "" {
		t.Errorf("libvirt's chardev has nodelay: %s", ch)
	}
	for key, want := range theirs {
		if got, ok := ours[key]; !ok || got.String() != want.String() {
			t.Errorf("the guest boots with\n  %s\nlibvirt generates\n  %s", got, want)
		}
	}
	if len(ours) != len(theirs) {
		t.Errorf("the guest's argv has %d smartcard options, libvirt's %d: %v", len(ours), len(theirs), ours)
	}
}
