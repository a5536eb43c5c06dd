package xmlconfig

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"
)

const fixtures = "../testdata/xmlconfig"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cnode is a canonical form of an XML element: namespace-qualified name,
// sorted attributes, trimmed text, comments as children; whitespace between
// elements, quoting and attribute order do not matter.
type cnode struct {
	name  string
	attrs []string
	text  string
	kids  []*cnode
}

func (n *cnode) write(b *strings.Builder, depth int) {
	fmt.Fprintf(b, "%s%s %v %q\n", strings.Repeat(" ", depth), n.name, n.attrs, n.text)
	for _, k := range n.kids {
		k.write(b, depth+1)
	}
}

func (n *cnode) String() string {
	var b strings.Builder
	n.write(&b, 0)
	return b.String()
}

func (n *cnode) attr(name string) string {
	for _, a := range n.attrs {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func (n *cnode) child(name string) *cnode {
	for _, k := range n.kids {
		if k.name == name {
			return k
		}
	}
	return nil
}

func canon(t testing.TB, doc []byte) *cnode {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	root := &cnode{name: "#document"}
	stack := []*cnode{root}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("canon: %v", err)
		}
		top := stack[len(stack)-1]
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &cnode{name: tok.Name.Space + ":" + tok.Name.Local}
			for _, a := range tok.Attr {
				n.attrs = append(n.attrs, a.Name.Space+":"+a.Name.Local+"="+a.Value)
			}
			sort.Strings(n.attrs)
			top.kids = append(top.kids, n)
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			top.text += strings.TrimSpace(string(tok))
		case xml.Comment:
			top.kids = append(top.kids, &cnode{name: "#comment", text: strings.TrimSpace(string(tok))})
		}
	}
	return root
}

// devicesOf returns the canonical <devices> of a canonical document.
func devicesOf(doc *cnode) *cnode {
	for _, k := range doc.kids {
		if k.name == ":domain" {
			return k.child(":devices")
		}
	}
	return nil
}

// withoutAdded returns doc's canonical form without the smartcard and the
// CCID controller, and those removed elements.
func withoutAdded(t *testing.T, doc []byte) (rest *cnode, removed []*cnode) {
	c := canon(t, doc)
	dev := devicesOf(c)
	if dev == nil {
		t.Fatalf("no <devices> in\n%s", doc)
	}
	var kept []*cnode
	for _, k := range dev.kids {
		if k.name == ":smartcard" || (k.name == ":controller" && k.attr(":type") == "ccid") {
			removed = append(removed, k)
			continue
		}
		kept = append(kept, k)
	}
	dev.kids = kept
	return c, removed
}

// insertedLines returns the lines of edited that are not in orig when orig's
// lines are a subsequence of edited's (a line-level LCS), or fails t.
func insertedLines(t *testing.T, orig, edited []byte) []string {
	t.Helper()
	a := strings.SplitAfter(string(orig), "\n")
	b := strings.SplitAfter(string(edited), "\n")
	// lcs[i][j]: LCS length of a[i:], b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	if lcs[0][0] != len(a) {
		t.Fatalf("the edit changed or removed %d original lines", len(a)-lcs[0][0])
	}
	var extra []string
	i, j := 0, 0
	for j < len(b) {
		if i < len(a) && a[i] == b[j] && lcs[i][j] == lcs[i+1][j+1]+1 {
			i, j = i+1, j+1
			continue
		}
		extra = append(extra, b[j])
		j++
	}
	return extra
}

