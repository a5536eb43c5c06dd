package certsrc

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestModuleFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	libs := filepath.Join(dir, "lib")
	other := filepath.Join(dir, "other")
	for _, d := range []string{conf, libs, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(conf, "MyToken.module"), "# comment\nmodule: mytoken-pkcs11.so\ncritical: no\n")
	write(filepath.Join(conf, "abs.module"), "module:   "+filepath.Join(other, "abs.so")+"  \n")
	write(filepath.Join(conf, "broken.module"), "critical: yes\n")
	write(filepath.Join(conf, "gone.module"), "module: gone.so\n")
	write(filepath.Join(libs, "mytoken-pkcs11.so"), "")
	write(filepath.Join(libs, "libplain.so"), "")
	write(filepath.Join(other, "abs.so"), "")
	write(filepath.Join(other, "libindir.so"), "")

	tests := []struct {
		u    URI
		want string
		err  error
	}{
		{URI{ModulePath: filepath.Join(other, "abs.so")}, filepath.Join(other, "abs.so"), nil},
		{URI{ModulePath: other, ModuleName: "indir"}, filepath.Join(other, "libindir.so"), nil},
		{URI{ModulePath: other, ModuleName: "ABS"}, filepath.Join(other, "abs.so"), nil},
		{URI{ModulePath: other}, "", ErrNoModule},
		{URI{ModulePath: filepath.Join(other, "missing.so")}, "", ErrNoModule},
		{URI{ModuleName: "mytoken"}, filepath.Join(libs, "mytoken-pkcs11.so"), nil},
		{URI{ModuleName: "abs"}, filepath.Join(other, "abs.so"), nil},
		{URI{ModuleName: "plain"}, filepath.Join(libs, "libplain.so"), nil},
		{URI{ModuleName: "mytoken-pkcs11"}, filepath.Join(libs, "mytoken-pkcs11.so"), nil},
		{URI{ModuleName: "broken"}, "", ErrNoModule},
		{URI{ModuleName: "gone"}, "", ErrNoModule},
		{URI{ModuleName: "nothing"}, "", ErrNoModule},
		{URI{ModuleName: "../lib/x"}, "", ErrNoModule},
		{URI{Token: "x"}, "", ErrNoModule},
	}
	for _, tt := range tests {
		got, err := tt.u.moduleFile(modulePlaces{goos: "linux", configDirs: []string{filepath.Join(dir, "absent"), conf}, libDirs: []string{libs}})
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("moduleFile(%s) = %q, %v; want %q, %v", tt.u.String(), got, err, tt.want, tt.err)
		}
	}
}

