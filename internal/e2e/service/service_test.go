package service_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/vscardkit/vscardkit/internal/e2e/e2etest"
	"github.com/vscardkit/vscardkit/internal/e2e/guest"
	iguest "github.com/vscardkit/vscardkit/internal/guest"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupCommands()
	os.Exit(code)
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// guestImage is the default guest image (e2etest.Image).
func guestImage(t *testing.T) iguest.Image {
	t.Helper()
	return e2etest.Image(t)
}

// guestDomain is a libvirt domain that boots the test guest straight from
// its kernel and initramfs, with the passthrough smartcard c, running
// scenario with params; its serial console goes to console.
func guestDomain(t *testing.T, name string, c xmlconfig.Config, img iguest.Image, scenario string, params map[string]string, console string) []byte {
	t.Helper()
	d, err := xmlconfig.NewDomain(name, c)
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := iguest.BootOptions{Scenario: scenario, Params: params}.Cmdline()
	if err != nil {
		t.Fatal(err)
	}
	d.Memory = &libvirtxml.DomainMemory{Value: 256, Unit: "MiB"}
	d.OS.Kernel, d.OS.Initrd, d.OS.Cmdline = img.Kernel, img.Initramfs, cmdline
	d.CPU = &libvirtxml.DomainCPU{Mode: "maximum"} // RDRAND: pcscd would block in getrandom
	d.OnPoweroff = "destroy"
	d.Devices.Serials = append(d.Devices.Serials, libvirtxml.DomainSerial{
		Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: console}},
	})
	out, err := xml.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func define(t *testing.T, l *harness.Libvirtd, doc []byte) {
	t.Helper()
	l.Define(t, doc)
}

func virsh(t *testing.T, l *harness.Libvirtd, args ...string) {
	t.Helper()
	l.MustVirsh(t, args...)
}

// notifySocket is a stand-in for systemd's notification socket.
type notifySocket struct {
	path string
	c    *net.UnixConn
	mu   sync.Mutex
	msgs []string
	note chan struct{}
}

func newNotifySocket(t *testing.T) *notifySocket {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, c: c, note: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
			select {
			case n.note <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return n
}

// wait waits for a datagram holding line.
func (n *notifySocket) wait(t *testing.T, line string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		n.mu.Lock()
		for _, m := range n.msgs {
			if strings.Contains("\n"+m+"\n", "\n"+line+"\n") {
				n.mu.Unlock()
				return
			}
		}
		all := strings.Join(n.msgs, " | ")
		n.mu.Unlock()
		select {
		case <-n.note:
		case <-deadline:
			t.Fatalf("no %s from the service in %v; it sent: %s", line, d, all)
		}
	}
}

// status is `vscclient-go status --json`'s element.
type status struct {
	Domain        string `json:"domain"`
	DomainState   string `json:"domain_state"`
	Connected     bool   `json:"connected"`
	CardAnnounced bool   `json:"card_announced"`
	Chardev       string `json:"chardev"`
	Sessions      int    `json:"sessions"`
	Error         string `json:"error"`
}

func statuses(t *testing.T, bin, ctl string) map[string]status {
	t.Helper()
	out, err := exec.Command(filepath.Join(bin, "vscclient-go"), "status", "--json", "--control", ctl).Output()
	if err != nil {
		t.Fatalf("vscclient-go status: %v", err)
	}
	var rep struct{ Cards []status }
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("status %s: %v", out, err)
	}
	m := map[string]status{}
	for _, s := range rep.Cards {
		m[s.Domain] = s
	}
	return m
}

