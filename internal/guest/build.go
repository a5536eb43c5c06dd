package guest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// formatVersion changes whenever the builder changes what it puts in an
// image in a way the hashed inputs do not show.
const formatVersion = "vscardkit-guest-1"

// Environment variables that override BuildOptions' defaults.
const (
	// CacheEnv names the directory images are cached in.
	CacheEnv = "VSCARDKIT_GUEST_CACHE"
	// KernelEnv names the kernel package to use, e.g.
	// linux-image-6.1.0-56-amd64.
	KernelEnv = "VSCARDKIT_GUEST_KERNEL"
)

// Image is a built guest: a kernel and an initramfs for QEMU's -kernel and
// -initrd. Its files live in the cache; do not modify them.
type Image struct {
	// Kernel is the uncompressed ELF vmlinux.
	Kernel string
	// Initramfs is the uncompressed newc cpio archive.
	Initramfs string
	// KernelRelease is the kernel's `uname -r`, e.g. 6.1.0-56-amd64.
	KernelRelease string
	// Key is the hex SHA-256 of every input of the image (kernel package,
	// init script, each copied host file's path and contents).
	Key string
	// Cached reports whether Build found the image in the cache.
	Cached bool
}

// BuildOptions configures Build. The zero value builds from the kernel the
// apt lists offer into the user's cache directory.
type BuildOptions struct {
	// CacheDir holds downloaded kernels and built images. Empty means
	// $VSCARDKIT_GUEST_CACHE, else $XDG_CACHE_HOME/vscardkit/guest, else
	// ~/.cache/vscardkit/guest.
	CacheDir string
	// KernelPackage is the Debian kernel image package, e.g.
	// linux-image-6.1.0-56-amd64. Empty means $VSCARDKIT_GUEST_KERNEL, else
	// the package linux-image-amd64 depends on in the installed apt lists.
	KernelPackage string
	// Udev adds systemd-udevd (the host's udevadm, package udev, with its
	// libraries), so that a guest booted with the parameter vscard.udev=1
	// runs it and its pcscd sees USB readers come and go. Without udevd,
	// pcscd's libudev monitor hears nothing: it listens on the "udev"
	// netlink group, which only udevd sends to.
	Udev bool
	// ExtraFiles are more host files for the image, with the libraries ldd
	// lists for those that are dynamic executables or libraries (the built
	// vscclient-go, say). They are part of the image's key: a changed file
	// makes a new image. Nil means none.
	ExtraFiles []File
	// Logger receives progress messages. Nil means none.
	Logger *slog.Logger
}

// File is a host file to copy into the guest image.
type File struct {
	// Host is the file's path on the host; symlinks are followed.
	Host string
	// Guest is the file's absolute path in the guest. Empty means the same
	// path as on the host (with the host's symlinked directories resolved,
	// as for the image's own files).
	Guest string
}

// ErrBadFile is wrapped when an extra file cannot go into the image: its
// guest path is not absolute and clean, or the image already has a file
// there.
var ErrBadFile = errors.New("guest: bad extra file")

// DefaultCacheDir returns the cache directory Build uses when
// BuildOptions.CacheDir is empty.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("guest: no cache directory: %w", err)
	}
	return filepath.Join(d, "vscardkit", "guest"), nil
}