func TestPlacesFor(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		goos, goarch string
		env          map[string]string
		home         string
		want         modulePlaces
	}{
		{"linux", "amd64", nil, "/home/a", modulePlaces{goos: "linux",
			configDirs: []string{"/home/a/.config/pkcs11/modules", "/etc/pkcs11/modules", "/usr/share/p11-kit/modules"},
			libDirs:    []string{"/usr/lib/x86_64-linux-gnu/pkcs11", "/usr/lib64/pkcs11", "/usr/lib/pkcs11"}}},
		{"linux", "mips", map[string]string{"XDG_CONFIG_HOME": "/cfg"}, "/home/a", modulePlaces{goos: "linux",
			configDirs: []string{"/cfg/pkcs11/modules", "/etc/pkcs11/modules", "/usr/share/p11-kit/modules"},
			libDirs:    []string{"/usr/lib64/pkcs11", "/usr/lib/pkcs11"}}},
		{"darwin", "arm64", nil, "/Users/a", modulePlaces{goos: "darwin",
			configDirs: []string{"/Users/a/.config/pkcs11/modules", "/opt/homebrew/etc/pkcs11/modules", "/usr/local/etc/pkcs11/modules",
				"/etc/pkcs11/modules", "/opt/homebrew/share/p11-kit/modules", "/usr/local/share/p11-kit/modules"},
			libDirs: []string{"/opt/homebrew/lib/pkcs11", "/usr/local/lib/pkcs11", "/Library/OpenSC/lib", "/opt/homebrew/lib", "/usr/local/lib"}}},
		{"freebsd", "amd64", nil, "", modulePlaces{goos: "freebsd",
			configDirs: []string{"/usr/local/etc/pkcs11/modules", "/etc/pkcs11/modules", "/usr/local/share/p11-kit/modules", "/usr/share/p11-kit/modules"},
			libDirs:    []string{"/usr/local/lib/pkcs11", "/usr/lib/pkcs11"}}},
		// Windows: no p11-kit configuration (not even with a home), the
		// system directory, OpenSC's, then %PATH% (quotes removed, empty
		// entries skipped).
		{"windows", "amd64", map[string]string{"SystemRoot": `C:\Windows\`, "ProgramFiles": `C:\Program Files`,
			"PATH": `C:\bin;"C:\Program Files\Tool";;`, "XDG_CONFIG_HOME": `C:\cfg`}, `C:\Users\a`, modulePlaces{goos: "windows",
			libDirs: []string{`C:\Windows\System32`, `C:\Program Files\OpenSC Project\OpenSC\pkcs11`, `C:\bin`, `C:\Program Files\Tool`}}},
		{"windows", "arm64", nil, "", modulePlaces{goos: "windows"}},
	}
	for _, tt := range tests {
		got := placesFor(tt.goos, tt.goarch, env(tt.env), tt.home)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("placesFor(%s/%s, %v)\n got %+v\nwant %+v", tt.goos, tt.goarch, tt.env, got, tt.want)
		}
	}
}

// The file a module-name means on each system: a DLL on Windows (never a
// .so), a .dylib before a .so on macOS, never a .dylib elsewhere.
func TestModuleFileByGOOS(t *testing.T) {
	libs := t.TempDir()
	for _, f := range []string{"opensc-pkcs11.dll", "libyk.DLL", "libfoo.so", "libbar.dylib", "bar.so", "libbaz.so", "baz.dylib"} {
		if err := os.WriteFile(filepath.Join(libs, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := t.TempDir() // p11-kit configuration naming foo: only read off Windows
	if err := os.WriteFile(filepath.Join(conf, "opensc.module"), []byte("module: libfoo.so\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		goos, name, want string // want "" for ErrNoModule
	}{
		{"windows", "opensc-pkcs11", "opensc-pkcs11.dll"},
		{"windows", "OpenSC-PKCS11", "opensc-pkcs11.dll"},
		{"windows", "opensc-pkcs11.dll", "opensc-pkcs11.dll"},
		{"windows", "yk", "libyk.DLL"},
		{"windows", "foo", ""},
		{"windows", "bar", ""},
		{"windows", "opensc", ""},
		{"darwin", "bar", "libbar.dylib"},
		{"darwin", "baz", "baz.dylib"},
		{"darwin", "foo", "libfoo.so"},
		{"darwin", "opensc", "libfoo.so"},
		{"darwin", "opensc-pkcs11", ""},
		{"linux", "bar", "bar.so"},
		{"linux", "baz", "libbaz.so"},
		{"linux", "opensc", "libfoo.so"},
		{"linux", "opensc-pkcs11", ""},
		{"freebsd", "foo", "libfoo.so"},
	}
	for _, tt := range tests {
		p := modulePlaces{goos: tt.goos, libDirs: []string{libs}}
		if tt.goos != "windows" {
			p.configDirs = []string{conf}
		}
		u := URI{ModuleName: tt.name}
		got, err := u.moduleFile(p)
		want := ""
		if tt.want != "" {
			want = filepath.Join(libs, tt.want)
		}
		if got != want || (want == "") != errors.Is(err, ErrNoModule) {
			t.Errorf("%s: module-name=%s: %q, %v; want %q", tt.goos, tt.name, got, err, want)
		}
		if tt.name == "opensc" {
			continue // found through p11-kit's configuration only
		}
		// module-path naming the directory finds the same file.
		u.ModulePath = libs
		if got, err := u.moduleFile(p); got != want || (want == "") != errors.Is(err, ErrNoModule) {
			t.Errorf("%s: module-path=DIR, module-name=%s: %q, %v; want %q", tt.goos, tt.name, got, err, want)
		}
	}
}

func TestModuleFileHint(t *testing.T) {
	for goos, want := range map[string]string{"windows": ".dll", "darwin": ".dylib", "linux": ".so"} {
		_, err := (&URI{Token: "t"}).moduleFile(modulePlaces{goos: goos})
		if !errors.Is(err, ErrNoModule) || !strings.Contains(err.Error(), "module-path=") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: a URI without a module: %v; want ErrNoModule and a %s example", goos, err, want)
		}
	}
}
