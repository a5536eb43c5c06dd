package deb

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/leaktest"
)

// openscModule is OpenSC's PKCS#11 module as Debian's opensc-pkcs11
// installs it.
const openscModule = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"

// deniedButHarmless are calls the units' filter refuses (EPERM, their
// SystemCallErrorNumber=) that vscclient-go makes and does without: none.
// (The units keep @resources, which the usual ~@resources would refuse: Go
// raises RLIMIT_NOFILE with setrlimit, and OpenSC's module starts glib
// threads that call sched_setattr.)
var deniedButHarmless = []string{}

// sandbox is what a unit of packaging/systemd confines its service to.
type sandbox struct {
	allow, deny []string // SystemCallFilter= sets and calls, allowed and (~) denied
	families    []string // RestrictAddressFamilies=
	mdwe        bool     // MemoryDenyWriteExecute=yes
}

// unitSandbox reads the sandbox of the units in packaging/systemd, which
// must all have the same.
func unitSandbox(t *testing.T) sandbox {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(moduleRoot(t), "packaging", "systemd", "*.service"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no units in packaging/systemd: %v", err)
	}
	var first sandbox
	for i, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var sb sandbox
		for _, line := range strings.Split(string(text), "\n") {
			key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
			if !ok || strings.HasPrefix(key, "#") {
				continue
			}
			switch key {
			case "SystemCallFilter":
				if v, deny := strings.CutPrefix(value, "~"); deny {
					sb.deny = append(sb.deny, strings.Fields(v)...)
				} else {
					sb.allow = append(sb.allow, strings.Fields(value)...)
				}
			case "RestrictAddressFamilies":
				sb.families = append(sb.families, strings.Fields(value)...)
			case "MemoryDenyWriteExecute":
				sb.mdwe = value == "yes"
			}
		}
		if len(sb.allow) == 0 || len(sb.families) == 0 || !sb.mdwe {
			t.Fatalf("%s: no SystemCallFilter= allow list, RestrictAddressFamilies= or MemoryDenyWriteExecute=yes: %+v", f, sb)
		}
		if i == 0 {
			first = sb
		} else if !slices.Equal(sb.allow, first.allow) || !slices.Equal(sb.deny, first.deny) || !slices.Equal(sb.families, first.families) {
			t.Fatalf("%s confines differently from %s: %+v and %+v", f, files[0], sb, first)
		}
	}
	return first
}

