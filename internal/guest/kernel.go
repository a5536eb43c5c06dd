package guest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// kernelMeta is the Debian metapackage whose dependency names the kernel
// the installed apt lists currently offer.
const kernelMeta = "linux-image-amd64"

// kernelModule is a kernel module taken from the kernel package.
type kernelModule struct {
	name string // file name without .ko
	dir  string // directory under lib/modules/RELEASE/kernel
}

// usbModules are the kernel modules the guest always loads, in load order:
// USB core and the UHCI host controller of QEMU's pc machine are modules in
// Debian's kernel.
var usbModules = []kernelModule{
	{"usb-common", "drivers/usb/common"},
	{"usbcore", "drivers/usb/core"},
	{"uhci-hcd", "drivers/usb/host"},
}

// netModules are loaded when a scenario asks for the network
// (vscard.net=1): the driver of QEMU's e1000 NIC, which needs no other
// module.
var netModules = []kernelModule{
	{"e1000", "drivers/net/ethernet/intel/e1000"},
}

// guestModules are all the modules copied into the guest.
func guestModules() []kernelModule {
	return append(append([]kernelModule(nil), usbModules...), netModules...)
}

// kernelPkg names a Debian kernel image package.
type kernelPkg struct {
	Name    string // linux-image-6.1.0-56-amd64
	Version string // 6.1.192-2
}

