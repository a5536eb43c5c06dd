package deb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/leaktest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupCommands()
	os.Exit(code)
}

// moduleRoot is the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// script runs one of the module's scripts and returns its output's last line.
func script(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(moduleRoot(t), "scripts", name), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1]
}

// debArch is the Debian architecture of GOARCH, as mkdeb.sh names it.
func debArch() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	}
	return runtime.GOARCH
}

// The paths the package installs, besides directories.
var (
	binaries = []string{"/usr/bin/vscclient-go", "/usr/bin/fake-ccid-server"}
	units    = []string{"/lib/systemd/system/vscardkit.service", "/lib/systemd/system/vscclient-go@.service"}
	manPages = []string{"/usr/share/man/man1/vscclient-go.1.gz", "/usr/share/man/man1/fake-ccid-server.1.gz"}
	comps    = []string{"/usr/share/bash-completion/completions/vscclient-go", "/usr/share/bash-completion/completions/fake-ccid-server"}
	docs     = []string{"copyright", "changelog.Debian.gz", "changelog.gz", "README.md", "SECURITY.md", "examples/domain.env"}
)

const (
	conffile = "/etc/vscardkit/vscardkit.json"
	docDir   = "/usr/share/doc/vscardkit"
	stateDir = "/var/lib/vscardkit"
)

