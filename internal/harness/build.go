package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var build struct {
	once sync.Once
	dir  string
	out  []byte
	err  error
}

// Commands builds vscardkit's commands (./cmd/...), and minclient, the
// benchmarks' baseline client (internal/cmd/minclient), once per test binary
// and returns the directory holding them. The directory is removed when
// the test binary exits only if the caller arranges it (see CleanupCommands
// in TestMain); it lives under the OS temp directory.
func Commands(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "vscardkit-bin")
		if build.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", build.dir+string(filepath.Separator), "./cmd/...", "./internal/cmd/minclient")
		cmd.Dir = moduleRoot()
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("harness: building the commands: %v\n%s", build.err, build.out)
	}
	return build.dir
}

// CleanupCommands removes what Commands and BuildWindows built; call it
// from TestMain after m.Run.
func CleanupCommands() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	windowsBuilds.mu.Lock()
	defer windowsBuilds.mu.Unlock()
	if windowsBuilds.dir != "" {
		os.RemoveAll(windowsBuilds.dir)
	}
}

// moduleRoot is the directory holding go.mod, found from this file.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Windows builds, one per package and cgo setting per test binary.
var windowsBuilds struct {
	mu   sync.Mutex
	dir  string
	done map[string]*windowsBuild
}

type windowsBuild struct {
	once sync.Once
	exe  string
	err  error
}

// BuildWindows builds the command pkg (e.g. "./cmd/vscclient-go") for
// windows/amd64 once per test binary and returns the .exe's path. With cgo
// it builds as make dist does, with mingw-w64's compiler (MinGWCC), and
// reports mingw-w64 missing when it is not installed; without cgo it sets
// CGO_ENABLED=0. A failed build is an error holding the compiler's output
// (the caller decides whether that fails the test). CleanupCommands
// removes what it built.
func BuildWindows(t testing.TB, pkg string, cgo bool) (string, error) {
	t.Helper()
	env := []string{"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0"}
	if cgo {
		cc, err := exec.LookPath(MinGWCC)
		if err != nil {
			Missing(t, MinGWPeer, err)
		}
		env = []string{"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=1", "CC=" + cc}
	}
	key := fmt.Sprintf("%s cgo=%v", pkg, cgo)
	windowsBuilds.mu.Lock()
	if windowsBuilds.done == nil {
		windowsBuilds.done = map[string]*windowsBuild{}
	}
	b := windowsBuilds.done[key]
	if b == nil {
		b = &windowsBuild{}
		windowsBuilds.done[key] = b
	}
	if windowsBuilds.dir == "" {
		dir, err := os.MkdirTemp("", "vscardkit-win")
		if err != nil {
			windowsBuilds.mu.Unlock()
			t.Fatalf("harness: %v", err)
		}
		windowsBuilds.dir = dir
	}
	dir := windowsBuilds.dir
	windowsBuilds.mu.Unlock()
	b.once.Do(func() {
		name := filepath.Base(pkg)
		if !cgo {
			name += "-nocgo"
		}
		b.exe = filepath.Join(dir, name+".exe")
		cmd := exec.Command("go", "build", "-o", b.exe, pkg)
		cmd.Dir = moduleRoot()
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("harness: go build %s (%s): %w\n%s", pkg, strings.Join(env, " "), err, out)
		}
	})
	return b.exe, b.err
}
