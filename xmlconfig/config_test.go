package xmlconfig

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		ok   bool
	}{
		{"tcp default host", Config{Port: 2001}, true},
		{"tcp ipv6", Config{Host: "::1", Port: 2001}, true},
		{"tcp ipv6 in brackets", Config{Host: "[::1]", ClientHost: "[fe80::1]", Port: 2001}, true},
		{"tcp hostname", Config{Host: "vmhost.example", Port: 2001}, true},
		{"tcp tls", Config{Port: 2001, TLS: true}, true},
		{"tcp tls dir", Config{Port: 2001, TLS: true, TLSDir: "/srv/pki", ClientTLSDir: "/home/u/pki"}, true},
		{"unix", Config{Transport: Unix, Path: "/run/vm/sc.sock"}, true},
		{"spicevmc", Config{Transport: SpiceVMC}, true},
		{"host", Config{Mode: Host}, true},
		{"host-certificates", Config{Mode: HostCertificates, Certificates: []string{"a", "b", "c"}}, true},
		{"host-certificates db", Config{Mode: HostCertificates, Certificates: []string{"a", "b", "c"}, Database: "/etc/pki/nssdb"}, true},
		{"address 0 0", Config{Port: 2001, Address: &CCIDAddress{}}, true},
		{"controller port", Config{Port: 2001, Controller: &CCIDController{USBPort: "1.2"}}, true},

		{"no port", Config{}, false},
		{"port too big", Config{Port: 65536}, false},
		{"bad host", Config{Host: "a b", Port: 1}, false},
		{"host with comma", Config{Host: "a,b", Port: 1}, false},
		{"name in brackets", Config{Host: "[vmhost.example]", Port: 1}, false},
		{"ipv4 in brackets", Config{Host: "[127.0.0.1]", Port: 1}, false},
		{"unknown mode", Config{Mode: "remote", Port: 1}, false},
		{"unknown transport", Config{Transport: "udp", Port: 1}, false},
		{"tls on unix", Config{Transport: Unix, Path: "/s", TLS: true}, false},
		{"tls on spicevmc", Config{Transport: SpiceVMC, TLS: true}, false},
		{"tls dir without tls", Config{Port: 1, TLSDir: "/x"}, false},
		{"tls dir relative", Config{Port: 1, TLS: true, TLSDir: "pki"}, false},
		{"tls dir with quote", Config{Port: 1, TLS: true, TLSDir: `/a"b`}, false},
		{"unix no path", Config{Transport: Unix}, false},
		{"unix relative", Config{Transport: Unix, Path: "sc.sock"}, false},
		{"unix too long", Config{Transport: Unix, Path: "/" + strings.Repeat("a", 107)}, false},
		{"unix with port", Config{Transport: Unix, Path: "/s", Port: 1}, false},
		{"spicevmc with host", Config{Transport: SpiceVMC, Host: "127.0.0.1"}, false},
		{"host with port", Config{Mode: Host, Port: 1}, false},
		{"host with certificates", Config{Mode: Host, Certificates: []string{"a", "b", "c"}}, false},
		{"two certificates", Config{Mode: HostCertificates, Certificates: []string{"a", "b"}}, false},
		{"empty certificate", Config{Mode: HostCertificates, Certificates: []string{"a", " ", "c"}}, false},
		{"relative db", Config{Mode: HostCertificates, Certificates: []string{"a", "b", "c"}, Database: "nssdb"}, false},
		{"passthrough with certificates", Config{Port: 1, Certificates: []string{"a", "b", "c"}}, false},
		{"slot 1", Config{Port: 1, Address: &CCIDAddress{Slot: 1}}, false},
		{"controller 1", Config{Port: 1, Address: &CCIDAddress{Controller: 1}}, false},
		{"bad usb port", Config{Port: 1, Controller: &CCIDController{USBPort: "0"}}, false},
		{"usb port letters", Config{Port: 1, Controller: &CCIDController{USBPort: "a"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tc.ok {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("Validate = %v, want an error wrapping ErrInvalidConfig", err)
				}
				if !strings.HasPrefix(err.Error(), "xmlconfig: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				// Every generator refuses an invalid Config the same way.
				if _, err := tc.c.Smartcard(); !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("Smartcard: %v", err)
				}
				if _, err := tc.c.QEMUArgs(); !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("QEMUArgs: %v", err)
				}
				if _, err := tc.c.ClientArgs(); !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("ClientArgs: %v", err)
				}
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		warn bool
	}{
		{"loopback", Config{Port: 2001}, false},
		{"localhost", Config{Host: "localhost", Port: 2001}, false},
		{"ipv6 loopback", Config{Host: "::1", Port: 2001}, false},
		{"all addresses", Config{Host: "0.0.0.0", Port: 2001}, true},
		{"all ipv6", Config{Host: "::", Port: 2001}, true},
		{"lan address", Config{Host: "192.168.1.10", Port: 2001}, true},
		{"a name", Config{Host: "vmhost.example", Port: 2001}, true},
		{"all addresses with tls", Config{Host: "0.0.0.0", Port: 2001, TLS: true}, false},
		{"unix", Config{Transport: Unix, Path: "/s"}, false},
		{"spicevmc", Config{Transport: SpiceVMC}, false},
		{"host mode", Config{Mode: Host}, false},
		{"invalid", Config{Host: "0.0.0.0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.c.Warnings()
			if tc.warn != (len(w) > 0) {
				t.Fatalf("Warnings = %q, want a warning: %v", w, tc.warn)
			}
			if tc.warn && (!strings.HasPrefix(w[0], "WARNING:") || !strings.Contains(w[0], tc.c.Host) || !strings.Contains(w[0], "TLS")) {
				t.Errorf("warning %q does not name the address and TLS loudly", w[0])
			}
		})
	}
}
