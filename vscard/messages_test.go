package vscard

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVersion(t *testing.T) {
	if CurrentVersion != 2 {
		t.Fatalf("CurrentVersion = %d, want 2 (0.0.2)", uint32(CurrentVersion))
	}
	v := MakeVersion(3, 1025, 1000)
	if v.Major() != 3 || v.Middle() != 1025 || v.Minor() != 1000 {
		t.Fatalf("MakeVersion(3,1025,1000) = %v", v)
	}
	if got := MakeVersion(1, 2, 3).String(); got != "1.2.3" {
		t.Fatalf("String = %q", got)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	m := Message{Type: MsgReaderAdd, ReaderID: UndefinedReaderID, Payload: []byte("r")}
	b := m.Append(nil)
	if want := unhex(t, "00000003ffffffff0000000172"); !bytes.Equal(b, want) {
		t.Fatalf("encoded %x, want %x", b, want)
	}
	if h := parseHeader(b); h != m.header() {
		t.Fatalf("parseHeader = %+v, want %+v", h, m.header())
	}
}

func TestInit(t *testing.T) {
	// QEMU's Init payload, as captured.
	qemu := unhex(t, "565343440000000200000000")
	in, err := ParseInit(qemu)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Check(); err != nil {
		t.Fatal(err)
	}
	if in.Version != CurrentVersion || len(in.Capabilities) != 1 || in.Capabilities[0] != 0 {
		t.Fatalf("parsed %+v", in)
	}
	if got := DefaultInit().Append(nil); !bytes.Equal(got, qemu) {
		t.Fatalf("DefaultInit encodes %x, want %x", got, qemu)
	}
	// A longer capability array is accepted.
	long, err := ParseInit(unhex(t, "56534344000000020000000100000002deadbeef"))
	if err != nil || len(long.Capabilities) != 3 || long.Capabilities[2] != 0xdeadbeef {
		t.Fatalf("long Init: %+v, %v", long, err)
	}
	// A huge array is accepted but not kept whole.
	huge, err := ParseInit(append(unhex(t, "5653434400000002"), make([]byte, 4*1000)...))
	if err != nil || len(huge.Capabilities) != maxCapabilities {
		t.Fatalf("huge Init: %d caps, %v", len(huge.Capabilities), err)
	}
	for _, bad := range []string{"", "56534344", "5653434400000002", "56534344000000020000000000"} {
		if _, err := ParseInit(unhex(t, bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseInit(%s) = %v, want ErrMalformed", bad, err)
		}
	}
	wrongMagic, _ := ParseInit(unhex(t, "585858580000000200000000"))
	if err := wrongMagic.Check(); !errors.Is(err, ErrMalformed) {
		t.Errorf("wrong magic: %v", err)
	}
	v1, _ := ParseInit(unhex(t, "565343440020000200000000"))
	if err := v1.Check(); !errors.Is(err, ErrVersion) {
		t.Errorf("major 1: %v", err)
	}
	// A newer middle or minor version is compatible.
	v2, _ := ParseInit(unhex(t, "565343440000040700000000"))
	if err := v2.Check(); err != nil {
		t.Errorf("0.1.7: %v", err)
	}
}

func TestErrorPayload(t *testing.T) {
	if b := AppendError(nil, ErrCodeCannotAddMoreReaders); !bytes.Equal(b, unhex(t, "00000002")) {
		t.Fatalf("AppendError = %x", b)
	}
	if c, err := ParseError(unhex(t, "0000000300")); err != nil || c != ErrCodeCardAlreadyInserted {
		t.Fatalf("ParseError = %v, %v", c, err)
	}
	if _, err := ParseError(unhex(t, "000000")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short Error payload: %v", err)
	}
}

func TestCheckATR(t *testing.T) {
	for _, tc := range []struct {
		atr string
		ok  bool
	}{
		{"3b00", true},
		{"3f00", true},
		{"3a00", false},                          // TS
		{"3b", false},                            // too short
		{"3b02", false},                          // 2 historical bytes missing
		{"3b0201", false},                        // 1 of 2 historical bytes
		{"3b020102", true},                       // exact
		{"3b02010203", true},                     // too long is let through
		{"3b8080010101", true},                   // TD1, TD2
		{"3bd518ff8091fe1fc38073c8211308", true}, // QEMU's default ATR
		{"3b" + "0f" + "000102030405060708090a0b0c0d0e", true},
		{"3b" + "ff" + "00", false},
	} {
		err := CheckATR(unhex(t, tc.atr))
		if (err == nil) != tc.ok {
			t.Errorf("CheckATR(%s) = %v, want ok=%v", tc.atr, err, tc.ok)
		}
	}
	if err := CheckATR(make([]byte, 41)); !errors.Is(err, ErrMalformed) {
		t.Errorf("41-byte ATR: %v", err)
	}
}
