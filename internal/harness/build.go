package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// CleanupCommands removes what Commands built; call it from TestMain after
// m.Run.
func CleanupCommands() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

// moduleRoot is the directory holding go.mod, found from this file.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
