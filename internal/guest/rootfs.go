package guest

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// initScript is the guest's /init: it loads the USB modules, starts pcscd
// once QEMU's reader is on the bus and runs the scenario the kernel command
// line names.
//
//go:embed init.sh
var initScript []byte

// multiarchDir is where Debian keeps amd64 libraries.
const multiarchDir = "/usr/lib/x86_64-linux-gnu"

// hostPrograms are the host programs copied into the guest, with the
// libraries ldd lists for them.
var hostPrograms = []string{
	"/usr/bin/busybox", // busybox-static
	"/usr/sbin/pcscd",
	"/usr/bin/opensc-tool",
	"/usr/bin/pkcs11-tool",
	"/usr/bin/pcsc_scan",
}

// hostLibraries are loaded at run time with dlopen, so ldd does not list
// them: OpenSC loads libpcsclite.so.1, pkcs11-tool loads opensc-pkcs11.so,
// and glibc loads libgcc_s.so.1 for pthread_cancel (without it pcscd aborts
// when a client disconnects). Their own dependencies are copied too.
var hostLibraries = []string{
	multiarchDir + "/libpcsclite.so.1",
	multiarchDir + "/opensc-pkcs11.so",
	multiarchDir + "/libgcc_s.so.1",
}

// ccidBundle is libccid's driver bundle. Its Info.plist is a symlink into
// /etc that must be followed: pcscd silently disables USB without it.
const ccidBundle = "/usr/lib/pcsc/drivers/ifd-ccid.bundle"

// optionalConfig is copied when the host has it.
var optionalConfig = []string{"/etc/opensc.conf"}

// udevadm is the udev package's binary; it runs as the daemon when invoked
// as systemd-udevd, the name udevdPath links to it by.
const (
	udevadm   = "/usr/bin/udevadm"
	udevdPath = "/usr/lib/systemd/systemd-udevd"
)

