package guest

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
)

// TestWriteCPIO writes a small tree and has cpio(1), an independent reader
// of the newc format, extract it.
func TestWriteCPIO(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		harness.Missing(t, "cpio", err)
	}
	dir := t.TempDir()
	host := filepath.Join(dir, "hostfile")
	// An odd length exercises the padding.
	hostData := bytes.Repeat([]byte("abc"), 1001)
	if err := os.WriteFile(host, hostData, 0o644); err != nil {
		t.Fatal(err)
	}
	tr := tree{}
	tr.add("/init", &entry{kind: kindFile, perm: 0o755, data: []byte("#!/bin/sh\n")})
	tr.add("/usr/lib/x/copied", &entry{kind: kindFile, perm: 0o600, src: host})
	tr.add("/lib", &entry{kind: kindSymlink, target: "usr/lib"})
	tr.add("/a/b/c/d", &entry{kind: kindFile, perm: 0o644, data: nil})

	var buf bytes.Buffer
	if err := writeCPIO(&buf, tr, openHost); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	var again bytes.Buffer
	if err := writeCPIO(&again, tr, openHost); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("the same tree gave two different archives")
	}

	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-id", "--quiet", "--no-absolute-filenames")
	cmd.Dir = out
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v: %s", err, msg)
	}
	check := func(p string, want []byte, perm os.FileMode) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(out, p))
		if err != nil {
			t.Error(err)
			return
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), perm)
		}
		got, _ := os.ReadFile(filepath.Join(out, p))
		if !bytes.Equal(got, want) {
			t.Errorf("%s holds %d bytes, want %d", p, len(got), len(want))
		}
	}
	check("init", []byte("#!/bin/sh\n"), 0o755)
	check("usr/lib/x/copied", hostData, 0o600)
	check("a/b/c/d", nil, 0o644)
	if target, err := os.Readlink(filepath.Join(out, "lib")); err != nil || target != "usr/lib" {
		t.Errorf("lib -> %q, %v; want usr/lib", target, err)
	}
}

// TestWriteCPIOChangedFile checks that a host file that changes size while
// it is archived is an error, not a corrupt archive.
func TestWriteCPIOChangedFile(t *testing.T) {
	tr := tree{}
	tr.add("/f", &entry{kind: kindFile, perm: 0o644, src: "f"})
	short := func(string) (io.ReadCloser, int64, error) {
		return io.NopCloser(strings.NewReader("abc")), 10, nil
	}
	if err := writeCPIO(io.Discard, tr, short); err == nil {
		t.Fatal("a short file did not fail")
	}
}
