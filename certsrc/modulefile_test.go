package certsrc

import (
	"errors"
	"os"
	"path/filepath"
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
		got, err := tt.u.moduleFile([]string{filepath.Join(dir, "absent"), conf}, []string{libs})
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("moduleFile(%s) = %q, %v; want %q, %v", tt.u.String(), got, err, tt.want, tt.err)
		}
	}
}
