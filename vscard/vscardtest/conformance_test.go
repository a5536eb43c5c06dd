package vscardtest_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/conformance"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

var update = flag.Bool("update", false, "rewrite testdata/conformance/*.qemu from what a real QEMU answers")

// TestConformance replays every sequence in testdata/conformance against a
// real QEMU 7.2 and against the fake host, and requires both to answer
// exactly what the golden file (captured from QEMU with -update) says.
func TestConformance(t *testing.T) {
	files, err := filepath.Glob("../../testdata/conformance/*.seq")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sequences: %v", err)
	}
	for _, f := range files {
		seq, err := conformance.ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		golden := strings.TrimSuffix(f, ".seq") + ".qemu"
		t.Run(seq.Name, func(t *testing.T) {
			if !*update {
				t.Parallel()
			}
			t.Run("qemu", func(t *testing.T) {
				q := harness.StartQEMU(t, harness.QEMUOptions{})
				if *update {
					// QEMU may be slow to answer its first message: be patient.
					got, err := conformance.Run(seq, q.Addr, conformance.Options{Quiet: time.Second})
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, seq.Golden(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				check(t, seq, golden, q.Addr)
			})
			t.Run("fake", func(t *testing.T) {
				srv := vscardtest.NewServer()
				defer srv.Close()
				check(t, seq, golden, srv.Addr())
			})
		})
	}
}

func check(t *testing.T, seq *conformance.Sequence, golden, addr string) {
	t.Helper()
	src, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (capture it from QEMU with go test -run TestConformance -update)", err)
	}
	want, err := conformance.ParseGolden(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := conformance.Run(seq, addr, conformance.Options{Expect: want})
	if err != nil {
		t.Fatal(err)
	}
	if g := seq.Golden(got); !bytes.Equal(g, src) {
		t.Errorf("replies differ from %s\n--- got\n%s--- want\n%s", golden, g, src)
	}
}