// TestSandbox runs vscclient-go with each kind of card the units serve,
// under strace, and checks the trace against the units' SystemCallFilter=,
// MemoryDenyWriteExecute= and RestrictAddressFamilies=: what systemd would
// refuse (or kill) is what the service could not do.
func TestSandbox(t *testing.T) {
	leaktest.Check(t)
	strace := harness.LookPath(t, "strace", "strace")
	sb := unitSandbox(t)
	allowed := allowedSyscalls(t, sb)
	bin := harness.Commands(t)
	client := filepath.Join(bin, "vscclient-go")

	t.Run("soft", func(t *testing.T) {
		host, port := startScript(t, bin, "")
		checkTrace(t, sb, traceCard(t, strace, host, nil, client, "--card", "soft", "127.0.0.1", port), allowed)
	})

	t.Run("pkcs11 softhsm2", func(t *testing.T) {
		h := harness.NewSoftHSM(t, "sandbox")
		h.AddIdentity(t, harness.IdentitySpec{Alg: harness.P256, ID: []byte{0x01}, Label: "sandbox auth",
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		host, port := startScript(t, bin, h.PIN)
		env := append(os.Environ(), h.Env()...)
		checkTrace(t, sb, traceCard(t, strace, host, env, client, "--card", h.URI(""), "--slot", "9a=id:01", "127.0.0.1", port), allowed)
	})

	t.Run("pcsc", func(t *testing.T) {
		pcscd := harness.StartPCSCD(t, harness.PCSCDOptions{})
		env := append(os.Environ(), pcscd.Env())
		// The card in the reader: a soft card handed to pcscd by a
		// fake-ccid-server --vpcd.
		port := strconv.Itoa(harness.FreePort(t))
		listen := net.JoinHostPort("127.0.0.1", port)
		vpcdHost := harness.Start(t, "fake-ccid-server --vpcd", exec.Command(filepath.Join(bin, "fake-ccid-server"),
			"--listen", listen, "--vpcd", pcscd.VPCDAddr(0)))
		harness.WaitListening(t, vpcdHost, listen, 10*time.Second)
		harness.Start(t, "vscclient-go --card soft", exec.Command(client, "--card", "soft", "127.0.0.1", port))

		t.Run("readers", func(t *testing.T) {
			checkTrace(t, sb, traceRun(t, strace, env, 0, "", client, "readers"), allowed)
		})
		t.Run("card", func(t *testing.T) {
			host, port := startScript(t, bin, "")
			checkTrace(t, sb, traceCard(t, strace, host, env, client, "--card", "pcsc", "127.0.0.1", port), allowed)
		})
	})

	// OpenSC's module, loaded and initialised; with no card in any reader
	// it has no token, which vscclient-go reports.
	t.Run("pkcs11 opensc", func(t *testing.T) {
		harness.RequireFile(t, "opensc-pkcs11", openscModule)
		pcscd := harness.StartPCSCD(t, harness.PCSCDOptions{})
		env := append(os.Environ(), pcscd.Env())
		checkTrace(t, sb, traceRun(t, strace, env, 1, "no token matches", client,
			"--card", "pkcs11:?module-path="+openscModule, "127.0.0.1", strconv.Itoa(harness.FreePort(t))), allowed)
	})
}

// guestScript is what the guest does with the card: select PIV, read the
// authentication certificate, VERIFY the PIN, sign a digest with 9A
// (ECDSA P-256), as make demo's guest does.
func guestScript(pin string) string {
	if pin == "" {
		pin = "123456"
	}
	padded := fmt.Sprintf("%X", pin) + strings.Repeat("FF", 8-len(pin))
	digest := sha256.Sum256([]byte("vscardkit sandbox"))
	tmpl := append([]byte{0x82, 0x00, 0x81, byte(len(digest))}, digest[:]...)
	ga := append([]byte{0x7C, byte(len(tmpl))}, tmpl...)
	return strings.Join([]string{
		"00A4040009A00000030800001000 9000",
		"00CB3FFF055C035FC105 9000",
		"0020008008" + padded + " 9000",
		fmt.Sprintf("0087119A%02X%X 9000", len(ga), ga),
		"",
	}, "\n")
}

// startScript starts a fake-ccid-server that plays guestScript(pin) once
// a card is there, and returns it and its port.
func startScript(t *testing.T, bin, pin string) (*harness.Process, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "guest.apdu")
	if err := os.WriteFile(file, []byte(guestScript(pin)), 0o600); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(harness.FreePort(t))
	addr := "127.0.0.1:" + port
	host := harness.Start(t, "fake-ccid-server --script", exec.Command(filepath.Join(bin, "fake-ccid-server"),
		"--listen", addr, "--script", file, "--get-response", "--once", "--timeout", "60s"))
	harness.WaitListening(t, host, addr, 10*time.Second)
	return host, port
}

// traceCard runs args (vscclient-go with a card) under strace until host's
// script has ended, which must pass; then it stops vscclient-go with
// SIGTERM, which must make it leave cleanly, and returns the trace.
func traceCard(t *testing.T, strace string, host *harness.Process, env []string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "strace")
	cmd := exec.Command(strace, append([]string{"-f", "-qq", "-o", out, "--"}, args...)...)
	cmd.Env = env
	tracer := harness.Start(t, "strace vscclient-go", cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := host.WaitExit(ctx); err != nil {
		t.Fatalf("the guest's script: %v\n%s\nvscclient-go:\n%s", err, host.Output(), tracer.Output())
	}
	// The tracee is strace's child; SIGTERM to it alone, so that strace
	// records the whole exit.
	pid := tracee(t, tracer.PID())
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := tracer.WaitExit(ctx); err != nil {
		t.Fatalf("vscclient-go on SIGTERM: %v\n%s", err, tracer.Output())
	}
	return readTrace(t, out)
}

// traceRun runs args under strace until they exit, which must be with
// status want, printing wantOut (when not empty), and returns the trace.
func traceRun(t *testing.T, strace string, env []string, want int, wantOut string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "strace")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, strace, append([]string{"-f", "-qq", "-o", out, "--"}, args...)...)
	cmd.Env = env
	output, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != want {
		t.Fatalf("%s: exit status %d (%v), want %d\n%s", strings.Join(args, " "), code, err, want, output)
	}
	if wantOut != "" && !strings.Contains(string(output), wantOut) {
		t.Fatalf("%s printed no %q:\n%s", strings.Join(args, " "), wantOut, output)
	}
	return readTrace(t, out)
}