func TestAddSmartcardRealWorld(t *testing.T) {
	orig := readFixture(t, "domain-realworld.xml")
	c := Config{Port: 2001, TLS: true, Address: &CCIDAddress{}, Controller: &CCIDController{USBPort: "4"}}
	e, err := AddSmartcard(orig, c)
	if err != nil {
		t.Fatal(err)
	}
	// Line by line: the original is untouched, and what was added is the
	// controller and the smartcard, indented like the other devices.
	extra := insertedLines(t, orig, e.Domain)
	want, err := c.DevicesXML()
	if err != nil {
		t.Fatal(err)
	}
	var wantLines []string
	for _, l := range strings.SplitAfter(strings.TrimSuffix(string(want), "\n"), "\n") {
		wantLines = append(wantLines, "    "+l)
	}
	wantLines[len(wantLines)-1] += "\n"
	if strings.Join(extra, "") != strings.Join(wantLines, "") {
		t.Errorf("inserted lines:\n%s\nwant:\n%s", strings.Join(extra, ""), strings.Join(wantLines, ""))
	}
	// Canonically: removing the added devices gives back the original.
	rest, removed := withoutAdded(t, e.Domain)
	if got, want := rest.String(), canon(t, orig).String(); got != want {
		t.Errorf("canonical domain changed beyond the added devices:\n%s\nwant\n%s", got, want)
	}
	if len(removed) != 2 {
		t.Fatalf("added %d devices, want the controller and the smartcard", len(removed))
	}
	// Placement: the controller after the last controller, the smartcard
	// before the devices libvirt lists last.
	s := string(e.Domain)
	ctl := strings.Index(s, "<controller type=\"ccid\"")
	lastOtherCtl := strings.Index(s, "<controller type='virtio-serial'")
	sc := strings.Index(s, "<smartcard")
	wd := strings.Index(s, "<watchdog")
	if !(lastOtherCtl < ctl && ctl < strings.Index(s, "<!-- the LAN bridge")) {
		t.Errorf("the controller is not right after the last controller")
	}
	if !(strings.Index(s, "</redirdev>") < sc && sc < wd) {
		t.Errorf("the smartcard is not just before <watchdog>")
	}
	if len(e.Notices) != 0 {
		t.Errorf("notices %q for a plain insert", e.Notices)
	}
	if n, _ := c.normalized(); e.Config.Host != n.Host || e.Config.TLSDir != n.TLSDir {
		t.Errorf("Edit.Config = %+v, want the normalized config", e.Config)
	}
}

// TestAddSmartcardShapes inserts into documents of every shape and checks
// each stays as it was outside the added devices.
func TestAddSmartcardShapes(t *testing.T) {
	minimal := string(readFixture(t, "domain-minimal.xml"))
	for _, tc := range []struct {
		name string
		doc  string
		c    Config
		want string // a substring the edited document must contain
	}{
		{"minimal", minimal, Config{Port: 2001},
			"    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    <smartcard mode=\"passthrough\" type=\"tcp\">\n      <source"},
		{"self-closing devices", "<domain type='qemu'>\n  <name>x</name>\n  <devices/>\n</domain>\n", Config{Mode: Host},
			"  <devices>\n    <smartcard mode=\"host\"/>\n  </devices>\n</domain>"},
		{"self-closing devices with attribute space", "<domain type='qemu'>\n  <name>x</name>\n  <devices />\n</domain>\n", Config{Mode: Host},
			"  <devices >\n    <smartcard mode=\"host\"/>\n  </devices>\n"},
		{"no devices", "<domain type='qemu'>\n  <name>x</name>\n  <os><type>hvm</type></os>\n</domain>\n", Config{Mode: Host},
			"  <os><type>hvm</type></os>\n  <devices>\n    <smartcard mode=\"host\"/>\n  </devices>\n</domain>"},
		{"compact", "<domain type='qemu'><name>x</name><devices><emulator>/e</emulator></devices></domain>", Config{Mode: Host, Controller: &CCIDController{}},
			"<emulator>/e</emulator><controller type=\"ccid\" index=\"0\"/><smartcard mode=\"host\"/></devices>"},
		{"compact with controller", "<domain type='qemu'><name>x</name><devices><controller type='usb'/><memballoon model='none'/></devices></domain>", Config{Mode: Host, Controller: &CCIDController{}},
			"<controller type='usb'/><controller type=\"ccid\" index=\"0\"/><smartcard mode=\"host\"/><memballoon"},
		{"tabs", "<domain type='qemu'>\n\t<name>x</name>\n\t<devices>\n\t\t<emulator>/e</emulator>\n\t</devices>\n</domain>\n", Config{Port: 1},
			"\t\t<emulator>/e</emulator>\n\t\t<smartcard mode=\"passthrough\" type=\"tcp\">\n\t\t\t<source mode=\"bind\""},
		{"crlf", "<domain type='qemu'>\r\n  <name>x</name>\r\n  <devices>\r\n    <emulator>/e</emulator>\r\n  </devices>\r\n</domain>\r\n", Config{Port: 1},
			"    <emulator>/e</emulator>\r\n    <smartcard mode=\"passthrough\" type=\"tcp\">\r\n      <source"},
		{"xml declaration", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<domain type='qemu'>\n  <devices>\n  </devices>\n</domain>\n", Config{Mode: Host},
			"  <devices>\n    <smartcard mode=\"host\"/>\n  </devices>"},
		{"spicevmc with spice", "<domain type='qemu'>\n  <devices>\n    <graphics type='spice'/>\n  </devices>\n</domain>\n", Config{Transport: SpiceVMC},
			"    <graphics type='spice'/>\n    <smartcard mode=\"passthrough\" type=\"spicevmc\"/>\n  </devices>"},
		{"existing ccid controller kept", "<domain type='qemu'>\n  <devices>\n    <controller type='ccid' index='0'/>\n  </devices>\n</domain>\n", Config{Mode: Host, Controller: &CCIDController{USBPort: "2"}},
			"    <controller type='ccid' index='0'/>\n    <smartcard mode=\"host\"/>\n  </devices>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := AddSmartcard([]byte(tc.doc), tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(e.Domain), tc.want) {
				t.Errorf("edited document\n%s\nlacks\n%s", e.Domain, tc.want)
			}
			rest, removed := withoutAdded(t, e.Domain)
			orig := canon(t, []byte(tc.doc))
			if dev := devicesOf(orig); dev != nil {
				// The original's own ccid controller stays.
				var kept []*cnode
				for _, k := range dev.kids {
					if k.name == ":controller" && k.attr(":type") == "ccid" {
						continue
					}
					kept = append(kept, k)
				}
				dev.kids = kept
			} else {
				// A <devices> was added: compare without it.
				for _, k := range rest.kids {
					if k.name == ":domain" {
						var kept []*cnode
						for _, kk := range k.kids {
							if kk.name != ":devices" {
								kept = append(kept, kk)
							}
						}
						k.kids = kept
					}
				}
			}
			if rest.String() != orig.String() {
				t.Errorf("canonical document changed:\n%s\nwant\n%s", rest, orig)
			}
			if len(removed) == 0 {
				t.Errorf("nothing added")
			}
		})
	}
}

