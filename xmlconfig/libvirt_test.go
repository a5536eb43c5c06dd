package xmlconfig

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/tlscerts"
)

// These tests check xmlconfig's output with libvirt itself: its schema
// (virt-xml-validate) and the QEMU command line a real libvirtd 9 makes of
// it (virsh domxml-to-native), under a private libvirtd whose qemu.conf
// holds the settings QEMUConf prints.

var (
	libvirtd harness.SharedLibvirtd
	// tlsDir is the chardev TLS directory of the shared libvirtd.
	tlsDir string
)

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "xmlconfig-tls-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if _, err := tlscerts.Generate(dir, tlscerts.Options{}, false); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		tlsDir = dir
		conf, err := Config{Port: 1, TLS: true, TLSDir: dir}.QEMUConf()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		libvirtd.Options.QEMUConf = conf
		defer func() {
			if err := libvirtd.Close(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
		return m.Run()
	}()
	os.Exit(code)
}

// virtXMLValidate runs libvirt's schema check on doc and returns its error
// and output.
func virtXMLValidate(t *testing.T, doc []byte) (string, error) {
	t.Helper()
	harness.LookPath(t, "virt-xml-validate (libvirt-clients)", "virt-xml-validate")
	harness.LookPath(t, "xmllint (libxml2-utils), which virt-xml-validate runs", "xmllint")
	f := filepath.Join(t.TempDir(), "domain.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("virt-xml-validate", f, "domain").CombinedOutput()
	return string(out), err
}

func mustValidate(t *testing.T, what string, doc []byte) {
	t.Helper()
	if out, err := virtXMLValidate(t, doc); err != nil {
		t.Errorf("%s fails libvirt's schema: %v\n%s\n%s", what, err, out, doc)
	}
}

// TestSchemaAcceptsEverythingGenerated: every domain xmlconfig generates,
// and every domain it edits, passes virt-xml-validate.
func TestSchemaAcceptsEverythingGenerated(t *testing.T) {
	realWorld := readFixture(t, "domain-realworld.xml")
	mustValidate(t, "the real-world fixture", realWorld)
	for _, tc := range modeCases {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := NewDomainXML("vsck-"+tc.name, tc.c)
			if err != nil {
				t.Fatal(err)
			}
			mustValidate(t, "NewDomainXML", doc)
			e, err := AddSmartcard(realWorld, tc.c)
			if err != nil {
				t.Fatal(err)
			}
			mustValidate(t, "the real-world domain with the smartcard", e.Domain)
		})
	}
	for _, name := range []string{"domain-draft-tcp.xml", "domain-draft-nomode.xml", "domain-draft-spicevmc.xml"} {
		t.Run(name, func(t *testing.T) {
			draft := readFixture(t, name)
			// The schema refuses the draft form (so this check can
			// fail), and accepts its translation.
			if _, err := virtXMLValidate(t, draft); err == nil {
				t.Errorf("libvirt's schema accepts the draft form of %s", name)
			}
			e, err := UpgradeDraft(draft)
			if err != nil {
				t.Fatal(err)
			}
			mustValidate(t, "the translated draft", e.Domain)
		})
	}
}

// shellSplit splits a POSIX shell command line (as virsh domxml-to-native
// prints it) into words: blanks separate, '...' is literal, "..." and a
// backslash escape, backslash-newline continues the line.
func shellSplit(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case c == '\\':
			if i+1 < len(s) {
				i++
				if s[i] == '\n' {
					continue
				}
				cur.WriteByte(s[i])
				inWord = true
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func TestShellSplit(t *testing.T) {
	got, err := shellSplit(`A=1 /bin/q -x '{"a":"b c"}' "d\"e" f\ g \
 h`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "/bin/q", "-x", `{"a":"b c"}`, `d"e`, "f g", "h"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("shellSplit = %q, want %q", got, want)
	}
}

// libvirtArgv returns the QEMU argv libvirt makes of doc.
func libvirtArgv(t *testing.T, l *harness.Libvirtd, doc []byte) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "domain.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := l.Virsh(ctx, "domxml-to-native", "qemu-argv", f)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	t.Logf("domxml-to-native took %v", time.Since(start))
	args, err := shellSplit(out)
	if err != nil {
		t.Fatal(err)
	}
	return args
}

// TestLibvirtArgvMatchesQEMUArgs: for every mode, the usb-ccid, chardev,
// TLS object and ccid-card arguments libvirtd generates have the keys and
// values of QEMUArgs, but for the differences QEMUArgs documents.
func TestLibvirtArgvMatchesQEMUArgs(t *testing.T) {
	l := libvirtd.Get(t)
	t.Logf("shared libvirtd started in %v", l.Started)
	for _, tc := range modeCases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			if c.TLS {
				// The directory the libvirtd's qemu.conf names.
				c.TLSDir = tlsDir
			}
			theirs, ours := bothSmartcardOpts(t, l, "vsck-"+tc.name, c)
			n, _ := c.normalized()
			// The documented differences.
			if ccid, ok := theirs["-device "+ControllerID]; ok && (n.Controller == nil || n.Controller.USBPort == "") {
				if ccid.props["bus"] != "usb.0" || ccid.props["port"] == "" {
					t.Errorf("libvirt's usb-ccid is not on a port of usb.0: %s", ccid)
				}
				delete(ccid.props, "bus")
				delete(ccid.props, "port")
			}
			if ch, ok := ours["-chardev "+ChardevID]; ok && n.Transport == TCP {
				if ch.props["nodelay"] != "on" {
					t.Errorf("our TCP chardev lacks nodelay=on: %s", ch)
				}
				delete(ch.props, "nodelay")
			}
			if obj, ok := ours["-object "+TLSObjectID]; ok {
				if obj.props["priority"] != TLSPriority {
					t.Errorf("our TLS object lacks priority=%s: %s", TLSPriority, obj)
				}
				delete(obj.props, "priority")
			}
			sameOpts(t, theirs, ours)
		})
	}
}

