package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
)

// moduleRoot is the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// TestMakeBuildStampsVersion builds the commands the way users do, with
// `make build`, and checks that --version prints what the Makefile stamped:
// the VERSION given, or scripts/version.sh's answer when none is.
func TestMakeBuildStampsVersion(t *testing.T) {
	makePath := harness.LookPath(t, "make", "make")
	harness.LookPath(t, "gcc (cgo, for PC/SC)", "gcc")
	root := moduleRoot(t)

	want, err := exec.Command(filepath.Join(root, "scripts", "version.sh")).Output()
	if err != nil {
		t.Fatalf("scripts/version.sh: %v", err)
	}
	cases := []struct {
		name    string
		version string // VERSION= for make; "" for none
		want    string
	}{
		{"explicit", "v9.8.7-stamp-test", "v9.8.7-stamp-test"},
		{"from-git", "", strings.TrimSpace(string(want))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bin := t.TempDir()
			args := []string{"-s", "-C", root, "build", "BIN=" + bin}
			cmd := exec.Command(makePath, args...)
			cmd.Env = os.Environ()
			if c.version != "" {
				cmd.Env = append(cmd.Env, "VERSION="+c.version)
			} else {
				cmd.Env = withoutEnv(cmd.Env, "VERSION")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("make build: %v\n%s", err, out)
			}
			for _, prog := range []string{"vscclient-go", "fake-ccid-server"} {
				out, err := exec.Command(filepath.Join(bin, prog), "--version").CombinedOutput()
				if err != nil {
					t.Fatalf("%s --version: %v\n%s", prog, err, out)
				}
				if got, want := strings.TrimSpace(string(out)), prog+" "+c.want; got != want {
					t.Errorf("%s --version = %q, want %q", prog, got, want)
				}
			}
		})
	}
}

func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
