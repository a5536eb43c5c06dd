package xmlconfig_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/vscardkit/vscardkit/xmlconfig"
)

// The client's TLS directory is a path on the client's machine, which may
// be a Windows desk: its absolute paths are accepted whatever OS runs this
// code, and the files are joined with the separator the directory uses.
func TestClientTLSDirOtherOS(t *testing.T) {
	tests := []struct {
		dir  string
		want string // the --tls-ca argument; "" means refused
	}{
		{"/home/alice/vscardkit", "/home/alice/vscardkit/ca-cert.pem"},
		{`C:\Users\alice\vscardkit`, `C:\Users\alice\vscardkit\ca-cert.pem`},
		{`C:\Users\alice\vscardkit\`, `C:\Users\alice\vscardkit\ca-cert.pem`},
		{`d:\certs`, `d:\certs\ca-cert.pem`},
		{"C:/Users/alice/vscardkit", "C:/Users/alice/vscardkit/ca-cert.pem"},
		{`\\fileserver\home\alice`, `\\fileserver\home\alice\ca-cert.pem`},
		{`vscardkit\certs`, ""},
		{`C:certs`, ""},
		{"certs", ""},
		{`\\`, ""},
		{"/a\nb", ""},
	}
	for _, tc := range tests {
		c := xmlconfig.Config{Port: 2001, TLS: true, ClientHost: "vmhost", ClientTLSDir: tc.dir}
		args, err := c.ClientArgs()
		if tc.want == "" {
			if !errors.Is(err, xmlconfig.ErrInvalidConfig) {
				t.Errorf("ClientTLSDir %q: %q, %v; want ErrInvalidConfig", tc.dir, args, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ClientTLSDir %q: %v", tc.dir, err)
			continue
		}
		i := slices.Index(args, "--tls-ca")
		if i < 0 || i+1 >= len(args) || args[i+1] != tc.want {
			t.Errorf("ClientTLSDir %q: args %q, want --tls-ca %s", tc.dir, args, tc.want)
		}
	}
}
