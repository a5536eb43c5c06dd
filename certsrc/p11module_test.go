//go:build cgo

package certsrc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
)

// One module file loaded through two paths (a symlink and its target) is
// one module, initialised once and finalised by the last release.
func TestModuleShared(t *testing.T) {
	h := harness.NewSoftHSM(t, "shared")
	h.Setenv(t)
	real, err := filepath.EvalSymlinks(h.Module)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link.so")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	a, err := loadModule(h.Module)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadModule(link)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a.refs != 2 || !a.owns {
		t.Fatalf("two loads: %p %p refs %d owns %v; want one shared module", a, b, a.refs, a.owns)
	}
	if did, err := a.reinitialize(); did || err != nil {
		t.Errorf("reinitialize with two users: %v %v, want refused", did, err)
	}
	if err := a.release(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ctx.GetSlotList(true); err != nil {
		t.Errorf("module unusable while one user is left: %v", err)
	}
	if did, err := a.reinitialize(); !did || err != nil {
		t.Errorf("reinitialize with one user: %v %v", did, err)
	}
	if err := b.release(); err != nil {
		t.Fatal(err)
	}
	registry.mu.Lock()
	n := len(registry.m)
	registry.mu.Unlock()
	if n != 0 {
		t.Errorf("%d modules still registered after the last release", n)
	}
	if _, err := loadModule(filepath.Join(t.TempDir(), "none.so")); !errors.Is(err, ErrNoModule) {
		t.Errorf("loading a missing file: %v", err)
	}
}