// tracee returns the pid of strace's child.
func tracee(t *testing.T, tracer int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", tracer, tracer))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("strace (pid %d) has children %q, want one", tracer, f)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func readTrace(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// syscallLine is a line of strace -f: "PID name(args..." (a call, or its
// start when it blocks; "<... name resumed>" lines are its end).
var syscallLine = regexp.MustCompile(`^\d+\s+([a-z0-9_]+)\((.*)$`)

// checkTrace checks a trace against the units' rules.
func checkTrace(t *testing.T, sb sandbox, trace string, allowed map[string]bool) {
	t.Helper()
	used := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(trace))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<22)
	for sc.Scan() {
		m := syscallLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		name, args := m[1], m[2]
		used[name]++
		switch name {
		case "mmap", "mmap2":
			// MemoryDenyWriteExecute=: no mapping both writable and
			// executable...
			if strings.Contains(args, "PROT_WRITE") && strings.Contains(args, "PROT_EXEC") {
				t.Errorf("a writable and executable mapping, which MemoryDenyWriteExecute= refuses: %s", sc.Text())
			}
		case "mprotect", "pkey_mprotect":
			// ...and no mapping made executable.
			if strings.Contains(args, "PROT_EXEC") {
				t.Errorf("memory made executable, which MemoryDenyWriteExecute= refuses: %s", sc.Text())
			}
		case "shmat":
			if strings.Contains(args, "SHM_EXEC") {
				t.Errorf("executable shared memory, which MemoryDenyWriteExecute= refuses: %s", sc.Text())
			}
		case "socket":
			family, _, _ := strings.Cut(args, ",")
			if !slices.Contains(sb.families, family) {
				t.Errorf("a socket of a family RestrictAddressFamilies= refuses: %s", sc.Text())
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if used["execve"] == 0 || len(used) < 20 {
		t.Fatalf("the trace shows %d system calls, no execve: strace did not trace the command\n%s", len(used), trace)
	}
	var refused []string
	for name, n := range used {
		if !allowed[name] && !slices.Contains(deniedButHarmless, name) {
			refused = append(refused, fmt.Sprintf("%s (%d times)", name, n))
		}
	}
	sort.Strings(refused)
	if len(refused) > 0 {
		t.Errorf("system calls the units' SystemCallFilter= refuses: %s", strings.Join(refused, ", "))
	}
}

// allowedSyscalls returns the calls sb's filter lets through: its allow
// list, plus @default (which systemd adds to every allow list), less its
// deny list; the sets are systemd-analyze syscall-filter's.
func allowedSyscalls(t *testing.T, sb sandbox) map[string]bool {
	t.Helper()
	analyze := harness.LookPath(t, "systemd", "systemd-analyze")
	out, err := exec.Command(analyze, "syscall-filter").Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter: %v", err)
	}
	sets := parseSyscallSets(string(out))
	expand := func(names []string) map[string]bool {
		got := map[string]bool{}
		var walk func(string)
		walk = func(name string) {
			if !strings.HasPrefix(name, "@") {
				got[name] = true
				return
			}
			members, ok := sets[name]
			if !ok {
				t.Fatalf("systemd-analyze syscall-filter has no set %s", name)
			}
			for _, m := range members {
				if !got[m] {
					got[m] = true
					walk(m)
				}
			}
		}
		for _, n := range names {
			walk(n)
		}
		return got
	}
	allowed := expand(append([]string{"@default"}, sb.allow...))
	for name := range expand(sb.deny) {
		delete(allowed, name)
	}
	for _, name := range deniedButHarmless {
		if allowed[name] {
			t.Fatalf("%s is listed as denied but the filter allows it", name)
		}
	}
	if len(allowed) < 100 || !allowed["read"] || allowed["setuid"] {
		t.Fatalf("parsed an unlikely filter from systemd-analyze syscall-filter (%d calls)", len(allowed))
	}
	return allowed
}

// parseSyscallSets parses systemd-analyze syscall-filter: blank-line
// separated sets, each "@name" then indented members ("# ..." comments).
func parseSyscallSets(text string) map[string][]string {
	sets := map[string][]string{}
	var cur string
	for _, line := range strings.Split(text, "\n") {
		s := strings.TrimSpace(line)
		switch {
		case s == "" || strings.HasPrefix(s, "#"):
			if s == "" {
				cur = ""
			}
		case !strings.HasPrefix(line, " ") && strings.HasPrefix(s, "@"):
			cur = s
			sets[cur] = nil
		case cur != "":
			sets[cur] = append(sets[cur], s)
		}
	}
	return sets
}
