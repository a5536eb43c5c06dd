//go:build cgo

package certsrc

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/miekg/pkcs11"
)

// A module is a loaded PKCS#11 library. A process may load a library and
// call C_Initialize only once, so the Stores of a process share one module
// per library file and the last one to close it calls C_Finalize.
type module struct {
	path string // the real path (symlinks resolved): the registry key
	ctx  *pkcs11.Ctx
	refs int  // guarded by registry.mu
	owns bool // certsrc called C_Initialize, so it may call C_Finalize
}

var registry struct {
	mu sync.Mutex
	m  map[string]*module
}

// loadModule loads and initialises the module in file, or takes another
// reference to it.
func loadModule(file string) (*module, error) {
	real, err := filepath.EvalSymlinks(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoModule, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoModule, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrNoModule, file)
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if m := registry.m[real]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(real)
	if ctx == nil {
		return nil, fmt.Errorf("%w: cannot load %s (dlopen failed: not a shared library for this machine, or a missing dependency)", ErrNoModule, file)
	}
	m := &module{path: real, ctx: ctx, refs: 1, owns: true}
	if err := ctx.Initialize(); err != nil {
		if code, _ := ckr(err); code != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			ctx.Destroy()
			return nil, fmt.Errorf("%w: C_Initialize of %s: %w", ErrNoModule, file, err)
		}
		// Someone else in this process initialised it: use it, and
		// leave C_Finalize to them.
		m.owns = false
	}
	if registry.m == nil {
		registry.m = make(map[string]*module)
	}
	registry.m[real] = m
	return m, nil
}

// release drops a reference; the last one finalises and unloads the module.
func (m *module) release() error {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return nil
	}
	delete(registry.m, m.path)
	var err error
	if m.owns {
		if e := m.ctx.Finalize(); e != nil {
			err = fmt.Errorf("certsrc: C_Finalize: %w", e)
		}
	}
	m.ctx.Destroy()
	return err
}

// reinitialize calls C_Finalize and C_Initialize, so that a module that
// only looks for tokens at C_Initialize (softhsm2) sees a token that came
// back. It does so only when the caller holds the only reference and
// certsrc initialised the module: otherwise it would close other Stores'
// sessions. It reports whether it did.
func (m *module) reinitialize() (bool, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if m.refs != 1 || !m.owns {
		return false, nil
	}
	m.ctx.Finalize() // sessions are gone either way
	if err := m.ctx.Initialize(); err != nil {
		if code, _ := ckr(err); code != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			return true, fmt.Errorf("certsrc: C_Initialize: %w", err)
		}
	}
	return true, nil
}