// cpuTime is a process's user and system time.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	d, err := harness.CPUTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// consoleResult waits until the guest's console log holds the end of
// scenario and returns its result.
func consoleResult(t *testing.T, path, scenario string, d time.Duration) iguest.Result {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(path)
		res := iguest.ParseConsole(string(b))
		for _, e := range res.Ends {
			if e.Scenario == scenario || e.Scenario == "boot" || e.Scenario == "watchdog" {
				if e.RC != 0 {
					t.Fatalf("%s: scenario %s ended rc=%d: %v\n%s", path, e.Scenario, e.RC, res.Errors, b)
				}
				return res
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no end of %s in %v:\n%s", path, scenario, d, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServeTwoDomains: one vscclient-go serve gives two libvirt domains
// (one chardev on TCP, one on a unix socket) two different cards (a soft:DIR
// card and a softhsm2 token); each guest reads its own card's certificate
// and signs with it; one domain restarted gets its card back at once while
// the other's connection is untouched; a stopped domain costs nothing; the
// PIN guard is re-armed over the control socket; SIGHUP reloads.
func TestServeTwoDomains(t *testing.T) {
	img := guestImage(t)
	l := harness.StartLibvirtd(t, harness.LibvirtdOptions{})
	bin := harness.Commands(t)
	dir := t.TempDir()

	// The cards.
	softDir := filepath.Join(dir, "soft")
	os.Mkdir(softDir, 0o700)
	softCert := harness.WriteKeyPair(t, softDir, piv.SlotAuthentication, softstore.P256, "tcp domain's card")
	pinFile := filepath.Join(dir, "soft.pin")
	os.WriteFile(pinFile, []byte("24681357\n"), 0o600)
	h := harness.NewSoftHSM(t, "svc")
	tokenID := h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{0x01}, Label: "unix domain's card"})

	// The domains.
	tcp := xmlconfig.Config{Port: harness.FreePort(t)}
	sock := filepath.Join(dir, "svc-unix.sock")
	unix := xmlconfig.Config{Transport: xmlconfig.Unix, Path: sock}
	challenge := hex.EncodeToString([]byte("a challenge for each guest: 32b"))
	consoleTCP, consoleUnix := filepath.Join(dir, "tcp.console"), filepath.Join(dir, "unix.console")
	define(t, l, guestDomain(t, "svc-tcp", tcp, img, "wait_card,piv,idle", map[string]string{"pin": "24681357", "keyid": "01", "challenge": challenge, "timeout": "600"}, consoleTCP))
	define(t, l, guestDomain(t, "svc-unix", unix, img, "wait_card,piv,idle", map[string]string{"pin": h.PIN, "keyid": "01", "challenge": challenge, "timeout": "600"}, consoleUnix))

	cfg := fmt.Sprintf(`{
  "libvirt": %q,
  "domains": {
    "svc-tcp":  {"card": %q, "pin-file": %q},
    "svc-unix": {"card": %q}
  }
}`, l.URI, "soft:"+softDir, pinFile, h.URI("svc"))
	cfgPath := filepath.Join(dir, "vscardkit.json")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	ctl := filepath.Join(dir, "control.sock")
	notify := newNotifySocket(t)
	cmd := exec.Command(filepath.Join(bin, "vscclient-go"), "serve", "--config", cfgPath, "--control", ctl)
	cmd.Env = append(append(cmd.Environ(), "NOTIFY_SOCKET="+notify.path), h.Env()...)
	srv := harness.Start(t, "vscclient-go serve", cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve's log:\n%s", srv.Output())
		}
	})
	// Both domains are off: ready at once.
	notify.wait(t, "READY=1", 30*time.Second)

	virsh(t, l, "start", "svc-tcp")
	virsh(t, l, "start", "svc-unix")
	resTCP := consoleResult(t, consoleTCP, "piv", 3*time.Minute)
	resUnix := consoleResult(t, consoleUnix, "piv", 3*time.Minute)
	for _, c := range []struct {
		name string
		res  iguest.Result
		want []byte
		pub  any
	}{
		{"svc-tcp", resTCP, softCert.Raw, softCert.PublicKey},
		{"svc-unix", resUnix, tokenID.Cert.Raw, tokenID.Public()},
	} {
		cert, err := guest.Certificate(c.res.Values)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(cert.Raw, c.want) {
			t.Fatalf("%s's guest read the certificate of %q, not its own card's", c.name, cert.Subject.CommonName)
		}
		if err := guest.VerifySignature(c.pub, c.res.Values); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		t.Logf("%s: the guest read %q and signed with it; the signature verifies", c.name, cert.Subject.CommonName)
	}
	st := statuses(t, bin, ctl)
	for _, name := range []string{"svc-tcp", "svc-unix"} {
		if s := st[name]; !s.Connected || !s.CardAnnounced {
			t.Fatalf("%s: %+v", name, s)
		}
	}
	unixSessions := st["svc-unix"].Sessions

	// Stopped for 10 s: the service waits, with no retry loop.
	virsh(t, l, "destroy", "svc-tcp")
	harness.WaitFor(t, 10*time.Second, "serve to see svc-tcp off", func() bool {
		return statuses(t, bin, ctl)["svc-tcp"].DomainState == "stopped"
	})
	cpu0, t0 := cpuTime(t, srv.PID()), time.Now()
	time.Sleep(10 * time.Second)
	cpu, wall := cpuTime(t, srv.PID())-cpu0, time.Since(t0)
	share := float64(cpu) / float64(wall)
	t.Logf("svc-tcp stopped: serve used %v of CPU in %v (%.2f%% of a core)", cpu, wall.Round(time.Millisecond), 100*share)
	if share >= 0.01 {
		t.Errorf("serve used %.2f%% of a core while a domain was stopped, want < 1%%", 100*share)
	}

	// Started again: the card is back within 2 s of QEMU running.
	virsh(t, l, "start", "svc-tcp")
	started := time.Now()
	harness.WaitFor(t, 10*time.Second, "svc-tcp's card announced again", func() bool {
		s := statuses(t, bin, ctl)["svc-tcp"]
		return s.CardAnnounced && s.DomainState == "running"
	})
	back := time.Since(started)
	t.Logf("svc-tcp: card announced %v after virsh start returned", back.Round(time.Millisecond))
	if back > 2*time.Second {
		t.Errorf("card back %v after the domain started, want <= 2 s", back)
	}
	if s := statuses(t, bin, ctl)["svc-unix"]; !s.Connected || s.Sessions != unixSessions {
		t.Errorf("svc-unix was touched by svc-tcp's restart: %+v (had %d sessions)", s, unixSessions)
	}

	// The PIN guard, re-armed over the control socket.
	out, err := exec.Command(filepath.Join(bin, "vscclient-go"), "rearm", "--control", ctl, "svc-tcp").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "re-armed") {
		t.Fatalf("rearm svc-tcp: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(bin, "vscclient-go"), "rearm", "--control", ctl, "nosuch").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "svc-tcp, svc-unix") {
		t.Fatalf("rearm of an unknown domain: %v\n%s", err, out)
	}

	// SIGHUP with svc-tcp removed: it leaves, svc-unix is untouched.
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`{"libvirt": %q, "domains": {"svc-unix": {"card": %q}}}`, l.URI, h.URI("svc"))), 0o644)
	srv.Signal(syscall.SIGHUP)
	harness.WaitFor(t, 10*time.Second, "svc-tcp gone from the status", func() bool {
		_, ok := statuses(t, bin, ctl)["svc-tcp"]
		return !ok
	})
	notify.wait(t, "RELOADING=1", 5*time.Second)
	if s := statuses(t, bin, ctl)["svc-unix"]; !s.Connected || s.Sessions != unixSessions {
		t.Errorf("svc-unix was touched by the reload: %+v", s)
	}
	// A configuration that does not load keeps the running one.
	os.WriteFile(cfgPath, []byte(`{"domains": {"x": {"crad": "soft"}}}`), 0o644)
	srv.Signal(syscall.SIGHUP)
	harness.WaitFor(t, 10*time.Second, "the reload's error in the log", func() bool {
		return strings.Contains(srv.Output(), "keeping the running one")
	})
	if s := statuses(t, bin, ctl)["svc-unix"]; !s.Connected {
		t.Errorf("svc-unix after a bad reload: %+v", s)
	}

	if err := srv.Stop(); err != nil {
		t.Fatalf("serve on SIGTERM: %v\n%s", err, srv.Output())
	}
	notify.wait(t, "STOPPING=1", time.Second)
}