// id is a file-name-safe identifier of the package version.
func (k kernelPkg) id() string {
	return sanitize(k.Name + "_" + k.Version)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._+-]`)

func sanitize(s string) string { return unsafeChars.ReplaceAllString(s, "_") }

// pickKernel returns the kernel package to use: name when set (its candidate
// version), or the one linux-image-amd64 depends on in the installed apt
// lists.
func pickKernel(ctx context.Context, name string) (kernelPkg, error) {
	if name == "" {
		dep, err := aptField(ctx, kernelMeta, "Depends")
		if err != nil {
			return kernelPkg{}, err
		}
		if pkg, ok := parseKernelDep(dep); ok {
			return pkg, nil
		}
		return kernelPkg{}, fmt.Errorf("guest: %s depends on %q, not on one kernel image version", kernelMeta, dep)
	}
	ver, err := aptField(ctx, name, "Version")
	if err != nil {
		return kernelPkg{}, err
	}
	return kernelPkg{Name: name, Version: ver}, nil
}

// parseKernelDep reads the metapackage's Depends field,
// "linux-image-6.1.0-56-amd64 (= 6.1.192-2)".
func parseKernelDep(dep string) (kernelPkg, bool) {
	first, _, _ := strings.Cut(dep, ",")
	name, ver, ok := strings.Cut(first, "(")
	name = strings.TrimSpace(name)
	ver, ok2 := strings.CutPrefix(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(ver), ")")), "=")
	ver = strings.TrimSpace(ver)
	if !ok || !ok2 || ver == "" || !strings.HasPrefix(name, "linux-image-") || strings.ContainsAny(name+ver, " |") {
		return kernelPkg{}, false
	}
	return kernelPkg{Name: name, Version: ver}, true
}

// aptField returns a field of the candidate version of pkg in the apt lists.
func aptField(ctx context.Context, pkg, field string) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("guest: apt-cache show %s: %w (%s); hint: run `apt-get update`", pkg, err, stderrOf(err))
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("guest: apt-cache show %s has no %s field; hint: run `apt-get update`", pkg, field)
}

// stderrOf returns the trimmed standard error an *exec.ExitError captured.
func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		s := strings.TrimSpace(string(ee.Stderr))
		if len(s) > 500 {
			s = s[len(s)-500:]
		}
		return s
	}
	return ""
}

// kernelFiles are the files taken from a kernel package.
type kernelFiles struct {
	dir     string // directory holding them
	release string // uname -r, e.g. 6.1.0-56-amd64
}

func (k kernelFiles) vmlinux() string { return filepath.Join(k.dir, "vmlinux") }

func (k kernelFiles) module(name string) string {
	return filepath.Join(k.dir, "modules", name+".ko")
}

// prepareKernel returns the uncompressed kernel and the guest's modules of pkg,
// from the cache or else downloaded with apt-get and extracted into
// cacheDir/kernel-ID. It deletes the downloaded package once extracted.
func prepareKernel(ctx context.Context, cacheDir string, pkg kernelPkg) (kernelFiles, error) {
	dir := filepath.Join(cacheDir, "kernel-"+pkg.id())
	if k, ok := completeKernel(dir); ok {
		touch(dir)
		return k, nil
	}
	tmp, err := os.MkdirTemp(cacheDir, "tmp-kernel-")
	if err != nil {
		return kernelFiles{}, fmt.Errorf("guest: %w", err)
	}
	defer os.RemoveAll(tmp)

	dl := exec.CommandContext(ctx, "apt-get", "download", "-q",
		"-o", "APT::Sandbox::User=root", pkg.Name+"="+pkg.Version)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return kernelFiles{}, fmt.Errorf("guest: apt-get download %s=%s: %w: %s", pkg.Name, pkg.Version, err, tail(out))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return kernelFiles{}, fmt.Errorf("guest: apt-get download %s left %d .deb files, expected 1", pkg.Name, len(debs))
	}
	out := filepath.Join(tmp, "out")
	if err := os.MkdirAll(filepath.Join(out, "modules"), 0o755); err != nil {
		return kernelFiles{}, fmt.Errorf("guest: %w", err)
	}
	release, vmlinuz, err := extractDeb(ctx, debs[0], out)
	if err != nil {
		return kernelFiles{}, err
	}
	if err := os.Remove(debs[0]); err != nil {
		return kernelFiles{}, fmt.Errorf("guest: %w", err)
	}
	if err := decompressKernel(ctx, vmlinuz, filepath.Join(out, "vmlinux")); err != nil {
		return kernelFiles{}, err
	}
	if err := os.Remove(vmlinuz); err != nil {
		return kernelFiles{}, fmt.Errorf("guest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "package"), []byte(pkg.Name+" "+pkg.Version+"\n"), 0o644); err != nil {
		return kernelFiles{}, fmt.Errorf("guest: %w", err)
	}
	// The release file is written last: its presence marks a complete
	// directory.
	if err := os.WriteFile(filepath.Join(out, "release"), []byte(release+"\n"), 0o644); err != nil {
		return kernelFiles{}, fmt.Errorf("guest: %w", err)
	}
	// A directory left by an older builder that took fewer modules is
	// replaced.
	if err := os.RemoveAll(dir); err != nil {
		return kernelFiles{}, fmt.Errorf("guest: %w", err)
	}
	if err := os.Rename(out, dir); err != nil {
		return kernelFiles{}, fmt.Errorf("guest: %w", err)
	}
	return kernelFiles{dir: dir, release: release}, nil
}

// completeKernel returns the kernel files in dir when the directory is
// complete: its release file (written last) and every module the guest
// takes are there.
func completeKernel(dir string) (kernelFiles, bool) {
	rel, err := os.ReadFile(filepath.Join(dir, "release"))
	if err != nil {
		return kernelFiles{}, false
	}
	k := kernelFiles{dir: dir, release: strings.TrimSpace(string(rel))}
	for _, m := range guestModules() {
		if _, err := os.Stat(k.module(m.name)); err != nil {
			return kernelFiles{}, false
		}
	}
	return k, true
}

// newestCachedKernel returns the complete kernel directory in cacheDir used
// most recently.
func newestCachedKernel(cacheDir string) (kernelPkg, kernelFiles, bool) {
	dirs, _ := filepath.Glob(filepath.Join(cacheDir, "kernel-*"))
	var best kernelFiles
	var bestPkg kernelPkg
	var bestTime int64
	for _, d := range dirs {
		k, ok := completeKernel(d)
		p, err2 := os.ReadFile(filepath.Join(d, "package"))
		fi, err3 := os.Stat(d)
		if !ok || err2 != nil || err3 != nil {
			continue
		}
		name, ver, ok := strings.Cut(strings.TrimSpace(string(p)), " ")
		if !ok {
			continue
		}
		if t := fi.ModTime().UnixNano(); bestPkg.Name == "" || t > bestTime {
			best = k
			bestPkg = kernelPkg{Name: name, Version: ver}
			bestTime = t
		}
	}
	return bestPkg, best, bestPkg.Name != ""
}

// extractDeb takes boot/vmlinuz-* and the guest's modules out of the kernel
// package deb (through dpkg-deb --fsys-tarfile) into out, and returns the
// kernel release and the vmlinuz path.
func extractDeb(ctx context.Context, deb, out string) (release, vmlinuz string, err error) {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", "", fmt.Errorf("guest: dpkg-deb: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", "", fmt.Errorf("guest: dpkg-deb: %w", err)
	}
	release, vmlinuz, terr := extractTar(stdout, out)
	// Drain what dpkg-deb still writes so that it can exit.
	io.Copy(io.Discard, stdout)
	werr := cmd.Wait()
	if terr != nil {
		return "", "", terr
	}
	if werr != nil {
		return "", "", fmt.Errorf("guest: dpkg-deb --fsys-tarfile %s: %w: %s", deb, werr, tail(stderr.Bytes()))
	}
	return release, vmlinuz, nil
}

// extractTar is extractDeb's reading of the package's file system tar.
func extractTar(r io.Reader, out string) (release, vmlinuz string, err error) {
	want := map[string]string{} // path suffix after the release -> destination
	for _, m := range guestModules() {
		want["kernel/"+m.dir+"/"+m.name+".ko"] = filepath.Join(out, "modules", m.name+".ko")
	}
	found := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", "", fmt.Errorf("guest: reading the kernel package: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		var dst string
		if rel, ok := strings.CutPrefix(name, "boot/vmlinuz-"); ok && !strings.Contains(rel, "/") {
			if release != "" && release != rel {
				return "", "", fmt.Errorf("guest: kernel package holds two kernels, %s and %s", release, rel)
			}
			release = rel
			dst = filepath.Join(out, "vmlinuz")
			vmlinuz = dst
		} else if rest, ok := strings.CutPrefix(name, "lib/modules/"); ok {
			_, suffix, _ := strings.Cut(rest, "/")
			dst = want[suffix]
			if dst != "" {
				found[suffix] = true
			}
		}
		if dst == "" {
			continue
		}
		if err := writeFileFrom(dst, tr, 0o644); err != nil {
			return "", "", err
		}
	}
	if vmlinuz == "" {
		return "", "", errors.New("guest: kernel package has no boot/vmlinuz-*")
	}
	for suffix := range want {
		if !found[suffix] {
			return "", "", fmt.Errorf("guest: kernel package has no %s (is the driver built in? this builder expects modules)", suffix)
		}
	}
	return release, vmlinuz, nil
}

func writeFileFrom(dst string, r io.Reader, perm os.FileMode) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("guest: writing %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	return nil
}

// xzMagic starts an XZ stream.
var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// elfMagic starts an ELF file.
var elfMagic = []byte{0x7f, 'E', 'L', 'F'}

// decompressKernel writes the ELF vmlinux embedded, XZ-compressed, in the
// bzImage vmlinuz to dst: it tries each XZ stream start in turn (as the
// kernel's scripts/extract-vmlinux does) until one decompresses to an ELF
// file. Booting the ELF directly skips the decompressor, which is slow
// under TCG.
func decompressKernel(ctx context.Context, vmlinuz, dst string) error {
	img, err := os.ReadFile(vmlinuz)
	if err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	var lastErr error = errors.New("no XZ stream found")
	for off := 0; ; {
		i := bytes.Index(img[off:], xzMagic)
		if i < 0 {
			break
		}
		off += i
		if err := unxz(ctx, img[off:], dst); err == nil {
			return nil
		} else {
			lastErr = err
		}
		off++
	}
	return fmt.Errorf("guest: extracting vmlinux from %s: %w", filepath.Base(vmlinuz), lastErr)
}

// unxz decompresses the first XZ stream of b into dst and checks that it is
// an ELF file.
func unxz(ctx context.Context, b []byte, dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "xz", "--decompress", "--stdout", "--single-stream", "--quiet")
	cmd.Stdin = bytes.NewReader(b)
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("xz: %w: %s", err, tail(stderr.Bytes()))
	}
	head := make([]byte, 4)
	if _, err := f.ReadAt(head, 0); err != nil || !bytes.Equal(head, elfMagic) {
		return errors.New("the XZ stream is not an ELF file")
	}
	return f.Close()
}

// tail returns the last few hundred bytes of a program's output, trimmed.
func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 500 {
		s = "..." + s[len(s)-500:]
	}
	return s
}
