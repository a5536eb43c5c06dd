package xmlconfig

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"
)

// modeCases are one Config per mode and option xmlconfig generates; the
// libvirt tests run each of them through libvirt too.
var modeCases = []struct {
	name string
	c    Config
}{
	{"tcp", Config{Port: 2001}},
	{"tcp-tls", Config{Port: 2002, TLS: true}},
	{"tcp-ipv6", Config{Host: "::1", Port: 2003}},
	{"tcp-address-controller", Config{Port: 2004, Address: &CCIDAddress{}, Controller: &CCIDController{USBPort: "2"}}},
	{"tcp-controller-noport", Config{Port: 2005, Controller: &CCIDController{}}},
	{"unix", Config{Transport: Unix, Path: "/run/vscardkit/smartcard.sock"}},
	{"spicevmc", Config{Transport: SpiceVMC}},
	{"host", Config{Mode: Host}},
	{"host-certificates", Config{Mode: HostCertificates, Certificates: []string{"cert1", "cert2", "cert3"}}},
	{"host-certificates-db", Config{Mode: HostCertificates, Certificates: []string{"id", "sign", "enc"}, Database: "/var/lib/vscardkit/nssdb"}},
}

func TestSmartcardRoundTrip(t *testing.T) {
	for _, tc := range modeCases {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := tc.c.Smartcard()
			if err != nil {
				t.Fatal(err)
			}
			s, err := sc.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var back libvirtxml.DomainSmartcard
			if err := back.Unmarshal(s); err != nil {
				t.Fatal(err)
			}
			got, err := FromSmartcard(&back)
			if err != nil {
				t.Fatalf("FromSmartcard(%s): %v", s, err)
			}
			want, _ := tc.c.normalized()
			// What the XML does not carry: the TLS directories
			// (qemu.conf's business) and the explicit controller (a
			// separate device).
			want.TLSDir, want.ClientTLSDir, want.Controller = "", "", nil
			got, _ = got.normalized()
			got.TLSDir, got.ClientTLSDir = "", ""
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip through\n%s\ngave %+v, want %+v", s, got, want)
			}
		})
	}
}

func TestSmartcardXML(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Port: 2001}, `<smartcard mode="passthrough" type="tcp">
  <source mode="bind" host="127.0.0.1" service="2001" tls="no"/>
  <protocol type="raw"/>
</smartcard>
`},
		{Config{Host: "0.0.0.0", Port: 2001, TLS: true, Address: &CCIDAddress{}, Controller: &CCIDController{USBPort: "3"}}, `<controller type="ccid" index="0">
  <address type="usb" bus="0" port="3"/>
</controller>
<smartcard mode="passthrough" type="tcp">
  <source mode="bind" host="0.0.0.0" service="2001" tls="yes"/>
  <protocol type="raw"/>
  <address type="ccid" controller="0" slot="0"/>
</smartcard>
`},
		{Config{Transport: Unix, Path: "/run/sc.sock"}, `<smartcard mode="passthrough" type="unix">
  <source mode="bind" path="/run/sc.sock"/>
</smartcard>
`},
		{Config{Transport: SpiceVMC}, `<smartcard mode="passthrough" type="spicevmc"/>
`},
		{Config{Mode: Host}, `<smartcard mode="host"/>
`},
		{Config{Mode: HostCertificates, Certificates: []string{"a", "b&c", "d"}, Database: "/db"}, `<smartcard mode="host-certificates">
  <certificate>a</certificate>
  <certificate>b&amp;c</certificate>
  <certificate>d</certificate>
  <database>/db</database>
</smartcard>
`},
	} {
		got, err := tc.c.DevicesXML()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("DevicesXML(%+v) =\n%s\nwant\n%s", tc.c, got, tc.want)
		}
	}
}

