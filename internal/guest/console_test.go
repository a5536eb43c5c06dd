package guest

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseMarker(t *testing.T) {
	tests := []struct {
		line string
		want Marker
	}{
		{"VSCARD-RESULT apdu.0=9000\r\n", Marker{Kind: KindResult, Name: "apdu.0", Value: "9000"}},
		{"VSCARD-RESULT reader.0=Gemalto USB Reader 00 00", Marker{Kind: KindResult, Name: "reader.0", Value: "Gemalto USB Reader 00 00"}},
		{"VSCARD-RESULT empty=", Marker{Kind: KindResult, Name: "empty", Value: ""}},
		{"VSCARD-EVENT card state=present atr=3b80800101", Marker{Kind: KindEvent, Name: "card", Fields: map[string]string{"state": "present", "atr": "3b80800101"}}},
		{"VSCARD-BEGIN apdu", Marker{Kind: KindBegin, Name: "apdu", Fields: map[string]string{}}},
		{"VSCARD-END apdu rc=3", Marker{Kind: KindEnd, Name: "apdu", Fields: map[string]string{"rc": "3"}}},
		{"VSCARD-ERROR no reader after 10s", Marker{Kind: KindError, Value: "no reader after 10s"}},
		// A kernel message may precede the marker on the same line.
		{"[    3.1] usb 1-1: newVSCARD-EVENT reader uptime_ms=10", Marker{Kind: KindEvent, Name: "reader", Fields: map[string]string{"uptime_ms": "10"}}},
	}
	for _, tt := range tests {
		got, err := parseMarker(tt.line)
		if err != nil {
			t.Errorf("parseMarker(%q): %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseMarker(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
	for _, line := range []string{"", "[ 1.0] reboot: Power down", "VSCARD-BOGUS x", "VSCARD-"} {
		if _, err := parseMarker(line); !errors.Is(err, errNotMarker) {
			t.Errorf("parseMarker(%q) err = %v, want errNotMarker", line, err)
		}
	}
	for _, line := range []string{"VSCARD-RESULT novalue", "VSCARD-RESULT =x", "VSCARD-END", "VSCARD-EVENT  "} {
		if _, err := parseMarker(line); err == nil || errors.Is(err, errNotMarker) {
			t.Errorf("parseMarker(%q) err = %v, want a malformed-marker error", line, err)
		}
	}
}

func TestMarkerInt(t *testing.T) {
	m, err := parseMarker("VSCARD-END x rc=12 bad=z")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Int("rc"); err != nil || n != 12 {
		t.Errorf("Int(rc) = %d, %v", n, err)
	}
	if _, err := m.Int("bad"); err == nil {
		t.Error("Int(bad) succeeded")
	}
	if _, err := m.Int("missing"); err == nil {
		t.Error("Int(missing) succeeded")
	}
}

func FuzzParseMarker(f *testing.F) {
	for _, s := range []string{"VSCARD-RESULT a=b", "VSCARD-EVENT card state=x", "VSCARD-END s rc=1", "xxVSCARD-ERROR e", "VSCARD-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseMarker(line)
		if err != nil {
			return
		}
		switch m.Kind {
		case KindResult, KindEvent, KindBegin, KindEnd:
			if m.Name == "" {
				t.Fatalf("%q parsed to a %s marker without a name", line, m.Kind)
			}
		case KindError, KindLog:
		default:
			t.Fatalf("%q parsed to kind %q", line, m.Kind)
		}
	})
}
