package certsrc

import (
	"bufio"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// readURIs reads a testdata file of URIs: one per line, '#' comments, and a
// line starting with white space continuing the one before (URIs may be
// wrapped).
func readURIs(t testing.TB, name string) []string {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if len(out) == 0 {
				t.Fatalf("%s: continuation line first", name)
			}
			out[len(out)-1] += "\n" + line
		default:
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no URIs", name)
	}
	return out
}

func u64(v uint64) *uint64 { return &v }

func TestParseURI(t *testing.T) {
	tests := []struct {
		in   string
		want URI
	}{
		{"pkcs11:", URI{}},
		{"pkcs11:token=alice?module-path=/usr/lib/softhsm/libsofthsm2.so",
			URI{Token: "alice", ModulePath: "/usr/lib/softhsm/libsofthsm2.so"}},
		{"PkCs11:token=a", URI{Token: "a"}},
		{"pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
			URI{Token: "The Software PKCS#11 Softtoken", Manufacturer: "Snake Oil, Inc.", Model: "1.0",
				Object: "my-certificate", Type: TypeCert, ID: []byte{0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91},
				PINSource: "file:/etc/token_pin"}},
		{"pkcs11:id=%01%02%03%Ba%dd%Ca%fe", URI{ID: []byte{1, 2, 3, 0xba, 0xdd, 0xca, 0xfe}}},
		{"pkcs11:slot-id=535573151;slot-description=Sun%20Metaslot;slot-manufacturer=X",
			URI{SlotID: u64(535573151), SlotDescription: "Sun Metaslot", SlotManufacturer: "X"}},
		{"pkcs11:slot-id=18446744073709551615", URI{SlotID: u64(1<<64 - 1)}},
		{"pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23",
			URI{LibraryManufacturer: "Snake Oil, Inc.", LibraryDescription: "Soft Token Library", LibraryVersion: &Version{1, 23}}},
		{"pkcs11:library-version=3", URI{LibraryVersion: &Version{3, 0}}},
		{"pkcs11:token=\n  alice;\n  object=x ?\tmodule-name=softhsm2", URI{Token: "alice", Object: "x", ModuleName: "softhsm2"}},
		{"pkcs11:token=a;pinfile=/run/pin", URI{Token: "a", PINSource: "/run/pin"}},
		{"pkcs11:token=a;pin-source=/run/pin", URI{Token: "a", PINSource: "/run/pin"}},
		{"pkcs11:token=my-token;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b&x-q=%26",
			URI{Token: "my-token", PINSource: "file:/etc/token_pin",
				PathVendor:  []Attribute{{"vendor-aaa", "value-a"}},
				QueryVendor: []Attribute{{"vendor-bbb", "value-b"}, {"x-q", "&"}}}},
		// module-path in the path is not the query attribute: a vendor one.
		{"pkcs11:module-path=/x", URI{PathVendor: []Attribute{{"module-path", "/x"}}}},
		// Empty values are absent attributes.
		{"pkcs11:serial=;id=;type=;slot-id=", URI{}},
		// '?' is allowed unescaped inside the query.
		{"pkcs11:?pin-source=|/usr/bin/getpin?x", URI{PINSource: "|/usr/bin/getpin?x"}},
	}
	for _, tt := range tests {
		got, err := ParseURI(tt.in)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("ParseURI(%q) =\n %+v, want\n %+v", tt.in, *got, tt.want)
		}
	}
}

func TestParseURIErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", ErrBadURI},
		{"pkcs11", ErrBadURI},
		{"pkcs12:token=x", ErrBadURI},
		{"pkcs11:token", ErrBadURI},
		{"pkcs11:=v", ErrBadURI},
		{"pkcs11:token=a;;object=b", ErrBadURI},
		{"pkcs11:token=a;", ErrBadURI},
		{"pkcs11:token=a;token=b", ErrBadURI},
		{"pkcs11:token=%zz", ErrBadURI},
		{"pkcs11:token=%4", ErrBadURI},
		{"pkcs11:token=%", ErrBadURI},
		{"pkcs11:token=a\x01b", ErrBadURI},
		{"pkcs11:type=secret", ErrBadURI},
		{"pkcs11:slot-id=12a", ErrBadURI},
		{"pkcs11:slot-id=-1", ErrBadURI},
		{"pkcs11:slot-id=99999999999999999999999", ErrBadURI},
		{"pkcs11:library-version=1.", ErrBadURI},
		{"pkcs11:library-version=.1", ErrBadURI},
		{"pkcs11:library-version=256", ErrBadURI},
		{"pkcs11:na%6De=value", ErrBadURI},
		{"pkcs11:token=a?module-path=/x&module-path=/y", ErrBadURI},
		{"pkcs11:token=a?pin-source=/a&pinfile=/b", ErrBadURI},
		{"pkcs11:token=a?&", ErrBadURI},
		{"pkcs11:" + strings.Repeat("x", maxURILen), ErrBadURI},
		{"pkcs11:token=a?pin-value=123456", ErrPINValue},
		{"pkcs11:pin-value=123456;token=a", ErrPINValue},
		{"pkcs11:token=a?module-path=/x&pin-value=12%zz56", ErrPINValue},
	}
	for _, tt := range tests {
		u, err := ParseURI(tt.in)
		if !errors.Is(err, tt.want) {
			t.Errorf("ParseURI(%.60q) = %v, %v; want an error wrapping %v", tt.in, u, err, tt.want)
			continue
		}
		if tt.want == ErrPINValue && errors.Is(err, ErrBadURI) {
			t.Errorf("ParseURI(%q): a pin-value error should not also be ErrBadURI: %v", tt.in, err)
		}
		if strings.Contains(err.Error(), "123456") || strings.Contains(err.Error(), "12%zz56") {
			t.Errorf("ParseURI(%q): the error repeats the PIN: %v", tt.in, err)
		}
		if !strings.HasPrefix(err.Error(), "certsrc: ") {
			t.Errorf("ParseURI(%q): error %q does not start with the package name", tt.in, err)
		}
	}
}

func TestURIString(t *testing.T) {
	tests := []struct {
		u    URI
		want string
	}{
		{URI{}, "pkcs11:"},
		{URI{Token: "alice", ModulePath: "/usr/lib/softhsm/libsofthsm2.so"},
			"pkcs11:token=alice?module-path=/usr/lib/softhsm/libsofthsm2.so"},
		{URI{Token: "a b;c", Serial: "01", Model: "M", Manufacturer: "Snake Oil, Inc.", ID: []byte("AZ"), Object: "key 1", Type: TypePrivate},
			"pkcs11:model=M;manufacturer=Snake%20Oil%2C%20Inc.;serial=01;token=a%20b%3Bc;id=%41%5A;object=key%201;type=private"},
		{URI{SlotID: u64(7), LibraryVersion: &Version{2, 40}, PINSource: "file:/run/pin", ModuleName: "softhsm2"},
			"pkcs11:library-version=2.40;slot-id=7?pin-source=file:/run/pin&module-name=softhsm2"},
		{URI{QueryVendor: []Attribute{{"x-a", "1&2"}}}, "pkcs11:?x-a=1%262"},
	}
	for _, tt := range tests {
		if got := tt.u.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// checkRoundTrip checks that a parsed URI formats to a string that parses
// back to the same URI, and that formatting is stable.
func checkRoundTrip(t *testing.T, in string, u *URI) {
	t.Helper()
	s := u.String()
	u2, err := ParseURI(s)
	if err != nil {
		t.Fatalf("ParseURI(%q) ok, but its String() %q does not parse: %v", in, s, err)
	}
	if !reflect.DeepEqual(u, u2) {
		t.Fatalf("round trip of %q through %q:\n %+v\n %+v", in, s, *u, *u2)
	}
	if s2 := u2.String(); s2 != s {
		t.Fatalf("String() not stable: %q then %q", s, s2)
	}
}

func TestURITestdata(t *testing.T) {
	for _, in := range readURIs(t, "uri-valid.txt") {
		u, err := ParseURI(in)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", in, err)
			continue
		}
		checkRoundTrip(t, in, u)
	}
	for _, in := range readURIs(t, "uri-invalid.txt") {
		if u, err := ParseURI(in); err == nil {
			t.Errorf("ParseURI(%q) = %+v, want an error", in, *u)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	for _, name := range []string{"uri-valid.txt", "uri-invalid.txt"} {
		for _, s := range readURIs(f, name) {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		u, err := ParseURI(in)
		if err != nil {
			if u != nil {
				t.Fatalf("ParseURI(%q) returned a URI with error %v", in, err)
			}
			if !errors.Is(err, ErrBadURI) && !errors.Is(err, ErrPINValue) {
				t.Fatalf("ParseURI(%q): error %v wraps neither ErrBadURI nor ErrPINValue", in, err)
			}
			// The error about a pin-value is the constant: it cannot
			// carry the value. (Errors about other attributes come before
			// the pin-value is looked at, and never quote it.)
			if errors.Is(err, ErrPINValue) && err != ErrPINValue {
				t.Fatalf("ParseURI(%q): pin-value error %q is not the bare sentinel", in, err)
			}
			return
		}
		// checkRoundTrip re-parses String(), which would refuse a
		// pin-value attribute.
		checkRoundTrip(t, in, u)
	})
}