// bothSmartcardOpts returns the smartcard options of the QEMU argv libvirt
// makes of c's domain (named name) and of c.QEMUArgs.
func bothSmartcardOpts(t *testing.T, l *harness.Libvirtd, name string, c Config) (theirs, ours map[string]qemuOpt) {
	t.Helper()
	doc, err := NewDomainXML(name, c)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err = smartcardOpts(libvirtArgv(t, l, doc))
	if err != nil {
		t.Fatal(err)
	}
	args, err := c.QEMUArgs()
	if err != nil {
		t.Fatal(err)
	}
	ours, err = smartcardOpts(args)
	if err != nil {
		t.Fatal(err)
	}
	return theirs, ours
}

// sameOpts reports every way ours differs from libvirt's options.
func sameOpts(t *testing.T, theirs, ours map[string]qemuOpt) {
	t.Helper()
	if len(theirs) != len(ours) {
		t.Errorf("libvirt makes %d smartcard options, QEMUArgs %d:\n%v\n%v", len(theirs), len(ours), theirs, ours)
	}
	for key, want := range theirs {
		got, ok := ours[key]
		if !ok {
			t.Errorf("QEMUArgs lacks libvirt's %s", want)
			continue
		}
		if got.String() != want.String() {
			t.Errorf("QEMUArgs has\n  %s\nlibvirt has\n  %s", got, want)
		}
	}
}

// TestLibvirtChardevIsLibvirts: with LibvirtChardev and the USB port
// libvirt picks, QEMUArgs' smartcard options are libvirt's key for key,
// with no documented difference left, so that a test can boot plain QEMU
// with exactly the chardev a libvirt user gets.
func TestLibvirtChardevIsLibvirts(t *testing.T) {
	l := libvirtd.Get(t)
	for name, c := range map[string]Config{
		"tcp":     {Port: 2011, Controller: &CCIDController{USBPort: "1"}, LibvirtChardev: true},
		"tcp-tls": {Port: 2012, TLS: true, TLSDir: tlsDir, Controller: &CCIDController{USBPort: "1"}, LibvirtChardev: true},
	} {
		t.Run(name, func(t *testing.T) {
			theirs, ours := bothSmartcardOpts(t, l, "vsck-libvirt-chardev-"+name, c)
			if ch := theirs["-chardev "+ChardevID]; ch.props["nodelay"] != "" {
				t.Errorf("libvirt's chardev has nodelay: %s", ch)
			}
			sameOpts(t, theirs, ours)
		})
	}
}

// TestLibvirtRefusesWhatXMLConfigRefuses: libvirt rejects the things
// xmlconfig refuses to generate (a second smartcard, slot 1), so refusing
// them is right.
func TestLibvirtRefusesWhatXMLConfigRefuses(t *testing.T) {
	l := libvirtd.Get(t)
	for name, devices := range map[string]string{
		"two smartcards": `<smartcard mode='host'/><smartcard mode='passthrough' type='spicevmc'/><graphics type='spice'/>`,
		"slot 1":         `<smartcard mode='host'><address type='ccid' controller='0' slot='1'/></smartcard>`,
		"usb off":        `<controller type='usb' model='none'/><smartcard mode='host'/>`,
		"spicevmc alone": `<smartcard mode='passthrough' type='spicevmc'/>`,
	} {
		t.Run(name, func(t *testing.T) {
			doc := "<domain type='qemu'><name>vsck-refused</name><memory unit='MiB'>64</memory>" +
				"<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>" + devices + "</devices></domain>"
			f := filepath.Join(t.TempDir(), "domain.xml")
			if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if out, err := l.Virsh(ctx, "domxml-to-native", "qemu-argv", f); err == nil {
				t.Errorf("libvirt accepts %s:\n%s", name, out)
			}
		})
	}
}
