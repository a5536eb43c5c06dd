package windows_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/pe"
	"encoding/hex"
	"errors"
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
	e2e "github.com/vscardkit/vscardkit/internal/e2e/guest"
	"github.com/vscardkit/vscardkit/internal/guest"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
	"github.com/vscardkit/vscardkit/internal/tlscerts"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

// systemDLLs are DLLs every Windows 10 and later has, in System32: the
// only ones the shipped .exe may import, so that its archive needs nothing
// beside it (a mingw build linked against libwinpthread-1.dll or
// libgcc_s_seh-1.dll would not start on a desk without them).
var systemDLLs = map[string]bool{
	"kernel32.dll": true, "msvcrt.dll": true, "ntdll.dll": true, "advapi32.dll": true,
	"ws2_32.dll": true, "user32.dll": true, "winmm.dll": true, "bcrypt.dll": true,
	"crypt32.dll": true, "secur32.dll": true, "shell32.dll": true, "ole32.dll": true,
}

// TestWindowsBuild: the shipped build is a 64-bit console program that
// imports only system DLLs (winscard.dll and PKCS#11 modules are loaded at
// run time); the CGO_ENABLED=0 build compiles and works too, once package
// certsrc builds without cgo.
func TestWindowsBuild(t *testing.T) {
	w := wine(t)
	exe := clientExe(t)
	f, err := pe.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		t.Errorf("machine %#x, want AMD64", f.Machine)
	}
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok || oh.Subsystem != pe.IMAGE_SUBSYSTEM_WINDOWS_CUI {
		t.Errorf("not a 64-bit console program: %T %+v", f.OptionalHeader, oh)
	}
	// debug/pe's ImportedLibraries is empty for PE files: the DLLs come
	// from the imported symbols ("name:dll").
	syms, err := f.ImportedSymbols()
	if err != nil {
		t.Fatal(err)
	}
	var libs []string
	for _, s := range syms {
		if _, dll, ok := strings.Cut(s, ":"); ok && !slices.Contains(libs, dll) {
			libs = append(libs, dll)
		}
	}
	if len(libs) == 0 {
		t.Fatalf("no imported DLLs found in %s (not even kernel32.dll): the check reads nothing", exe)
	}
	for _, l := range libs {
		if !systemDLLs[strings.ToLower(l)] {
			t.Errorf("vscclient-go.exe imports %s, which Windows does not have: the archive would need it beside the .exe", l)
		}
	}
	if st, err := os.Stat(exe); err == nil {
		t.Logf("vscclient-go.exe (cgo, mingw-w64): %.1f MiB, imports %s", float64(st.Size())/(1<<20), strings.Join(libs, ", "))
	}

	// --version under Wine: the program starts at all.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := w.CommandContext(ctx, exe, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "vscclient-go") {
		t.Errorf("vscclient-go.exe --version: %v\n%s", err, out)
	}
	// --help tells a Windows user to restart the client to re-arm the PIN
	// guard, not to send a SIGHUP that Windows does not have.
	out, err = w.CommandContext(ctx, exe, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Windows has no SIGHUP") || strings.Contains(string(out), "kill -HUP") {
		t.Errorf("vscclient-go.exe --help: %v; want the PIN guard re-armed without SIGHUP, without kill -HUP:\n%s", err, out)
	}

	t.Run("CGO_ENABLED=0", func(t *testing.T) {
		nocgo, err := harness.BuildWindows(t, clientPkg, false)
		if err != nil {
			t.Fatal(err)
		}
		q := harness.StartQEMU(t, harness.QEMUOptions{})
		p := client(t, w, nocgo, "--card", "soft", "--connect", "tcp://"+q.Addr)
		announced(t, p)
		interrupt(t, p, true)
	})
}

