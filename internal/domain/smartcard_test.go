package domain

import (
	"errors"
	"slices"
	"testing"

	"libvirt.org/go/libvirtxml"
)

func parseDomain(t *testing.T, devices string) *libvirtxml.Domain {
	t.Helper()
	var d libvirtxml.Domain
	if err := d.Unmarshal("<domain type='qemu'><name>d</name><devices>" + devices + "</devices></domain>"); err != nil {
		t.Fatal(err)
	}
	return &d
}

// TestSmartcardTarget: where the client connects, for local and remote
// URIs, and the typed errors for what it cannot connect to.
func TestSmartcardTarget(t *testing.T) {
	local, _ := parseURI("qemu:///system")
	remote, _ := parseURI("qemu+ssh://vmhost/system")
	tcp := func(host, tls string) string {
		return `<smartcard mode='passthrough' type='tcp'><source mode='bind' host='` + host + `' service='2001' tls='` + tls + `'/><protocol type='raw'/></smartcard>`
	}
	for _, tc := range []struct {
		name    string
		devices string
		u       *connURI
		want    Target
		err     error
		modes   []string
	}{
		{"tcp loopback", tcp("127.0.0.1", "no"), local, Target{Network: "tcp", Address: "127.0.0.1:2001", Listen: "127.0.0.1"}, nil, nil},
		{"tls", tcp("127.0.0.1", "yes"), local, Target{Network: "tcp", Address: "127.0.0.1:2001", TLS: true, Listen: "127.0.0.1"}, nil, nil},
		{"any address, local", tcp("0.0.0.0", "yes"), local, Target{Network: "tcp", Address: "127.0.0.1:2001", TLS: true, Listen: "0.0.0.0"}, nil, nil},
		{"any v6 address, local", tcp("::", "no"), local, Target{Network: "tcp", Address: "[::1]:2001", Listen: "::"}, nil, nil},
		{"any address, remote", tcp("0.0.0.0", "yes"), remote, Target{Network: "tcp", Address: "vmhost:2001", TLS: true, Listen: "0.0.0.0"}, nil, nil},
		{"a host address, remote", tcp("192.0.2.7", "yes"), remote, Target{Network: "tcp", Address: "192.0.2.7:2001", TLS: true, Listen: "192.0.2.7"}, nil, nil},
		{"loopback, remote", tcp("127.0.0.1", "no"), remote, Target{}, ErrLocalOnly, []string{"passthrough"}},
		{"unix", `<smartcard mode='passthrough' type='unix'><source mode='bind' path='/run/sc.sock'/></smartcard>`, local, Target{Network: "unix", Address: "/run/sc.sock"}, nil, nil},
		{"unix, remote", `<smartcard mode='passthrough' type='unix'><source mode='bind' path='/run/sc.sock'/></smartcard>`, remote, Target{}, ErrLocalOnly, []string{"passthrough"}},
		{"none", ``, local, Target{}, ErrNoPassthrough, nil},
		{"host", `<smartcard mode='host'/>`, local, Target{}, ErrNoPassthrough, []string{"host"}},
		{"host-certificates", `<smartcard mode='host-certificates'><certificate>a</certificate><certificate>b</certificate><certificate>c</certificate></smartcard>`, local, Target{}, ErrNoPassthrough, []string{"host-certificates"}},
		{"spicevmc", `<smartcard mode='passthrough' type='spicevmc'/>`, local, Target{}, ErrSpiceVMC, []string{"passthrough"}},
		{"pty", `<smartcard mode='passthrough' type='pty'/>`, local, Target{}, ErrUnsupportedChardev, []string{"passthrough"}},
		{"QEMU connects", `<smartcard mode='passthrough' type='tcp'><source mode='connect' host='127.0.0.1' service='2001'/></smartcard>`, local, Target{}, ErrUnsupportedChardev, []string{"passthrough"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := smartcardTarget(parseDomain(t, tc.devices), tc.u)
			if got != tc.want {
				t.Errorf("target = %+v, want %+v", got, tc.want)
			}
			if tc.err == nil {
				if err != nil {
					t.Errorf("error %v", err)
				}
				return
			}
			var se *SmartcardError
			if !errors.Is(err, tc.err) || !errors.As(err, &se) {
				t.Fatalf("error %v, want a *SmartcardError with %v", err, tc.err)
			}
			if se.Domain != "d" || !slices.Equal(se.Modes, tc.modes) {
				t.Errorf("error %+v: want domain d, modes %q", se, tc.modes)
			}
			t.Logf("%v", err)
		})
	}
}

func TestTargetString(t *testing.T) {
	for tg, want := range map[Target]string{
		{}:                               "",
		{Network: "tcp", Address: "h:1"}: "tcp://h:1",
		{Network: "tcp", Address: "h:1", TLS: true}: "tls://h:1",
		{Network: "unix", Address: "/run/x.sock"}:   "unix:/run/x.sock",
	} {
		if got := tg.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", tg, got, want)
		}
	}
}

func TestEndpoints(t *testing.T) {
	d := parseDomain(t, `<smartcard mode='passthrough' type='tcp'><source mode='bind' host='127.0.0.1' service='2001'/><protocol type='raw'/></smartcard>
<serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/><protocol type='telnet'/></serial>
<serial type='tcp'><source mode='connect' host='10.0.0.1' service='4556'/></serial>
<channel type='unix'><source mode='bind' path='/run/ch.sock'/><target type='virtio' name='x'/></channel>
<graphics type='vnc' port='5901' autoport='no' listen='127.0.0.1'/>
<graphics type='spice' autoport='yes'/>`)
	got := endpoints(d, true)
	want := []Endpoint{
		{Domain: "d", Device: "smartcard", Network: "tcp", Host: "127.0.0.1", Port: 2001, Live: true},
		{Domain: "d", Device: "serial", Network: "tcp", Host: "0.0.0.0", Port: 4555, Live: true},
		{Domain: "d", Device: "channel", Network: "unix", Path: "/run/ch.sock", Live: true},
		{Domain: "d", Device: "graphics", Network: "tcp", Host: "127.0.0.1", Port: 5901, Live: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("endpoints =\n%+v\nwant\n%+v", got, want)
	}
}