// rootfs describes the guest's root file system: the init script, the
// modules of k, the host's programs with their libraries, and what opts
// adds.
func rootfs(ctx context.Context, k kernelFiles, opts BuildOptions) (tree, error) {
	t := tree{}
	// A merged-/usr layout like the host's, so that the paths ldd prints
	// and the ones compiled into the programs hold in the guest too.
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		t.add("/"+d, &entry{kind: kindSymlink, target: "usr/" + d})
		t.add("/usr/"+d, &entry{kind: kindDir, perm: 0o755})
	}
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/etc", "/root"} {
		t.add(d, &entry{kind: kindDir, perm: 0o755})
	}
	t["/tmp"].perm = 0o777 // sticky bit is not needed in a one-user guest
	// The kernel opens /dev/console for init before init can mount
	// devtmpfs.
	t.add("/dev/console", &entry{kind: kindCharDev, perm: 0o600, major: 5, minor: 1})
	t.add("/dev/null", &entry{kind: kindCharDev, perm: 0o666, major: 1, minor: 3})
	t.add("/init", &entry{kind: kindFile, perm: 0o755, data: initScript})
	t.add("/usr/bin/sh", &entry{kind: kindSymlink, target: "busybox"})
	t.add("/etc/release", &entry{kind: kindFile, perm: 0o644, data: []byte("vscardkit test guest, kernel " + k.release + "\n")})

	for _, m := range guestModules() {
		t.add("/usr/lib/modules/"+m.name+".ko", &entry{kind: kindFile, perm: 0o644, src: k.module(m.name)})
	}

	var elfs []string
	programs := hostPrograms
	if opts.Udev {
		programs = append(programs[:len(programs):len(programs)], udevadm)
		t.add(udevdPath, &entry{kind: kindSymlink, target: "../../bin/udevadm"})
	}
	for _, p := range programs {
		if err := addHostFile(t, p); err != nil {
			return nil, err
		}
		elfs = append(elfs, p)
	}
	for _, p := range hostLibraries {
		if err := addHostFile(t, p); err != nil {
			return nil, err
		}
		elfs = append(elfs, p)
	}
	bundleELFs, err := addHostTree(t, ccidBundle)
	if err != nil {
		return nil, err
	}
	elfs = append(elfs, bundleELFs...)
	for _, p := range optionalConfig {
		if _, err := os.Stat(p); err == nil {
			if err := addHostFile(t, p); err != nil {
				return nil, err
			}
		}
	}

	extra, err := addExtraFiles(t, opts.ExtraFiles)
	if err != nil {
		return nil, err
	}
	elfs = append(elfs, extra...)

	libs := map[string]bool{}
	for _, p := range elfs {
		deps, err := ldd(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, d := range deps {
			libs[d] = true
		}
	}
	for l := range libs {
		if err := addHostFile(t, l); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// addExtraFiles adds BuildOptions.ExtraFiles to t and returns the host
// paths of the ELF files among them, whose libraries the image needs too.
// It adds them after the image's own files, so that a clash is seen.
func addExtraFiles(t tree, files []File) ([]string, error) {
	var elfs []string
	for _, f := range files {
		fi, err := os.Stat(f.Host)
		if err != nil {
			return nil, fmt.Errorf("guest: extra file: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadFile, f.Host)
		}
		dst := f.Guest
		if dst == "" {
			if dst, err = canonical(f.Host); err != nil {
				return nil, err
			}
			if !path.IsAbs(dst) {
				return nil, fmt.Errorf("%w: %s is not an absolute path", ErrBadFile, f.Host)
			}
		}
		if !path.IsAbs(dst) || path.Clean(dst) != dst || dst == "/" {
			return nil, fmt.Errorf("%w: guest path %q is not absolute and clean", ErrBadFile, dst)
		}
		if _, ok := t[dst]; ok {
			return nil, fmt.Errorf("%w: the image already has %s", ErrBadFile, dst)
		}
		for d := path.Dir(dst); d != "/"; d = path.Dir(d) {
			if e, ok := t[d]; ok && e.kind != kindDir {
				return nil, fmt.Errorf("%w: guest path %s goes through %s, which is not a directory in the image (the image has /usr/bin, /usr/lib... behind /bin, /lib...)", ErrBadFile, dst, d)
			}
		}
		t.add(dst, &entry{kind: kindFile, perm: fi.Mode().Perm(), src: f.Host})
		if isELF(f.Host) {
			elfs = append(elfs, f.Host)
		}
	}
	return elfs, nil
}

// canonical returns p with the symlinks in its directory resolved (so that
// /lib/x86_64-linux-gnu/libc.so.6 becomes /usr/lib/x86_64-linux-gnu/libc.so.6
// on a merged-/usr system) but its last element kept (a soname link stays a
// soname, holding the target's contents).
func canonical(p string) (string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return "", fmt.Errorf("guest: %w", err)
	}
	return filepath.Join(dir, filepath.Base(p)), nil
}

// addHostFile adds the host file p (its contents and permissions, symlinks
// followed) at its canonical path. The dynamic loader, for one, must keep
// its execute bit: the kernel opens it like a program.
func addHostFile(t tree, p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("guest: %w; hint: run `make deps`", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("guest: %s is not a regular file", p)
	}
	c, err := canonical(p)
	if err != nil {
		return err
	}
	t.add(c, &entry{kind: kindFile, perm: fi.Mode().Perm(), src: p})
	return nil
}

// addHostTree adds the directory root recursively like `cp -aL` and returns
// the shared objects and executables in it.
func addHostTree(t tree, root string) ([]string, error) {
	var elfs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Stat(p) // follows symlinks, as cp -L does
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			t.add(p, &entry{kind: kindDir, perm: fi.Mode().Perm()})
		case fi.Mode().IsRegular():
			t.add(p, &entry{kind: kindFile, perm: fi.Mode().Perm(), src: p})
			if isELF(p) {
				elfs = append(elfs, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("guest: copying %s: %w; hint: run `make deps`", root, err)
	}
	return elfs, nil
}

func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 4)
	_, err = f.ReadAt(b, 0)
	return err == nil && bytes.Equal(b, elfMagic)
}

// ldd returns the absolute paths of the shared libraries (and the dynamic
// loader) the ELF file p needs, as ldd(1) resolves them on the host.
func ldd(ctx context.Context, p string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", p).Output()
	if err != nil {
		msg := stderrOf(err)
		if strings.Contains(msg, "not a dynamic executable") {
			return nil, nil // busybox-static
		}
		return nil, fmt.Errorf("guest: ldd %s: %w: %s", p, err, msg)
	}
	return parseLDD(p, out)
}

// parseLDD reads ldd's output for p.
func parseLDD(p string, out []byte) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.Contains(line, "statically linked") {
			continue
		}
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)",
		// "/lib64/ld-linux-x86-64.so.2 (0x...)", "linux-vdso.so.1 (0x...)"
		// or "libfoo.so.1 => not found".
		name, target, arrow := strings.Cut(line, " => ")
		if arrow {
			if strings.HasPrefix(target, "not found") {
				return nil, fmt.Errorf("guest: ldd %s: %s is not found on the host", p, name)
			}
			lib := strings.Fields(target)[0]
			if path.IsAbs(lib) {
				libs = append(libs, lib)
			}
			continue
		}
		if f := strings.Fields(name); len(f) > 0 && path.IsAbs(f[0]) {
			libs = append(libs, f[0])
		}
	}
	return libs, sc.Err()
}
