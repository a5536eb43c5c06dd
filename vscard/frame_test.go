package vscard

import (
	"bytes"
	"errors"
	"io"
	"math"
	"runtime"
	"strconv"
	"testing"

	"github.com/vscardkit/vscardkit/internal/conformance"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := newFrameWriter(&buf, 0)
	msgs := []Message{
		{Type: MsgInit, ReaderID: UndefinedReaderID, Payload: DefaultInit().Append(nil)},
		{Type: MsgFlush},
		{Type: MsgAPDU, Payload: bytes.Repeat([]byte{0x5A}, MaxPayload)},
		{Type: MsgType(77), ReaderID: 3, Payload: []byte{1}},
	}
	for _, m := range msgs {
		if err := w.writeMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	r := newFrameReader(&buf, 0)
	for _, want := range msgs {
		got, err := r.readMessage()
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != want.Type || got.ReaderID != want.ReaderID || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("read %v, want %v", got, want)
		}
	}
	if _, err := r.readMessage(); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

// oneWrite counts Write calls.
type oneWrite struct{ calls int }

func (o *oneWrite) Write(p []byte) (int, error) { o.calls++; return len(p), nil }

func TestWriterOneWritePerMessage(t *testing.T) {
	var o oneWrite
	w := newFrameWriter(&o, 0)
	for range 3 {
		if err := w.writeMessage(Message{Type: MsgAPDU, Payload: make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	if o.calls != 3 {
		t.Fatalf("%d Write calls for 3 messages", o.calls)
	}
}

func TestWriterLimit(t *testing.T) {
	var buf bytes.Buffer
	w := newFrameWriter(&buf, 0)
	err := w.writeMessage(Message{Type: MsgAPDU, Payload: make([]byte, MaxPayload+1)})
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Max != MaxPayload || tl.Length != MaxPayload+1 {
		t.Fatalf("err = %v", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("wrote %d bytes of a refused message", buf.Len())
	}
}

func TestReaderLimitBeforeAllocation(t *testing.T) {
	hdr := Message{Type: MsgAPDU}.Append(nil)
	hdr[8], hdr[9], hdr[10], hdr[11] = 0xFF, 0xFF, 0xFF, 0xFF // claims 4 GiB
	// TotalAlloc counts the whole process: a goroutine of an earlier test
	// that is still ending may allocate meanwhile, so the least of three
	// measurements counts.
	least := uint64(math.MaxUint64)
	var tl *TooLargeError
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := newFrameReader(bytes.NewReader(hdr), 0).readMessage()
		runtime.ReadMemStats(&after)
		if !errors.As(err, &tl) || tl.Length != 0xFFFFFFFF {
			t.Fatalf("err = %v", err)
		}
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	if least > 4096 {
		t.Fatalf("allocated %d bytes for a refused message", least)
	}
	// A small limit is honoured too.
	small := Message{Type: MsgAPDU, Payload: make([]byte, 300)}.Append(nil)
	if _, err := newFrameReader(bytes.NewReader(small), 270).readMessage(); !errors.As(err, &tl) {
		t.Fatalf("limit 270: %v", err)
	}
}

func TestReaderTruncated(t *testing.T) {
	full := Message{Type: MsgAPDU, Payload: []byte{1, 2, 3}}.Append(nil)
	for n := 1; n < len(full); n++ {
		_, err := newFrameReader(bytes.NewReader(full[:n]), 0).readMessage()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%d of %d bytes: %v, want io.ErrUnexpectedEOF", n, len(full), err)
		}
	}
}

// captures returns the conformance sequences and QEMU's captured replies
// as fuzz seeds.
func captures(t testing.TB) [][]byte {
	seeds, err := conformance.Seeds("../testdata/conformance")
	if err != nil {
		t.Fatal(err)
	}
	return seeds
}

// FuzzReadMessage decodes arbitrary streams: no panic, no allocation beyond
// the limit, and every message it returns re-encodes to the bytes it came
// from.
func FuzzReadMessage(f *testing.F) {
	for _, c := range captures(f) {
		f.Add(c, uint16(0))
	}
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		r := newFrameReader(bytes.NewReader(stream), int(limit))
		off := 0
		for {
			m, err := r.readMessage()
			if err != nil {
				var tl *TooLargeError
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &tl) {
					t.Fatalf("unexpected error %v", err)
				}
				if errors.As(err, &tl) && tl.Length <= uint64(r.max) {
					t.Fatalf("TooLargeError within the limit: %v", err)
				}
				return
			}
			if len(m.Payload) > r.max {
				t.Fatalf("payload %d over limit %d", len(m.Payload), r.max)
			}
			enc := m.Append(nil)
			if !bytes.Equal(enc, stream[off:off+len(enc)]) {
				t.Fatalf("re-encoding differs at %d", off)
			}
			off += len(enc)
			switch m.Type {
			case MsgInit:
				if in, err := ParseInit(m.Payload); err == nil && len(in.Capabilities) > maxCapabilities {
					t.Fatalf("kept %d capabilities", len(in.Capabilities))
				}
			case MsgError:
				ParseError(m.Payload)
			}
		}
	})
}

// cycle is an endless stream of the same bytes.
type cycle struct {
	b   []byte
	off int
}

func (c *cycle) Read(p []byte) (int, error) {
	n := copy(p, c.b[c.off:])
	c.off = (c.off + n) % len(c.b)
	return n, nil
}

func benchmarkSizes(b *testing.B, f func(b *testing.B, size int)) {
	for _, size := range []int{5, 261, 4096, MaxPayload} {
		b.Run(sizeName(size), func(b *testing.B) { f(b, size) })
	}
}

func sizeName(n int) string {
	if n == MaxPayload {
		return "payload=max"
	}
	return "payload=" + strconv.Itoa(n)
}

func BenchmarkEncode(b *testing.B) {
	benchmarkSizes(b, func(b *testing.B, size int) {
		w := newFrameWriter(io.Discard, 0)
		m := Message{Type: MsgAPDU, Payload: make([]byte, size)}
		b.SetBytes(int64(HeaderLen + size))
		b.ReportAllocs()
		for b.Loop() {
			if err := w.writeMessage(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	benchmarkSizes(b, func(b *testing.B, size int) {
		enc := Message{Type: MsgAPDU, Payload: make([]byte, size)}.Append(nil)
		r := newFrameReader(&cycle{b: enc}, 0)
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.readMessage(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
