package guest

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNewestCachedKernel(t *testing.T) {
	dir := t.TempDir()
	mk := func(name, pkg, release string, age time.Duration, complete bool) {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "package"), []byte(pkg+"\n"), 0o644)
		if complete {
			os.WriteFile(filepath.Join(d, "release"), []byte(release+"\n"), 0o644)
			os.MkdirAll(filepath.Join(d, "modules"), 0o755)
			for _, m := range guestModules() {
				os.WriteFile(kernelFiles{dir: d}.module(m.name), nil, 0o644)
			}
		}
		when := time.Now().Add(-age)
		os.Chtimes(d, when, when)
	}
	if _, _, ok := newestCachedKernel(dir); ok {
		t.Fatal("found a kernel in an empty cache")
	}
	mk("kernel-a", "linux-image-a 1", "a", 2*time.Hour, true)
	mk("kernel-b", "linux-image-b 2", "b", time.Hour, true)
	mk("kernel-c", "linux-image-c 3", "c", 0, false) // interrupted: no release file
	// An older builder's directory: complete then, but without the
	// network module.
	mk("kernel-d", "linux-image-d 4", "d", 0, true)
	os.Remove(kernelFiles{dir: filepath.Join(dir, "kernel-d")}.module("e1000"))
	pkg, k, ok := newestCachedKernel(dir)
	if !ok || pkg != (kernelPkg{"linux-image-b", "2"}) || k.release != "b" || k.dir != filepath.Join(dir, "kernel-b") {
		t.Fatalf("newestCachedKernel = %v %+v %v, want linux-image-b", pkg, k, ok)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * pruneAge)
	for name, aged := range map[string]bool{
		"image-old": true, "image-new": false, "image-kept": true,
		"kernel-old": true, "tmp-image-123": false, "debs": true,
	} {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if aged {
			os.Chtimes(d, old, old)
		}
	}
	prune(dir, map[string]bool{"image-kept": true}, slog.New(slog.DiscardHandler))
	for name, want := range map[string]bool{
		"image-old": false, "image-new": true, "image-kept": true,
		"kernel-old": false, "tmp-image-123": false, "debs": true,
	} {
		_, err := os.Stat(filepath.Join(dir, name))
		if got := err == nil; got != want {
			t.Errorf("after prune, %s exists = %v, want %v", name, got, want)
		}
	}
}
