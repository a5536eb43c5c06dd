package guest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
)

func TestParseKernelDep(t *testing.T) {
	good := map[string]kernelPkg{
		"linux-image-6.1.0-56-amd64 (= 6.1.192-2)":        {"linux-image-6.1.0-56-amd64", "6.1.192-2"},
		"linux-image-6.1.0-56-amd64 (= 6.1.192-2), other": {"linux-image-6.1.0-56-amd64", "6.1.192-2"},
	}
	for dep, want := range good {
		if got, ok := parseKernelDep(dep); !ok || got != want {
			t.Errorf("parseKernelDep(%q) = %v, %v; want %v", dep, got, ok, want)
		}
	}
	for _, dep := range []string{"", "linux-image-6.1.0-56-amd64", "libc6 (= 2.36)", "linux-image-a (>= 1) | linux-image-b", "linux-image-x (= )"} {
		if got, ok := parseKernelDep(dep); ok {
			t.Errorf("parseKernelDep(%q) = %v, want rejection", dep, got)
		}
	}
}

// TestDecompressKernel builds a fake bzImage (setup code, a decoy XZ magic,
// an XZ stream holding an "ELF" file, trailing bytes) and checks that the
// real xz finds the ELF in it.
func TestDecompressKernel(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		harness.Missing(t, "xz", err)
	}
	dir := t.TempDir()
	elf := append(append([]byte(nil), elfMagic...), bytes.Repeat([]byte("kernel"), 1000)...)
	cmd := exec.Command("xz", "--format=xz", "--stdout")
	cmd.Stdin = bytes.NewReader(elf)
	stream, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var img []byte
	img = append(img, bytes.Repeat([]byte{0x90}, 512)...)
	img = append(img, xzMagic...) // a decoy: not a valid stream
	img = append(img, "garbage"...)
	img = append(img, stream...)
	img = append(img, bytes.Repeat([]byte{0xcc}, 100)...)
	vmlinuz := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(vmlinuz, img, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "vmlinux")
	if err := decompressKernel(t.Context(), vmlinuz, out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, elf) {
		t.Fatalf("vmlinux is %d bytes, want the %d-byte ELF", len(got), len(elf))
	}

	// Without an ELF inside, it fails.
	if err := os.WriteFile(vmlinuz, bytes.Repeat([]byte{1}, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := decompressKernel(t.Context(), vmlinuz, out); err == nil {
		t.Fatal("decompressKernel of junk succeeded")
	}
}