func TestFromSmartcardRefuses(t *testing.T) {
	for _, s := range []string{
		`<smartcard mode='passthrough' type='tcp'><source mode='connect' host='h' service='1'/></smartcard>`,
		`<smartcard mode='passthrough' type='tcp'><source mode='bind' host='h' service='1'/><protocol type='telnet'/></smartcard>`,
		`<smartcard mode='passthrough' type='tcp'><source mode='bind' host='h' service='x'/></smartcard>`,
		`<smartcard mode='passthrough' type='unix'><source mode='connect' path='/s'/></smartcard>`,
		`<smartcard mode='passthrough' type='pty'/>`,
		`<smartcard mode='host-certificates'><certificate>a</certificate></smartcard>`,
		`<smartcard mode='host'><address type='ccid' controller='0' slot='1'/></smartcard>`,
	} {
		var sc libvirtxml.DomainSmartcard
		if err := sc.Unmarshal(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if _, err := FromSmartcard(&sc); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("FromSmartcard(%s) = %v, want ErrInvalidConfig", s, err)
		}
	}
}

func TestQEMUArgs(t *testing.T) {
	ccid := "-device usb-ccid id=ccid0"
	passthru := "-device ccid-card-passthru bus=ccid0.0 chardev=charsmartcard0 id=smartcard0"
	for _, tc := range []struct {
		name string
		c    Config
		want []string
	}{
		{"tcp", Config{Port: 2001}, []string{ccid,
			"-chardev socket host=127.0.0.1 id=charsmartcard0 nodelay=on port=2001 server=on wait=off", passthru}},
		{"tcp tls", Config{Host: "192.0.2.1", Port: 2001, TLS: true, TLSDir: "/srv/pki,x"}, []string{ccid,
			"-object tls-creds-x509 dir=/srv/pki,x endpoint=server id=objcharsmartcard0_tls0 priority=NORMAL:-VERS-TLS1.0:-VERS-TLS1.1 verify-peer=on",
			"-chardev socket host=192.0.2.1 id=charsmartcard0 nodelay=on port=2001 server=on tls-creds=objcharsmartcard0_tls0 wait=off",
			passthru}},
		{"controller port", Config{Port: 1, Controller: &CCIDController{USBPort: "1.2"}}, []string{
			"-device usb-ccid bus=usb.0 id=ccid0 port=1.2",
			"-chardev socket host=127.0.0.1 id=charsmartcard0 nodelay=on port=1 server=on wait=off", passthru}},
		{"libvirt chardev", Config{Port: 2001, LibvirtChardev: true, Controller: &CCIDController{USBPort: "1"}}, []string{
			"-device usb-ccid bus=usb.0 id=ccid0 port=1",
			"-chardev socket host=127.0.0.1 id=charsmartcard0 port=2001 server=on wait=off", passthru}},
		{"libvirt chardev tls", Config{Port: 2001, TLS: true, TLSDir: "/srv/pki", LibvirtChardev: true}, []string{ccid,
			"-object tls-creds-x509 dir=/srv/pki endpoint=server id=objcharsmartcard0_tls0 verify-peer=on",
			"-chardev socket host=127.0.0.1 id=charsmartcard0 port=2001 server=on tls-creds=objcharsmartcard0_tls0 wait=off",
			passthru}},
		{"libvirt chardev unix", Config{Transport: Unix, Path: "/run/sc.sock", LibvirtChardev: true}, []string{ccid,
			"-chardev socket id=charsmartcard0 path=/run/sc.sock server=on wait=off", passthru}},
		{"unix", Config{Transport: Unix, Path: "/run/a,b.sock"}, []string{ccid,
			"-chardev socket id=charsmartcard0 path=/run/a,b.sock server=on wait=off", passthru}},
		{"spicevmc", Config{Transport: SpiceVMC}, []string{ccid,
			"-chardev spicevmc id=charsmartcard0 name=smartcard", passthru}},
		{"host", Config{Mode: Host}, []string{ccid,
			"-device ccid-card-emulated backend=nss-emulated bus=ccid0.0 id=smartcard0"}},
		{"host-certificates", Config{Mode: HostCertificates, Certificates: []string{"a", "b", "c"}}, []string{ccid,
			"-device ccid-card-emulated backend=certificates bus=ccid0.0 cert1=a cert2=b cert3=c db=/etc/pki/nssdb id=smartcard0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, err := tc.c.QEMUArgs()
			if err != nil {
				t.Fatal(err)
			}
			if len(args) != 2*len(tc.want) {
				t.Fatalf("QEMUArgs = %q, want %d options", args, len(tc.want))
			}
			for i, w := range tc.want {
				o, err := parseQEMUOpt(args[2*i], args[2*i+1])
				if err != nil {
					t.Fatal(err)
				}
				if o.String() != w {
					t.Errorf("option %d = %s\n                 want %s", i, o, w)
				}
			}
		})
	}
}

