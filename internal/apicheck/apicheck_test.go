package apicheck_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/apicheck"
	"github.com/vscardkit/vscardkit/internal/harness"
)

const module = "github.com/vscardkit/vscardkit"

// The checker finds every kind of leak in testdata/leaky, and nothing in
// its clean identifiers.
func TestCheckFindsLeaks(t *testing.T) {
	got, err := apicheck.Check(apicheck.Options{}, module+"/internal/apicheck/testdata/leaky")
	if err != nil {
		t.Fatal(err)
	}
	const secret = module + "/internal/apicheck/testdata/leaky/internal/secret."
	want := []string{
		"leaky.(*LeakMethod).Slot: result 1 names " + secret + "Slot",
		"leaky.LeakAlias: aliased type names " + secret + "T",
		"leaky.LeakConst: type names " + secret + "Slot",
		"leaky.LeakUnexportedAlias: result 1 names " + secret + "Slot",
		"leaky.LeakCycle: result 1 (unexported node).V: field type names " + secret + "T",
		"leaky.LeakEmbed.Get: parameter 1 names " + secret + "Slot", // promoted from secret.Store
		"leaky.LeakEmbed.Get: result 1 names " + secret + "T",
		"leaky.LeakEmbed.Store: embedded field type names " + secret + "Store",
		"leaky.LeakFuncParam: parameter 1: parameter 1 names " + secret + "T",
		"leaky.LeakGeneric: type parameter 1 constraint names " + secret + "Number",
		"leaky.LeakInterface.Get: result 1 names " + secret + "Slot",
		"leaky.LeakParam: parameter 1 names " + secret + "Slot",
		"leaky.LeakPromoted.Promoted: result 1 names " + secret + "T",
		"leaky.LeakPromoted: embedded helper (unexported helper).Promoted: result 1 names " + secret + "T",
		"leaky.LeakResult: result 2 names " + secret + "T",
		"leaky.LeakStruct.Field: field type names " + secret + "T",
		"leaky.LeakUnexportedResult: result 1 (unexported helper).Promoted: result 1 names " + secret + "T",
		"leaky.LeakVar: type names " + secret + "Slot",
	}
	var gotS []string
	for _, f := range got {
		gotS = append(gotS, f.String())
		if strings.Contains(f.Where, "Clean") {
			t.Errorf("a clean identifier reported: %v", f)
		}
	}
	slices.Sort(want) // Check sorts its findings
	if !slices.Equal(gotS, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(gotS, "\n"), strings.Join(want, "\n"))
	}
}

func TestHidden(t *testing.T) {
	for _, tc := range []struct {
		from, path string
		want       bool
	}{
		{module + "/certsrc", module + "/internal/piv", true},
		{module + "/certsrc", module + "/xmlconfig", false},
		{module + "/certsrc", "crypto/x509", false},
		{module + "/vscard", "internal/poll", true},
		{module + "/vscard", module + "/vscard/internal/x", true},
		{module + "/vscard/sub", module + "/internalish", false},
		// An internal package may name what its own importers can import.
		{module + "/internal/bridge", module + "/internal/piv", false},
		{module + "/internal/a/internal/b", module + "/internal/c", false},
		{module + "/internal/a", module + "/internal/a/internal/b", true},
		{module + "/internal/apicheck/testdata/leaky", module + "/internal/apicheck/testdata/leaky/internal/secret", true},
		{"golang.org/x/internal/a", module + "/internal/piv", true},
	} {
		if got := apicheck.Hidden(tc.from, tc.path); got != tc.want {
			t.Errorf("Hidden(%q, %q) = %v", tc.from, tc.path, got)
		}
	}
}

// The public packages' exported API names no type their users cannot
// import: every parameter, result, field, method, variable and constant of
// vscard, vscard/vscardtest, reader, certsrc and xmlconfig uses public
// types only (a user can write down and implement what the API asks for).
// The API differs between builds (reader's Card has one definition per
// OS and cgo setting), so each build make dist ships is checked, and the
// builds without cgo.
func TestPublicAPI(t *testing.T) {
	builds := []struct {
		name string
		env  []string
		cgo  bool
	}{
		{"host", nil, true},
		{"linux/amd64 CGO_ENABLED=0", []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0"}, false},
		{"windows/amd64 mingw-w64", []string{"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=1", "CC=" + harness.MinGWCC}, true},
		{"windows/amd64 CGO_ENABLED=0", []string{"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0"}, false},
		{"darwin/arm64 CGO_ENABLED=0", []string{"GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0"}, false},
	}
	for _, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			if slices.Contains(b.env, "CC="+harness.MinGWCC) {
				harness.LookPath(t, harness.MinGWPeer, harness.MinGWCC)
			}
			opts := apicheck.Options{Env: b.env}
			var pkgs []string
			for _, p := range []string{"vscard", "vscard/vscardtest", "reader", "xmlconfig"} {
				pkgs = append(pkgs, module+"/"+p)
			}
			got, err := apicheck.Check(opts, pkgs...)
			if err != nil {
				t.Fatal(err)
			}
			certsrc, err := apicheck.Check(opts, module+"/certsrc")
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range append(got, certsrc...) {
				t.Errorf("exported API names an internal type: %v", f)
			}
		})
	}
}