func TestPackage(t *testing.T) {
	leaktest.Check(t)
	harness.RequireRoot(t, "dpkg")
	harness.LookPath(t, "dpkg", "dpkg-deb")
	harness.LookPath(t, "systemd", "systemd-analyze")
	harness.LookPath(t, "man-db", "man")
	harness.RequireFile(t, "bash-completion", "/usr/share/bash-completion/bash_completion")
	start := time.Now()
	hostBefore := hostState(t)

	goVersion := script(t, nil, "version.sh")
	debVersion := script(t, nil, "version.sh", "--deb", goVersion)
	dist := t.TempDir()
	deb := script(t, []string{"VERSION=" + goVersion}, "mkdeb.sh", dist)
	if want := filepath.Join(dist, "vscardkit_"+debVersion+"_"+debArch()+".deb"); deb != want {
		t.Fatalf("mkdeb.sh built %s, want %s", deb, want)
	}
	t.Logf("built %s in %v", filepath.Base(deb), time.Since(start).Round(time.Second))
	checkControl(t, deb, debVersion)

	r := newOverlayRoot(t, dist)
	inRoot := "/tmp/share/" + filepath.Base(deb)
	// An installed vscardkit goes, in the overlay only, so that the test
	// starts from a machine without it.
	if status(t, r) != "not-installed" {
		t.Logf("vscardkit is installed on this machine (%s); purging it in the overlay only", status(t, r))
		r.must(t, "dpkg", "--purge", "vscardkit")
		r.run(t, "", "rm", "-rf", "/etc/vscardkit")
	}
	// man-db's trigger rebuilds its index after each dpkg run, seconds
	// each time; pages are found without it.
	r.must(t, "rm", "-f", "/var/lib/man-db/auto-update")
	accounts := r.must(t, "cat", "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")
	hadLibvirt := regexp.MustCompile(`(?m)^libvirt:`).MatchString(accounts)
	before := r.changes(t, dpkgRecords)

	installed := t.Run("install", func(t *testing.T) {
		r.must(t, "dpkg", "-i", inRoot)
		if s := status(t, r); s != "installed" {
			t.Fatalf("after dpkg -i, vscardkit is %s", s)
		}
		if v := r.must(t, "dpkg-query", "-W", "-f", "${Version}", "vscardkit"); v != debVersion {
			t.Errorf("installed version %q, want %q", v, debVersion)
		}
		for _, p := range slices.Concat(binaries, units, manPages, comps, []string{conffile}) {
			if !r.exists(t, p) {
				t.Errorf("%s is not installed", p)
			}
		}
		for _, d := range docs {
			if !r.exists(t, docDir+"/"+d) {
				t.Errorf("%s/%s is not installed", docDir, d)
			}
		}
		for _, b := range binaries {
			// The commands print their version on standard error.
			if got, want := strings.TrimSpace(r.must(t, "sh", "-c", `"$1" --version 2>&1`, "sh", b)), filepath.Base(b)+" "+goVersion; got != want {
				t.Errorf("%s --version = %q, want %q", b, got, want)
			}
		}
		changelog := r.must(t, "sh", "-c", "zcat "+docDir+"/changelog.Debian.gz")
		if !strings.HasPrefix(changelog, "vscardkit ("+debVersion+") ") {
			t.Errorf("changelog.Debian.gz starts %q, want vscardkit (%s)", firstLine(changelog), debVersion)
		}
		if cf := r.must(t, "dpkg-query", "-W", "-f", "${Conffiles}", "vscardkit"); !regexp.MustCompile(`^\s*` + regexp.QuoteMeta(conffile) + ` [0-9a-f]{32}\s*$`).MatchString(cf) {
			t.Errorf("conffiles = %q, want %s alone", cf, conffile)
		}
	})
	if !installed {
		t.FailNow()
	}

	t.Run("user", func(t *testing.T) {
		pw := strings.Split(strings.TrimSpace(r.must(t, "getent", "passwd", "vscardkit")), ":")
		if len(pw) != 7 {
			t.Fatalf("getent passwd vscardkit = %q", pw)
		}
		if uid, _ := strconv.Atoi(pw[2]); uid <= 0 || uid >= 1000 {
			t.Errorf("vscardkit's uid %s is not a system uid", pw[2])
		}
		if pw[5] != stateDir || pw[6] != "/usr/sbin/nologin" {
			t.Errorf("vscardkit's home and shell are %s and %s, want %s and /usr/sbin/nologin", pw[5], pw[6], stateDir)
		}
		groups := strings.Fields(r.must(t, "id", "-nG", "vscardkit"))
		if !slices.Contains(groups, "vscardkit") {
			t.Errorf("vscardkit's groups %q lack vscardkit", groups)
		}
		if hadLibvirt && !slices.Contains(groups, "libvirt") {
			t.Errorf("vscardkit's groups %q lack libvirt", groups)
		}
		// The unix chardevs' directory: setgid, group vscardkit.
		if st := r.must(t, "stat", "-c", "%A %U:%G", "/var/lib/vscardkit/sockets"); strings.TrimSpace(st) != "drwxrws--- vscardkit:vscardkit" {
			t.Errorf("/var/lib/vscardkit/sockets is %q, want drwxrws--- vscardkit:vscardkit", strings.TrimSpace(st))
		}
	})

	t.Run("units", func(t *testing.T) {
		if err := verifyUnits(t, r, units...); err != nil {
			t.Errorf("the installed units: %v", err)
		}
		// The check fails when it should: a program that is not there, and
		// a misspelt key (which systemd only warns about).
		unit := r.must(t, "cat", units[0])
		for name, broken := range map[string]string{
			"missing program": strings.Replace(unit, "ExecStart=/usr/bin/vscclient-go ", "ExecStart=/usr/bin/vscclient-go-missing ", 1),
			"misspelt key":    strings.Replace(unit, "\nType=notify\n", "\nTpye=notify\n", 1),
		} {
			if broken == unit {
				t.Fatalf("%s: the unit did not change", name)
			}
			dir := "/tmp/broken-" + strings.ReplaceAll(name, " ", "-")
			r.writeFile(t, dir+"/vscardkit.service", broken)
			if err := verifyUnits(t, r, dir+"/vscardkit.service"); err == nil {
				t.Errorf("systemd-analyze verify accepts a unit with a %s", name)
			}
		}
	})

	// The service's own command line, as systemd would run it: its user,
	// its runtime directory, the packaged configuration (whose example
	// domains libvirt does not know here: the service must come up
	// anyway, and say so for each).
	t.Run("execstart", func(t *testing.T) {
		unit := r.must(t, "cat", "/lib/systemd/system/vscardkit.service")
		m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindStringSubmatch(unit)
		if m == nil {
			t.Fatal("vscardkit.service has no ExecStart")
		}
		execStart := strings.Fields(m[1])
		r.must(t, "install", "-d", "-o", "vscardkit", "-g", "vscardkit", "-m", "0750", "/run/vscardkit")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := r.command(ctx, append([]string{"setpriv", "--reuid=vscardkit", "--regid=vscardkit", "--init-groups", "--"}, execStart...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var cards string
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			st, err := r.run(t, "", "/usr/bin/vscclient-go", "status", "--json", "--control", "/run/vscardkit/control.sock")
			if err == nil && strings.Count(st, `"card":`) == 3 {
				cards = st
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("%s exited: %v\n%s", strings.Join(execStart, " "), err, out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no status with the 3 example domains in 30 s (%v)\n%s", strings.Join(execStart, " "), err, out.String())
			}
		}
		t.Logf("ExecStart=%s: up, %d bytes of status", strings.Join(execStart, " "), len(cards))
		cmd.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			t.Errorf("%s on SIGTERM: %v\n%s", strings.Join(execStart, " "), err, out.String())
		}
	})

	t.Run("man", func(t *testing.T) {
		for _, page := range manPages {
			name := strings.TrimSuffix(filepath.Base(page), ".1.gz")
			for _, args := range [][]string{{"-l", page}, {name}} {
				cmd := append([]string{"env", "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "man", "--warnings"}, args...)
				out, err := r.run(t, "", cmd...)
				if err != nil {
					t.Errorf("%v", err)
					continue
				}
				if !strings.HasPrefix(out, strings.ToUpper(name)+"(1)") || !strings.Contains(out, "--version") {
					t.Errorf("man %s renders:\n%s", strings.Join(args, " "), out)
				}
			}
		}
	})

	t.Run("completion", func(t *testing.T) {
		for _, c := range comps {
			name := filepath.Base(c)
			// bash-completion loads it on demand, by the command's name.
			out, err := r.run(t, "", "bash", "--norc", "--noprofile", "-c",
				`source /usr/share/bash-completion/bash_completion && { _completion_loader "$1"; complete -p "$1"; }`, "bash", name)
			want := "complete -F _" + strings.ReplaceAll(name, "-", "_") + " " + name
			if err != nil || strings.TrimSpace(out) != want {
				t.Errorf("loading the completion of %s: %q, %v; want %q", name, out, err, want)
			}
		}
	})

	// An administrator edits the configuration, adds a domain's options
	// and enables the units; reinstalling (as an upgrade would, here with
	// a systemd that seems to run, which the chroot makes systemctl ignore)
	// keeps all of it.
	const edited = `{"libvirt": "qemu:///system", "domains": {"vm1": {"card": "soft"}}}` + "\n"
	adminEnv := "/etc/vscardkit/win11.env"
	enabled := []string{
		"/etc/systemd/system/multi-user.target.wants/vscardkit.service",
		"/etc/systemd/system/multi-user.target.wants/vscclient-go@win11.service",
	}
	t.Run("reinstall", func(t *testing.T) {
		r.writeFile(t, conffile, edited)
		r.writeFile(t, adminEnv, "VSCCLIENT_GO_OPTS=\"--card soft\"\n")
		r.must(t, "systemctl", "enable", "vscardkit.service", "vscclient-go@win11.service")
		r.must(t, "mkdir", "-p", "/run/systemd/system")
		r.must(t, "dpkg", "-i", inRoot)
		r.must(t, "rmdir", "/run/systemd/system")
		if got := r.must(t, "cat", conffile); got != edited {
			t.Errorf("the reinstall replaced the edited %s with:\n%s", conffile, got)
		}
		for _, l := range enabled {
			if !r.exists(t, l) {
				t.Errorf("the reinstall removed %s", l)
			}
		}
	})

	t.Run("remove", func(t *testing.T) {
		r.must(t, "dpkg", "-r", "vscardkit")
		if s := status(t, r); s != "config-files" {
			t.Errorf("after dpkg -r, vscardkit is %s, want config-files", s)
		}
		for _, p := range slices.Concat(binaries, units, manPages, comps, []string{docDir}) {
			if r.exists(t, p) {
				t.Errorf("dpkg -r left %s", p)
			}
		}
		if got, err := r.run(t, "", "cat", conffile); err != nil || got != edited {
			t.Errorf("dpkg -r did not keep the edited %s: %q, %v", conffile, got, err)
		}
		if _, err := r.run(t, "", "getent", "passwd", "vscardkit"); err != nil {
			t.Errorf("dpkg -r removed the user vscardkit (only a purge should): %v", err)
		}
	})

	t.Run("purge", func(t *testing.T) {
		r.must(t, "dpkg", "-P", "vscardkit")
		if s := status(t, r); s != "not-installed" {
			t.Errorf("after dpkg -P, vscardkit is %s", s)
		}
		for _, p := range slices.Concat([]string{conffile, stateDir, "/etc/systemd/system/vscardkit.service"}, enabled) {
			if r.exists(t, p) {
				t.Errorf("dpkg -P left %s", p)
			}
		}
		for _, db := range []string{"passwd", "group"} {
			if out, err := r.run(t, "", "getent", db, "vscardkit"); err == nil {
				t.Errorf("dpkg -P left vscardkit in %s: %s", db, out)
			}
		}
		// What the administrator wrote stays, and with it the directory.
		if !r.exists(t, adminEnv) {
			t.Errorf("dpkg -P removed %s, which the administrator wrote", adminEnv)
		}
		r.must(t, "rm", "-r", "/etc/vscardkit")

		if got := r.must(t, "cat", "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"); got != accounts {
			t.Errorf("the user and group files differ from before the install:\n%s", lineDiff(accounts, got))
		}
		if after := r.changes(t, dpkgRecords); !slices.Equal(after, before) {
			t.Errorf("the machine is not as it was before the install:\n%s", lineDiff(strings.Join(before, "\n"), strings.Join(after, "\n")))
		}
	})

	r.close()
	if after := hostState(t); after != hostBefore {
		t.Errorf("the machine itself changed:\nbefore:\n%s\nafter:\n%s", hostBefore, after)
	}
	t.Logf("build, install, checks, remove and purge: %v", time.Since(start).Round(time.Second))
}

// checkControl checks the package's control fields and conffiles.
func checkControl(t *testing.T, deb, version string) {
	t.Helper()
	field := func(name string) string {
		out, err := exec.Command("dpkg-deb", "-f", deb, name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	for name, want := range map[string]string{
		"Package":      "vscardkit",
		"Version":      version,
		"Architecture": debArch(),
		"Recommends":   "pcscd",
		"Suggests":     "libvirt-daemon-system, softhsm2, opensc-pkcs11",
	} {
		if got := field(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	depends := field("Depends")
	for _, pkg := range []string{"libc6", "libpcsclite1", "adduser"} {
		if !regexp.MustCompile(`(^|, )` + pkg + `( \(|,|$)`).MatchString(depends) {
			t.Errorf("Depends: %q lacks %s", depends, pkg)
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-e", deb, dir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	if cf, err := os.ReadFile(filepath.Join(dir, "conffiles")); err != nil || string(cf) != conffile+"\n" {
		t.Errorf("conffiles = %q, %v; want %s", cf, err, conffile)
	}
}

// status returns vscardkit's state in the overlay's dpkg database:
// installed, config-files, not-installed...
func status(t *testing.T, r *overlayRoot) string {
	t.Helper()
	out, err := r.run(t, "", "dpkg-query", "-W", "-f", "${db:Status-Status}", "vscardkit")
	var ce *commandError
	if errors.As(err, &ce) && strings.Contains(ce.output, "no packages found") {
		return "not-installed"
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// verifyUnits runs systemd-analyze verify on units in the overlay: an
// error if it fails or says anything (a misspelt key is only a warning).
func verifyUnits(t *testing.T, r *overlayRoot, units ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := r.command(ctx, append([]string{"systemd-analyze", "verify"}, units...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemd-analyze verify: %w\n%s", err, out)
	}
	if len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("systemd-analyze verify warns:\n%s", out)
	}
	return nil
}

// hostState describes what of vscardkit this machine has, outside any
// overlay: the package, the user and group, the files.
func hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	out, _ := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Version}", "vscardkit").CombinedOutput()
	fmt.Fprintf(&b, "dpkg: %s\n", out)
	for _, db := range []string{"passwd", "group"} {
		out, _ := exec.Command("getent", db, "vscardkit").CombinedOutput()
		fmt.Fprintf(&b, "%s: %s\n", db, out)
	}
	for _, p := range slices.Concat(binaries, units, manPages, comps, []string{conffile, docDir, stateDir}) {
		fi, err := os.Lstat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s: absent\n", p)
			continue
		}
		fmt.Fprintf(&b, "%s: %v %d %v\n", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// lineDiff lists the lines only in a (-) and only in b (+).
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
