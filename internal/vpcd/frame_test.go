package vpcd

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 5, 261, 4096, 65000, MaxPayload} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 7)
		}
		var w bytes.Buffer
		if err := WriteFrame(&w, p); err != nil {
			t.Fatalf("WriteFrame(%d bytes): %v", n, err)
		}
		if w.Len() != HeaderLen+n || int(w.Bytes()[0])<<8|int(w.Bytes()[1]) != n {
			t.Fatalf("%d-byte payload: frame of %d bytes, prefix % x", n, w.Len(), w.Bytes()[:2])
		}
		got, err := ReadFrame(&w, nil)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("ReadFrame after %d bytes: %d bytes, %v", n, len(got), err)
		}
		if _, err := ReadFrame(&w, nil); err != io.EOF {
			t.Fatalf("ReadFrame at the end: %v, want io.EOF", err)
		}
	}
}

func TestWriteFrameTooLong(t *testing.T) {
	var w bytes.Buffer
	err := WriteFrame(&w, make([]byte, MaxPayload+1))
	if !errors.Is(err, ErrFrameTooLong) {
		t.Fatalf("WriteFrame(65536 bytes) = %v, want ErrFrameTooLong", err)
	}
	if w.Len() != 0 {
		t.Fatalf("wrote %d bytes of a frame that cannot exist", w.Len())
	}
}

func TestReadFrameReusesBuffer(t *testing.T) {
	buf := make([]byte, 0, 16)
	got, err := ReadFrame(bytes.NewReader([]byte{0, 3, 1, 2, 3}), buf)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &buf[:1][0] {
		t.Fatal("a payload that fits the buffer was not read into it")
	}
}

func TestReadFrameTruncated(t *testing.T) {
	for _, in := range [][]byte{{0}, {0, 5}, {0, 5, 1, 2, 3, 4}, {0xFF, 0xFF, 1}} {
		_, err := ReadFrame(bytes.NewReader(in), nil)
		if !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ReadFrame(% x) = %v, want ErrTruncated and io.ErrUnexpectedEOF", in, err)
		}
		if _, _, err := DecodeFrame(in); !errors.Is(err, ErrTruncated) {
			t.Errorf("DecodeFrame(% x) = %v, want ErrTruncated", in, err)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		in      []byte
		kind    Kind
		replies bool
	}{
		{nil, KindEmpty, false},
		{[]byte{0}, KindPowerOff, false},
		{[]byte{1}, KindPowerOn, false},
		{[]byte{2}, KindReset, false},
		{[]byte{3}, KindUnknownControl, false},
		{[]byte{4}, KindGetATR, true},
		{[]byte{0xFF}, KindUnknownControl, false},
		{[]byte{0, 0xA4}, KindAPDU, true},
		{[]byte{0, 0xA4, 4, 0, 0}, KindAPDU, true},
	}
	for _, tc := range tests {
		k := Classify(tc.in)
		if k != tc.kind || k.Replies() != tc.replies {
			t.Errorf("Classify(% x) = %v (replies %v), want %v (%v)", tc.in, k, k.Replies(), tc.kind, tc.replies)
		}
	}
}

// seedFiles returns the contents of testdata/*.frames: byte streams as the
// vpcd driver sent them, captured from real sessions (see
// TestCaptureDriverSession).
func seedFiles(tb testing.TB) [][]byte {
	names, err := filepath.Glob(filepath.Join("testdata", "*.frames"))
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzReadFrame(f *testing.F) {
	for _, s := range seedFiles(f) {
		f.Add(s)
	}
	f.Add([]byte{0, 1, 4})
	f.Add([]byte{0, 5, 0, 0xA4, 4, 0, 0})
	f.Add([]byte{0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		rest := in
		var buf []byte
		for {
			p, err := ReadFrame(r, buf)
			dp, drest, derr := DecodeFrame(rest)
			if err != nil {
				if derr == nil {
					t.Fatalf("ReadFrame failed (%v) where DecodeFrame decoded %d bytes", err, len(dp))
				}
				if err != io.EOF && !errors.Is(err, ErrTruncated) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if derr != nil || !bytes.Equal(p, dp) {
				t.Fatalf("ReadFrame got %d bytes, DecodeFrame %d bytes, %v", len(p), len(dp), derr)
			}
			if len(p) > MaxPayload {
				t.Fatalf("payload of %d bytes", len(p))
			}
			re, err := AppendFrame(nil, p)
			if err != nil || !bytes.Equal(re, rest[:len(rest)-len(drest)]) {
				t.Fatalf("re-encoding differs: %v", err)
			}
			_ = Classify(p).String()
			rest, buf = drest, p[:0]
		}
	})
}