// TestSoftCardQEMU: the Windows client's soft card gets into a real QEMU
// (its ATR acknowledged), and Ctrl-C makes it remove card and reader and
// exit 0.
func TestSoftCardQEMU(t *testing.T) {
	w := wine(t)
	exe := clientExe(t)
	q := harness.StartQEMU(t, harness.QEMUOptions{})
	start := time.Now()
	p := client(t, w, exe, "--card", "soft", "--connect", "tcp://"+q.Addr)
	announced(t, p)
	t.Logf("card announced %v after starting the client under Wine", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(p.Output(), "soft card: PIN 123456") {
		t.Errorf("the client did not say the soft card's PIN:\n%s", p.Output())
	}
	interrupt(t, p, true)
}

// TestGuestSoftCard: the full path with the Windows client: a Linux guest
// under QEMU, with the smartcard as libvirt makes it, lists the
// certificate of the client's soft:DIR card (DIR given as a Windows path),
// logs in with the PIN and signs a challenge; the host checks that the
// guest read the certificate it wrote and that the signature verifies with
// its key.
func TestGuestSoftCard(t *testing.T) {
	w := wine(t)
	exe := clientExe(t)
	img := testImage(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	written := harness.WriteKeyPair(t, dir, piv.SlotAuthentication, softstore.P256, "desk user")
	challenge := make([]byte, 32)
	rand.Read(challenge)

	c := e2e.Smartcard(harness.FreePort(t))
	qargs, err := c.QEMUArgs()
	if err != nil {
		t.Fatal(err)
	}
	opts := guest.BootOptions{
		Scenario:      "wait_card,readers,piv",
		Params:        map[string]string{"pin": "123456", "keyid": "01", "challenge": hex.EncodeToString(challenge)},
		LibvirtUSB:    true,
		ExtraQEMUArgs: qargs,
	}
	vm := e2etest.Boot(t, ctx, img, opts, net.JoinHostPort(xmlconfig.DefaultHost, strconv.Itoa(c.Port)))
	connect, err := c.ClientArgs()
	if err != nil {
		t.Fatal(err)
	}
	p := client(t, w, exe, append([]string{"--card", "soft:" + w.Path(dir)}, connect...)...)
	res, err := vm.Wait(ctx)
	if err != nil {
		t.Fatalf("the guest: %v\n--- client:\n%s", err, p.Output())
	}
	values, errs := res.Values, res.Errors
	var ran []string
	for _, e := range res.Ends {
		ran = append(ran, fmt.Sprintf("%s rc=%d", e.Scenario, e.RC))
	}
	if want := []string{"wait_card rc=0", "readers rc=0", "piv rc=0"}; !slices.Equal(ran, want) {
		t.Fatalf("the guest ran %q, want %q; errors %q\n--- client:\n%s", ran, want, errs, p.Output())
	}
	if values["readers"] != "1" || values["card.0"] != "present" || values["atr.0"] != hex.EncodeToString(piv.ATR()) {
		t.Errorf("the guest sees readers=%s card.0=%s atr.0=%s, want one reader with the PIV card (%x)",
			values["readers"], values["card.0"], values["atr.0"], piv.ATR())
	}
	cert, err := e2e.Certificate(values)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert.Raw, written.Raw) {
		t.Errorf("the guest read a certificate for %v, not the one in %s", cert.Subject, dir)
	}
	if values["sign_rc"] != "0" {
		t.Errorf("pkcs11-tool --login --sign exited with %s", values["sign_rc"])
	}
	if err := e2e.VerifySignature(written.PublicKey, values); err != nil {
		t.Errorf("with the key the host wrote: %v", err)
	}
	t.Logf("guest: token %q, certificates %s, signed with a %s key; verified", values["token_label"], values["certs"], values["keytype"])
	// The guest powered off and its QEMU is gone: the client waits to
	// reconnect, and leaves on Ctrl-C all the same.
	interrupt(t, p, false)
}

// TestTLSQEMU: a desk's TLS set-up as README says: `vscclient-go config
// tls-certs DIR` on the VM host; QEMU with those credentials and
// verify-peer=on; the desk has ca-cert.pem, client-cert.pem and
// client-key.pem (here in another directory, named by Windows paths).
func TestTLSQEMU(t *testing.T) {
	w := wine(t)
	exe := clientExe(t)
	hostDir, desk := t.TempDir(), t.TempDir()
	linux := filepath.Join(harness.Commands(t), "vscclient-go")
	if out, err := exec.Command(linux, "config", "tls-certs", hostDir).CombinedOutput(); err != nil {
		t.Fatalf("vscclient-go config tls-certs: %v\n%s", err, out)
	}
	for _, name := range []string{tlscerts.CACertFile, tlscerts.ClientCertFile, tlscerts.ClientKeyFile} {
		b, err := os.ReadFile(filepath.Join(hostDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(desk, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	q := harness.StartQEMU(t, harness.QEMUOptions{
		ChardevExtra: ",tls-creds=tls0",
		Args:         []string{"-object", "tls-creds-x509,id=tls0,endpoint=server,dir=" + hostDir + ",verify-peer=on"},
	})
	ca := w.Path(filepath.Join(desk, tlscerts.CACertFile))
	t.Run("client certificate", func(t *testing.T) {
		p := client(t, w, exe, "--card", "soft", "--connect", "tls://"+q.Addr, "--tls-ca", ca,
			"--tls-cert", w.Path(filepath.Join(desk, tlscerts.ClientCertFile)),
			"--tls-key", w.Path(filepath.Join(desk, tlscerts.ClientKeyFile)))
		announced(t, p)
		if !strings.Contains(p.Output(), `version="TLS 1.3"`) {
			t.Errorf("no TLS 1.3 session in the log:\n%s", p.Output())
		}
		interrupt(t, p, true)
	})
	t.Run("no client certificate", func(t *testing.T) {
		p := client(t, w, exe, "--card", "soft", "--connect", "tls://"+q.Addr, "--tls-ca", ca)
		harness.WaitFor(t, 30*time.Second, "three refused attempts", func() bool {
			return strings.Count(p.Output(), "cannot reach the host") >= 3 || p.Exited()
		})
		out := p.Output()
		if p.Exited() || strings.Contains(out, "card inserted") || strings.Contains(out, "reader announced") {
			t.Fatalf("the client got through, or exited:\n%s", out)
		}
		_, reason, _ := strings.Cut(out, `msg="cannot reach the host; retrying"`)
		reason, _, _ = strings.Cut(reason, "\n")
		if !strings.Contains(reason, "refuses the client certificate") {
			t.Errorf("the first refusal does not say what to do (give the client certificate QEMU's CA signed):%s\n%s", reason, out)
		}
		t.Logf("refused:%s", reason)
		interrupt(t, p, false)
	})
}

// TestPCSCUnderWine: Wine 8's winscard.dll is a stub (SCardEstablishContext
// fails with SCARD_F_INTERNAL_ERROR), as a Windows without a PC/SC service
// is to a program. The user learns that there is no PC/SC service, and
// vscclient-go --card pcsc neither crashes nor hangs: it waits for the
// service as it waits for pcscd, and leaves on Ctrl-C.
func TestPCSCUnderWine(t *testing.T) {
	w := wine(t)
	exe := clientExe(t)
	t.Run("readers", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := w.CommandContext(ctx, exe, "readers")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("vscclient-go.exe readers: %v, want exit status 1\n%s%s", err, stdout.String(), stderr.String())
		}
		msg := stderr.String()
		for _, want := range []string{"vscclient-go: error: reader: no PC/SC service", "reader attached", "hint: plug in the smart card reader"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the error does not say %q:\n%s", want, msg)
			}
		}
		t.Logf("%s", strings.TrimSpace(msg))
	})
	t.Run("--card pcsc", func(t *testing.T) {
		q := harness.StartQEMU(t, harness.QEMUOptions{})
		p := client(t, w, exe, "--card", "pcsc", "--connect", "tcp://"+q.Addr)
		waitLog(t, p, 20*time.Second, `msg="PC/SC service unavailable; waiting for it"`)
		waitLog(t, p, 20*time.Second, `msg="connected to the host"`)
		// It goes on waiting: no exit, no reader announced.
		time.Sleep(2 * time.Second)
		if p.Exited() {
			t.Fatalf("the client exited: %v\n%s", p.Err(), p.Output())
		}
		out := p.Output()
		if strings.Contains(out, "reader announced") {
			t.Errorf("a reader was announced with no PC/SC service:\n%s", out)
		}
		if !strings.Contains(out, "no PC/SC service") {
			t.Errorf("the warning does not say there is no PC/SC service:\n%s", out)
		}
		interrupt(t, p, true)
	})
}

// TestUnixSocketQEMU: --connect unix:Z:\...\sock, a Windows path to QEMU's
// unix-socket chardev (AF_UNIX, which Windows has since Windows 10 1803).
// Wine 8 has no AF_UNIX (socket() fails with WSAEAFNOSUPPORT, 10047): the
// test then checks that the client says so and keeps retrying, and skips
// the announcement, saying why.
func TestUnixSocketQEMU(t *testing.T) {
	w := wine(t)
	exe := clientExe(t)
	bin := harness.LookPath(t, "QEMU (qemu-system-x86)", harness.QEMUBinary)
	sock := filepath.Join(t.TempDir(), "sc.sock")
	q := harness.Start(t, "qemu", exec.Command(bin,
		"-machine", "pc,accel=tcg", "-nodefaults", "-display", "none", "-S", "-usb",
		"-device", "usb-ccid,id=ccid0,bus=usb-bus.0,port=1",
		"-chardev", "socket,id=sc0,path="+sock+",server=on,wait=off",
		"-device", "ccid-card-passthru,chardev=sc0,bus=ccid0.0"))
	harness.WaitFor(t, 10*time.Second, "QEMU's unix socket", func() bool {
		_, err := os.Stat(sock)
		return err == nil || q.Exited()
	})
	p := client(t, w, exe, "--card", "soft", "--connect", "unix:"+w.Path(sock))
	harness.WaitFor(t, 30*time.Second, "the card announced or a refused dial", func() bool {
		out := p.Output()
		return strings.Contains(out, `msg="card inserted"`) || strings.Contains(out, "cannot reach the host") || p.Exited()
	})
	out := p.Output()
	if strings.Contains(out, "cannot reach the host") && strings.Contains(out, "10047") {
		if !strings.Contains(out, "dial unix "+strings.ReplaceAll(w.Path(sock), `\`, `\\`)) {
			t.Errorf("the dial error does not name the socket's Windows path:\n%s", out)
		}
		interrupt(t, p, false)
		// What runs here is the error path; a real Windows 10 or later
		// has AF_UNIX and takes the path below.
		t.Log("this Wine has no AF_UNIX sockets (WSAEAFNOSUPPORT): the client named the socket and left cleanly; a connection over unix: on Windows is compiled, not run, here")
		return
	}
	announced(t, p)
	interrupt(t, p, true)
}