func TestAddSmartcardKeepsOwnController(t *testing.T) {
	doc := "<domain type='qemu'>\n  <devices>\n    <controller type='ccid' index='0'/>\n  </devices>\n</domain>\n"
	e, err := AddSmartcard([]byte(doc), Config{Mode: Host, Controller: &CCIDController{}})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(e.Domain), "type='ccid'") + strings.Count(string(e.Domain), `type="ccid"`); n != 1 {
		t.Errorf("%d ccid controllers in\n%s", n, e.Domain)
	}
	if len(e.Notices) != 1 || !strings.Contains(e.Notices[0], "kept the domain's own") {
		t.Errorf("notices %q, want one about the kept controller", e.Notices)
	}
}

func TestAddSmartcardRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		c    Config
		err  error
	}{
		{"second smartcard", string(readFixture(t, "domain-with-smartcard.xml")), Config{Port: 1}, ErrSecondSmartcard},
		{"draft smartcard", string(readFixture(t, "domain-draft-tcp.xml")), Config{Port: 1}, ErrSecondSmartcard},
		{"usb off", "<domain type='qemu'><devices><controller type='usb' model='none'/></devices></domain>", Config{Port: 1}, ErrIncompatibleDomain},
		{"spicevmc without spice", string(readFixture(t, "domain-minimal.xml")), Config{Transport: SpiceVMC}, ErrIncompatibleDomain},
		{"not a domain", "<network><name>x</name></network>", Config{Port: 1}, ErrNotDomain},
		{"namespaced root", "<x:domain xmlns:x='urn:x'><devices/></x:domain>", Config{Port: 1}, ErrNotDomain},
		{"malformed", "<domain><devices></domain>", Config{Port: 1}, ErrNotDomain},
		{"truncated", "<domain><devices>", Config{Port: 1}, ErrNotDomain},
		{"empty", "", Config{Port: 1}, ErrNotDomain},
		{"text only", "hello", Config{Port: 1}, ErrNotDomain},
		{"two roots", "<domain/><domain/>", Config{Port: 1}, ErrNotDomain},
		{"empty domain", "<domain/>", Config{Port: 1}, ErrNotDomain},
		{"latin-1", "<?xml version='1.0' encoding='ISO-8859-1'?><domain><devices/></domain>", Config{Port: 1}, ErrNotDomain},
		{"invalid config", string(readFixture(t, "domain-minimal.xml")), Config{}, ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := AddSmartcard([]byte(tc.doc), tc.c)
			if !errors.Is(err, tc.err) {
				t.Fatalf("AddSmartcard = %v, %v; want %v", e, err, tc.err)
			}
			if !strings.HasPrefix(err.Error(), "xmlconfig: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	// The second-smartcard error says what libvirt and QEMU allow.
	_, err := AddSmartcard(readFixture(t, "domain-with-smartcard.xml"), Config{Port: 1})
	if !strings.Contains(err.Error(), "allow one smartcard") || !strings.Contains(err.Error(), "line 8") {
		t.Errorf("error %q does not say libvirt and QEMU allow one smartcard, or where the first is", err)
	}
}

func TestUpgradeDraftTCP(t *testing.T) {
	orig := readFixture(t, "domain-draft-tcp.xml")
	e, err := UpgradeDraft(orig)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Mode: Passthrough, Transport: TCP, Host: "127.0.0.1", Port: 2001}
	if e.Config.Mode != want.Mode || e.Config.Transport != want.Transport || e.Config.Host != want.Host || e.Config.Port != want.Port || e.Config.TLS {
		t.Errorf("translated config %+v, want %+v", e.Config, want)
	}
	wantXML := `    <smartcard mode="passthrough" type="tcp">
      <source mode="bind" host="127.0.0.1" service="2001" tls="no"/>
      <protocol type="raw"/>
    </smartcard>
`
	if !strings.Contains(string(e.Domain), wantXML) {
		t.Errorf("translated domain\n%s\nlacks\n%s", e.Domain, wantXML)
	}
	// Outside the replaced element, nothing changed.
	start := bytes.Index(orig, []byte("<smartcard"))
	end := bytes.Index(orig, []byte("</smartcard>")) + len("</smartcard>")
	if !bytes.HasPrefix(e.Domain, orig[:start]) || !bytes.HasSuffix(e.Domain, orig[end:]) {
		t.Errorf("bytes outside the draft smartcard changed:\n%s", e.Domain)
	}
	if len(e.Notices) != 1 {
		t.Fatalf("notices %q, want one", e.Notices)
	}
	for _, says := range []string{"early draft", "line 9", "name='ccid'", "service='2001'", "'raw'", "mode='bind'"} {
		if !strings.Contains(e.Notices[0], says) {
			t.Errorf("notice %q does not mention %s", e.Notices[0], says)
		}
	}
	// After the translation, a new smartcard is still a second one.
	if _, err := AddSmartcard(e.Domain, Config{Port: 2}); !errors.Is(err, ErrSecondSmartcard) {
		t.Errorf("AddSmartcard after UpgradeDraft: %v", err)
	}
	if _, err := UpgradeDraft(e.Domain); !errors.Is(err, ErrNoDraft) {
		t.Errorf("UpgradeDraft twice: %v, want ErrNoDraft", err)
	}
}

// The draft's own examples (and vscclient-go config --help) leave out
// mode='passthrough': the <serial> child implies it.
func TestUpgradeDraftNoMode(t *testing.T) {
	e, err := UpgradeDraft(readFixture(t, "domain-draft-nomode.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Config.Mode != Passthrough || e.Config.Transport != TCP || e.Config.Port != 2001 {
		t.Errorf("translated config %+v, want passthrough on TCP port 2001", e.Config)
	}
	if len(e.Notices) != 1 || !strings.Contains(e.Notices[0], "added mode='passthrough'") {
		t.Errorf("notices %q do not say mode='passthrough' was added", e.Notices)
	}
	// A <serial> in another mode is still refused.
	doc := strings.Replace(string(readFixture(t, "domain-draft-nomode.xml")), "<smartcard name='ccid'>", "<smartcard mode='host' name='ccid'>", 1)
	if _, err := UpgradeDraft([]byte(doc)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("a draft <serial> in mode host: %v, want ErrInvalidConfig", err)
	}
}

func TestUpgradeDraftSpiceVMC(t *testing.T) {
	orig := readFixture(t, "domain-draft-spicevmc.xml")
	e, err := UpgradeDraft(orig)
	if err != nil {
		t.Fatal(err)
	}
	if e.Config.Transport != SpiceVMC {
		t.Errorf("translated config %+v, want spicevmc", e.Config)
	}
	if !strings.Contains(string(e.Domain), "\n    <smartcard mode=\"passthrough\" type=\"spicevmc\"/>\n  </devices>") {
		t.Errorf("translated domain:\n%s", e.Domain)
	}
	if len(e.Notices) != 1 {
		t.Errorf("notices %q, want one (the domain has SPICE)", e.Notices)
	}
}

func TestUpgradeDraftForms(t *testing.T) {
	wrap := func(sc string) []byte {
		return []byte("<domain type='qemu'>\n  <devices>\n    " + sc + "\n  </devices>\n</domain>\n")
	}
	for _, tc := range []struct {
		name  string
		sc    string
		want  Config
		err   error
		extra string // an additional notice substring
	}{
		{"tcp bind service", `<smartcard mode='passthrough' name='ccid'><serial type='tcp'><source mode='bind' host='::1' service='7'/><protocol type='raw'/></serial></smartcard>`,
			Config{Mode: Passthrough, Transport: TCP, Host: "::1", Port: 7}, nil, ""},
		{"tcp no host", `<smartcard mode='passthrough'><serial type='tcp'><source port='7'/></serial></smartcard>`,
			Config{Mode: Passthrough, Transport: TCP, Host: "127.0.0.1", Port: 7}, nil, "named no host"},
		{"unix", `<smartcard mode='passthrough' name='ccid'><serial type='unix'><source path='/run/s.sock'/></serial></smartcard>`,
			Config{Mode: Passthrough, Transport: Unix, Path: "/run/s.sock"}, nil, "mode='bind'"},
		{"host with name", `<smartcard mode='host' name='ccid'/>`, Config{Mode: Host}, nil, "name='ccid'"},
		{"spicevmc without spice", `<smartcard mode='passthrough' name='ccid'><serial type='spicevmc'/></smartcard>`,
			Config{Mode: Passthrough, Transport: SpiceVMC}, nil, ""},
		{"tcp connect", `<smartcard mode='passthrough'><serial type='tcp'><source mode='connect' host='h' port='7'/></serial></smartcard>`,
			Config{}, ErrInvalidConfig, ""},
		{"tcp telnet", `<smartcard mode='passthrough'><serial type='tcp'><source host='h' port='7'/><protocol type='telnet'/></serial></smartcard>`,
			Config{}, ErrInvalidConfig, ""},
		{"pty", `<smartcard mode='passthrough'><serial type='pty'/></smartcard>`, Config{}, ErrInvalidConfig, ""},
		{"port and service disagree", `<smartcard mode='passthrough'><serial type='tcp'><source host='h' port='7' service='8'/></serial></smartcard>`,
			Config{}, ErrInvalidConfig, ""},
		{"serial in host mode", `<smartcard mode='host'><serial type='tcp'/></smartcard>`, Config{}, ErrInvalidConfig, ""},
		{"current form", `<smartcard mode='host'/>`, Config{}, ErrNoDraft, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := UpgradeDraft(wrap(tc.sc))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("UpgradeDraft = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := e.Config
			if got.Mode != tc.want.Mode || got.Transport != tc.want.Transport || got.Host != tc.want.Host || got.Port != tc.want.Port || got.Path != tc.want.Path {
				t.Errorf("config %+v, want %+v", got, tc.want)
			}
			if tc.extra != "" && !strings.Contains(strings.Join(e.Notices, "\n"), tc.extra) {
				t.Errorf("notices %q lack %q", e.Notices, tc.extra)
			}
		})
	}
	// A draft next to a second smartcard is refused.
	two := []byte("<domain><devices><smartcard mode='host'/><smartcard mode='passthrough' name='ccid'><serial type='spicevmc'/></smartcard></devices></domain>")
	if _, err := UpgradeDraft(two); !errors.Is(err, ErrSecondSmartcard) {
		t.Errorf("UpgradeDraft with two smartcards: %v", err)
	}
	// spicevmc in a domain without SPICE: translated, with a notice.
	e, err := UpgradeDraft(wrap(`<smartcard mode='passthrough' name='ccid'><serial type='spicevmc'/></smartcard>`))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Notices) != 2 || !strings.Contains(e.Notices[1], "SPICE") {
		t.Errorf("notices %q, want a second one about SPICE", e.Notices)
	}
}

// FuzzAddSmartcard: whatever the document, AddSmartcard does not panic,
// and on success the original's lines survive and the result holds one
// smartcard.
func FuzzAddSmartcard(f *testing.F) {
	for _, name := range []string{"domain-realworld.xml", "domain-minimal.xml", "domain-draft-tcp.xml", "domain-draft-nomode.xml", "domain-draft-spicevmc.xml", "domain-with-smartcard.xml"} {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("<domain><devices/></domain>"))
	f.Add([]byte("<domain>\r\n<devices>\r\n</devices>\r\n</domain>"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		// UpgradeDraft must not panic either; its result is checked
		// by the unit tests.
		UpgradeDraft(doc)
		e, err := AddSmartcard(doc, Config{Port: 2001, Controller: &CCIDController{}})
		if err != nil {
			return
		}
		var d libvirtxml.Domain
		if err := d.Unmarshal(string(e.Domain)); err != nil || d.Devices == nil || len(d.Devices.Smartcards) != 1 {
			t.Fatalf("result does not hold one smartcard (%v):\n%s", err, e.Domain)
		}
		// Every byte of the original survives, in order.
		i := 0
		for _, c := range e.Domain {
			if i < len(doc) && c == doc[i] {
				i++
			}
		}
		if i != len(doc) {
			t.Fatalf("the original is not a subsequence of the result")
		}
	})
}
