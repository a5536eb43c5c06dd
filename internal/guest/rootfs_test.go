package guest

import (
	"reflect"
	"testing"
)

func TestParseLDD(t *testing.T) {
	out := `	linux-vdso.so.1 (0x00007ffd)
	libpcsclite.so.1 => /lib/x86_64-linux-gnu/libpcsclite.so.1 (0x00007f6b)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f6b)
	/lib64/ld-linux-x86-64.so.2 (0x00007f6b)
`
	got, err := parseLDD("pcsc_scan", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libpcsclite.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseLDD = %q, want %q", got, want)
	}
	if _, err := parseLDD("x", []byte("\tlibfoo.so.1 => not found\n")); err == nil {
		t.Error("a missing library was not an error")
	}
}