// Build returns the guest image, building it when the cache has none for
// the current inputs. The kernel comes from a Debian kernel package fetched
// with `apt-get download`; the userland (busybox, pcscd with libccid,
// OpenSC's tools and pcsc_scan, udevd with opts.Udev, opts.ExtraFiles) is
// copied from the host. A cold build takes
// a few seconds plus the download; a cached one well under a second. Build
// is safe to call from several processes at once: they serialise on a lock
// file in the cache directory.
func Build(ctx context.Context, opts BuildOptions) (Image, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		var err error
		if cacheDir, err = DefaultCacheDir(); err != nil {
			return Image{}, err
		}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Image{}, fmt.Errorf("guest: %w", err)
	}
	unlock, err := lockDir(ctx, cacheDir)
	if err != nil {
		return Image{}, err
	}
	defer unlock()

	kname := opts.KernelPackage
	if kname == "" {
		kname = os.Getenv(KernelEnv)
	}
	pkg, k, err := kernelFor(ctx, cacheDir, kname, log)
	if err != nil {
		return Image{}, err
	}
	t, err := rootfs(ctx, k, opts)
	if err != nil {
		return Image{}, err
	}
	key, err := imageKey(pkg, t)
	if err != nil {
		return Image{}, err
	}
	img := Image{Kernel: k.vmlinux(), KernelRelease: k.release, Key: key}
	dir := filepath.Join(cacheDir, "image-"+key[:16])
	img.Initramfs = filepath.Join(dir, "initramfs.cpio")
	if _, err := os.Stat(img.Initramfs); err == nil {
		touch(dir)
		img.Cached = true
		log.Debug("guest: cached image", "dir", dir)
		return img, nil
	}
	tmp, err := os.MkdirTemp(cacheDir, "tmp-image-")
	if err != nil {
		return Image{}, fmt.Errorf("guest: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := writeInitramfs(filepath.Join(tmp, "initramfs.cpio"), t); err != nil {
		return Image{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "inputs.txt"), []byte(manifest(pkg, t)), 0o644); err != nil {
		return Image{}, fmt.Errorf("guest: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Image{}, fmt.Errorf("guest: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return Image{}, fmt.Errorf("guest: %w", err)
	}
	log.Debug("guest: built image", "dir", dir)
	prune(cacheDir, map[string]bool{filepath.Base(dir): true, filepath.Base(k.dir): true}, log)
	return img, nil
}

// kernelFor returns the kernel to use: the package the apt lists offer
// (or name), downloaded unless cached. When that fails (no apt lists, no
// network, a version the mirror dropped) and no kernel was named, it falls
// back to the most recently used kernel in the cache.
func kernelFor(ctx context.Context, cacheDir, name string, log *slog.Logger) (kernelPkg, kernelFiles, error) {
	pkg, err := pickKernel(ctx, name)
	if err == nil {
		log.Debug("guest: kernel package", "name", pkg.Name, "version", pkg.Version)
		var k kernelFiles
		if k, err = prepareKernel(ctx, cacheDir, pkg); err == nil {
			return pkg, k, nil
		}
	}
	if name != "" || ctx.Err() != nil {
		return kernelPkg{}, kernelFiles{}, err
	}
	cpkg, k, ok := newestCachedKernel(cacheDir)
	if !ok {
		return kernelPkg{}, kernelFiles{}, err
	}
	log.Warn("guest: using a cached kernel", "package", cpkg.Name, "version", cpkg.Version, "because", err)
	touch(k.dir)
	return cpkg, k, nil
}

func writeInitramfs(dst string, t tree) error {
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if err := writeCPIO(f, t, openHost); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	return nil
}

// openHost opens a host file for the archive.
func openHost(p string) (io.ReadCloser, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// imageKey hashes every input of the image.
func imageKey(pkg kernelPkg, t tree) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nkernel %s %s\n", formatVersion, pkg.Name, pkg.Version)
	for _, p := range sortedPaths(t) {
		e := t[p]
		fmt.Fprintf(h, "%q %d %o %q %d:%d ", p, e.kind, e.perm, e.target, e.major, e.minor)
		switch {
		case e.kind != kindFile:
		case e.src == "":
			fmt.Fprintf(h, "data %x", sha256.Sum256(e.data))
		default:
			f, err := os.Open(e.src)
			if err != nil {
				return "", fmt.Errorf("guest: %w", err)
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return "", fmt.Errorf("guest: hashing %s: %w", e.src, err)
			}
			fmt.Fprintf(h, "file %x", fh.Sum(nil))
		}
		io.WriteString(h, "\n")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// manifest lists an image's inputs, for people reading the cache.
func manifest(pkg kernelPkg, t tree) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nkernel package %s %s\n", formatVersion, pkg.Name, pkg.Version)
	for _, p := range sortedPaths(t) {
		e := t[p]
		switch e.kind {
		case kindFile:
			src := e.src
			if src == "" {
				src = fmt.Sprintf("(%d bytes generated)", len(e.data))
			}
			fmt.Fprintf(&b, "%s <- %s\n", p, src)
		case kindSymlink:
			fmt.Fprintf(&b, "%s -> %s\n", p, e.target)
		}
	}
	return b.String()
}

func sortedPaths(t tree) []string {
	ps := make([]string, 0, len(t))
	for p := range t {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// lockDir takes an exclusive lock on dir's lock file, polling so that ctx
// can cancel the wait.
func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("guest: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("guest: locking %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("guest: waiting for the cache lock: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// touch marks a cache entry as used now.
func touch(p string) {
	now := time.Now()
	os.Chtimes(p, now, now)
}

// pruneAge is how long an unused kernel or image stays in the cache.
const pruneAge = 7 * 24 * time.Hour

// prune removes the cache entries other than keep that were not used for
// pruneAge, and leftovers of interrupted builds. It runs under the lock.
func prune(cacheDir string, keep map[string]bool, log *slog.Logger) {
	ents, err := os.ReadDir(cacheDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || keep[name] {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		stale := strings.HasPrefix(name, "tmp-") ||
			((strings.HasPrefix(name, "image-") || strings.HasPrefix(name, "kernel-")) && time.Since(fi.ModTime()) > pruneAge)
		if stale {
			log.Debug("guest: pruning the cache", "entry", name)
			os.RemoveAll(filepath.Join(cacheDir, name))
		}
	}
}