func TestQEMUArgsEscapesCommas(t *testing.T) {
	args, err := Config{Transport: Unix, Path: "/run/a,b.sock"}.QEMUArgs()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(args, " "), "path=/run/a,,b.sock,") {
		t.Errorf("a comma in a path is not doubled: %q", args)
	}
}

func TestQEMUConf(t *testing.T) {
	s, err := Config{Port: 1}.QEMUConf()
	if err != nil || s != "" {
		t.Errorf("QEMUConf without TLS = %q, %v; want nothing", s, err)
	}
	s, err = Config{Port: 1, TLS: true, TLSDir: "/srv/pki"}.QEMUConf()
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if !ok {
			t.Fatalf("qemu.conf line %q is not key = value", line)
		}
		settings[k] = v
	}
	want := map[string]string{"chardev_tls_x509_cert_dir": `"/srv/pki"`, "chardev_tls_x509_verify": "1"}
	if !reflect.DeepEqual(settings, want) {
		t.Errorf("qemu.conf settings %v, want %v", settings, want)
	}
	if !strings.Contains(s, "#chardev_tls = 1") {
		t.Errorf("qemu.conf text does not mention chardev_tls:\n%s", s)
	}
}

func TestClientArgs(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
		err  error
	}{
		{Config{Port: 2001}, "--connect tcp://127.0.0.1:2001", nil},
		{Config{Host: "::1", Port: 2001}, "--connect tcp://[::1]:2001", nil},
		{Config{Host: "0.0.0.0", Port: 2001, ClientHost: "vmhost.example"}, "--connect tcp://vmhost.example:2001", nil},
		{Config{Host: "0.0.0.0", Port: 2001}, "", ErrNoClientHost},
		{Config{Host: "::", Port: 2001}, "", ErrNoClientHost},
		{Config{Transport: Unix, Path: "/run/sc.sock"}, "--connect unix:/run/sc.sock", nil},
		{Config{Port: 2001, TLS: true}, "--connect tls://127.0.0.1:2001 --tls-ca /etc/pki/libvirt-chardev/ca-cert.pem " +
			"--tls-cert /etc/pki/libvirt-chardev/client-cert.pem --tls-key /etc/pki/libvirt-chardev/client-key.pem", nil},
		{Config{Port: 2001, TLS: true, TLSDir: "/srv/pki", ClientTLSDir: "/home/u/pki", ClientHost: "vm.example"},
			"--connect tls://vm.example:2001 --tls-ca /home/u/pki/ca-cert.pem --tls-cert /home/u/pki/client-cert.pem --tls-key /home/u/pki/client-key.pem", nil},
		{Config{Transport: SpiceVMC}, "", ErrNoClient},
		{Config{Mode: Host}, "", ErrNoClient},
	} {
		args, err := tc.c.ClientArgs()
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ClientArgs(%+v) = %q, %v; want %v", tc.c, args, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(args, " ") != tc.want {
			t.Errorf("ClientArgs(%+v) = %q, %v; want %s", tc.c, args, err, tc.want)
		}
	}
}

func TestNewDomain(t *testing.T) {
	for _, tc := range modeCases {
		d, err := NewDomain("vm", tc.c)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d.Type != "qemu" || len(d.Devices.Smartcards) != 1 {
			t.Errorf("%s: domain type %q with %d smartcards", tc.name, d.Type, len(d.Devices.Smartcards))
		}
		spice := len(d.Devices.Graphics) == 1 && d.Devices.Graphics[0].Spice != nil
		if spice != (tc.c.Transport == SpiceVMC) {
			t.Errorf("%s: SPICE graphics %v", tc.name, spice)
		}
	}
	if _, err := NewDomain("", Config{Port: 1}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewDomain without a name: %v", err)
	}
}