// runClient runs vscclient-go with args until it exits (within d), and
// returns its exit code and stderr.
func runClient(t *testing.T, bin string, d time.Duration, args ...string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(timeout(t, d), filepath.Join(bin, "vscclient-go"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatalf("vscclient-go %v: %v", args, err)
	}
	return 0, stderr.String()
}

// TestDomainFlag: vscclient-go --domain NAME follows one domain of a real
// libvirtd, and says what is wrong when it cannot.
func TestDomainFlag(t *testing.T) {
	l := harness.StartLibvirtd(t, harness.LibvirtdOptions{})
	bin := harness.Commands(t)
	doc, err := xmlconfig.NewDomainXML("dom-tcp", xmlconfig.Config{Port: harness.FreePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	define(t, l, doc)
	define(t, l, harness.BareDomainXML("dom-none"))
	doc, err = xmlconfig.NewDomainXML("dom-spice", xmlconfig.Config{Transport: xmlconfig.SpiceVMC})
	if err != nil {
		t.Fatal(err)
	}
	define(t, l, doc)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"unknown domain", []string{"--domain", "nosuch", "--libvirt", l.URI, "--card", "soft"}, 1,
			[]string{`"nosuch"`, "dom-none", "dom-spice", "dom-tcp", "hint: virsh -c"}},
		{"no smartcard", []string{"--domain", "dom-none", "--libvirt", l.URI, "--card", "soft"}, 1,
			[]string{"no passthrough smartcard", "hint: add one: virsh dumpxml dom-none | vscclient-go config --domain -"}},
		{"spicevmc", []string{"--domain", "dom-spice", "--libvirt", l.URI, "--card", "soft"}, 1,
			[]string{"spicevmc", "hint: this smartcard's card comes from the SPICE client"}},
		{"libvirtd down", []string{"--domain", "dom-tcp", "--libvirt", "qemu:///system?socket=" + filepath.Join(t.TempDir(), "none.sock"), "--card", "soft"}, 1,
			[]string{"hint: is libvirtd running?"}},
		{"--libvirt alone", []string{"--libvirt", l.URI, "--card", "soft", "127.0.0.1", "2001"}, 2,
			[]string{"--libvirt goes with --domain"}},
		{"--domain and a host", []string{"--domain", "dom-tcp", "--card", "soft", "127.0.0.1", "2001"}, 2,
			[]string{"give either --domain or where the VM is"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runClient(t, bin, time.Minute, tc.args...)
			t.Logf("exit %d:\n%s", code, stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}

	// The domain off: vscclient-go waits; started: the card is announced.
	notify := newNotifySocket(t)
	cmd := exec.Command(filepath.Join(bin, "vscclient-go"), "--domain", "dom-tcp", "--libvirt", l.URI, "--card", "soft")
	cmd.Env = append(cmd.Environ(), "NOTIFY_SOCKET="+notify.path)
	c := harness.Start(t, "vscclient-go --domain", cmd)
	notify.wait(t, "READY=1", 30*time.Second)
	harness.WaitFor(t, 5*time.Second, "word of the domain being off", func() bool {
		return strings.Contains(c.Output(), "the domain is off; waiting for it to start")
	})
	before := time.Now()
	virsh(t, l, "start", "dom-tcp")
	started := time.Now()
	harness.WaitFor(t, 10*time.Second, "the card announced", func() bool { return strings.Contains(c.Output(), "card inserted") })
	t.Logf("dom-tcp: card announced by %v after virsh start returned (virsh start took %v)", time.Since(started).Round(time.Millisecond), started.Sub(before).Round(time.Millisecond))
	virsh(t, l, "destroy", "dom-tcp")
	harness.WaitFor(t, 10*time.Second, "the domain seen off again", func() bool {
		return strings.Count(c.Output(), "the domain is off; waiting for it to start") == 2
	})
	if err := c.Stop(); err != nil {
		t.Fatalf("vscclient-go --domain on SIGTERM: %v\n%s", err, c.Output())
	}
}
