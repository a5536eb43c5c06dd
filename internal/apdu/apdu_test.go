package apdu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func h(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParse(t *testing.T) {
	long := bytes.Repeat([]byte{0xAB}, 300)
	tests := []struct {
		name     string
		in       []byte
		data     []byte
		ne       int
		extended bool
	}{
		{"case 1", h("00A40400"), nil, 0, false},
		{"case 2S", h("00CA000010"), nil, 16, false},
		{"case 2S Le 00", h("00C0000000"), nil, 256, false},
		{"case 3S", h("00A4040003A00000"), h("A00000"), 0, false},
		{"case 4S", h("00A4040003A0000000"), h("A00000"), 256, false},
		{"case 2E", h("00CB3FFF000000"), nil, 65536, true},
		{"case 3E", append(h("00DB3FFF00012C"), long...), long, 0, true},
		{"case 4E", append(append(h("00DB3FFF00012C"), long...), 0x01, 0x00), long, 256, true},
	}
	for _, tc := range tests {
		c, err := Parse(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !bytes.Equal(c.Data, tc.data) || c.Ne != tc.ne || c.Extended != tc.extended {
			t.Errorf("%s: got data %x ne %d ext %v", tc.name, c.Data, c.Ne, c.Extended)
		}
		out, err := c.Bytes()
		if err != nil || !bytes.Equal(out, tc.in) {
			t.Errorf("%s: re-encoded %x, %v; want %x", tc.name, out, err, tc.in)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	for _, in := range [][]byte{nil, h("00"), h("00A404"), h("00A4040005A000"), h("00A4040000FF"), h("00A404000001"), h("00A40400000002AA"), h("00A4040000000000")} {
		if _, err := Parse(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%x) = %v, want ErrMalformed", in, err)
		}
	}
}

func TestSplitter(t *testing.T) {
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i)
	}
	var s Splitter
	r := s.Start(data, SWOK)
	var got []byte
	for n := 0; ; n++ {
		if n > 10 {
			t.Fatal("too many pieces")
		}
		got = append(got, r.Data()...)
		if len(r) > MaxShortData+2 {
			t.Fatalf("piece of %d bytes", len(r))
		}
		if r.SW() == SWOK {
			break
		}
		if r.SW()&0xFF00 != SWBytesRemaining {
			t.Fatalf("SW %v", r.SW())
		}
		var ok bool
		r, ok = s.Next(Command{INS: INSGetResponse, Ne: 256})
		if !ok {
			t.Fatal("nothing pending")
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("reassembled data differs")
	}
	if s.Pending() {
		t.Fatal("still pending")
	}
	if r, ok := s.Next(Command{INS: INSGetResponse}); ok || r.SW() != SWConditionsNotSatisfied {
		t.Fatalf("GET RESPONSE with nothing pending: %x %v", r, ok)
	}
	// 61xx reports the exact remainder when under 256.
	r = s.Start(data[:300], 0x6282)
	if r.SW() != 0x612C {
		t.Fatalf("first SW %v, want 612C", r.SW())
	}
	r, _ = s.Next(Command{INS: INSGetResponse, Ne: 44})
	if r.SW() != 0x6282 || len(r.Data()) != 44 {
		t.Fatalf("last piece %d bytes SW %v", len(r.Data()), r.SW())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"00A40400", "00CA000010", "00A4040003A0000000", "00CB3FFF000000", "00DB3FFF000002AABB0000"} {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		out, err := c.Bytes()
		if err != nil {
			t.Fatalf("parsed %x but cannot encode: %v", b, err)
		}
		c2, err := Parse(out)
		if err != nil || !bytes.Equal(c2.Data, c.Data) || c2.Ne != c.Ne {
			t.Fatalf("round trip of %x: %x %v", b, out, err)
		}
	})
}

func TestRedactor(t *testing.T) {
	pin := "313233343536FFFF"
	var r Redactor
	for _, tc := range []struct{ in, want string }{
		{"00A4040005A000000308", "00A4040005A000000308"},
		{"0020008008" + pin, "0020008008<redacted 8 bytes>"},
		{"00200080", "00200080"}, // status query: no data
		{"002C008010" + pin + pin, "002C008010<redacted 16 bytes>"},
		{"0024008010" + pin + pin, "0024008010<redacted 16 bytes>"},
		// chained VERIFY: every piece is redacted
		{"1020008004" + pin[:8], "1020008004<redacted 4 bytes>"},
		{"0020008004" + pin[8:], "0020008004<redacted 4 bytes>"},
		{"00CB3FFF055C035FC105", "00CB3FFF055C035FC105"},
		// extended VERIFY
		{"0020008000000" + "8" + pin, "00200080000008<redacted 8 bytes>"},
		// malformed
		{"002000800F" + pin, "00200080<redacted 9 bytes>"},
	} {
		if got := r.Command(h(tc.in)); got != tc.want {
			t.Errorf("Command(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	// Answers to GENERAL AUTHENTICATE (a decrypted key, a shared secret)
	// and their GET RESPONSE continuations are redacted; others are not.
	r = Redactor{}
	for _, tc := range []struct{ cmd, resp, want string }{
		{"00CB3FFF055C035FC105", "5301AA9000", "5301AA9000"},
		{"0087079D04" + "7C028100", "7C0482024242" + "6104", "<redacted 6 bytes>6104"},
		{"00C0000004", "DEADBEEF9000", "<redacted 4 bytes>9000"},
		{"00C0000000", "6985", "6985"},
		{"0087119A04" + "7C028200", "6A80", "6A80"},
		{"00A4040005A000000308", "9000", "9000"},
		// a signature with 9A stays visible
		{"0087119A0A" + "7C08820081043132333400", "7C0482023045" + "9000", "7C04820230459000"},
		// ECDH (tag 85) on 9D, chained: the answer is hidden
		{"1087119D04" + "7C088500", "9000", "9000"},
		{"0087119D04" + "01020304", "7C0482021111" + "9000", "<redacted 6 bytes>9000"},
	} {
		r.Command(h(tc.cmd))
		if got := r.Response(h(tc.resp)); got != tc.want {
			t.Errorf("Response(%s) after %s = %s, want %s", tc.resp, tc.cmd, got, tc.want)
		}
	}
	show := Redactor{ShowSecrets: true}
	if got := show.Command(h("0020008008" + pin)); got != "0020008008"+pin {
		t.Errorf("ShowSecrets: %s", got)
	}
}
