package deb

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
)

// TestCopyright checks that packaging/debian/copyright has a Files:
// paragraph for each module linked into the packaged commands, as `go
// version -m` lists them: a module added to the commands needs its
// copyright and license there.
func TestCopyright(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(moduleRoot(t), "packaging", "debian", "copyright"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^Files: (\S+)/\*$`).FindAllStringSubmatch(string(text), -1) {
		listed[m[1]] = true
	}
	if !listed["go"] {
		t.Errorf("copyright has no paragraph for the Go standard library (Files: go/*)")
	}
	bin := harness.Commands(t)
	var linked []string
	for _, name := range []string{"vscclient-go", "fake-ccid-server"} {
		out, err := exec.Command("go", "version", "-m", filepath.Join(bin, name)).Output()
		if err != nil {
			t.Fatalf("go version -m %s: %v", name, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			// "\tdep\tPATH\tVERSION\tSUM", or "\t=>\tPATH\tVERSION\tSUM" for
			// a replacement.
			f := strings.Fields(line)
			if len(f) >= 2 && (f[0] == "dep" || f[0] == "=>") && !slices.Contains(linked, f[1]) {
				linked = append(linked, f[1])
			}
		}
	}
	if len(linked) == 0 {
		t.Fatal("go version -m lists no module in the commands")
	}
	for _, m := range linked {
		if !listed[m] {
			t.Errorf("the commands link %s, which packaging/debian/copyright lacks (add a Files: %s/* paragraph with its copyright and license)", m, m)
		}
	}
}
