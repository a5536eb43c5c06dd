package reader

import (
	"errors"
	"slices"
	"testing"
	"unicode/utf16"
)

func TestSplitMultiString(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", nil},
		{"\x00\x00", nil},
		{"A 00 00\x00\x00", []string{"A 00 00"}},
		{"A 00 00\x00B 01 00\x00\x00", []string{"A 00 00", "B 01 00"}},
		{"A\x00B", []string{"A", "B"}},               // no final NULs
		{"A\x00\x00B\x00\x00", []string{"A"}},        // the empty name ends the list
		{"Lecteur é\x00\x00", []string{"Lecteur é"}}, // UTF-8 as pcsc-lite gives it
	}
	for _, tc := range tests {
		if got := splitMultiString([]byte(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("splitMultiString(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// SCardListReadersW gives the same names in UTF-16.
		u := utf16.Encode([]rune(tc.in))
		if got := splitMultiStringUTF16(u); !slices.Equal(got, tc.want) {
			t.Errorf("splitMultiStringUTF16(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// A name outside the BMP takes a surrogate pair; a lone surrogate
	// becomes U+FFFD rather than failing.
	u := append(utf16.Encode([]rune("Key 🔑 0")), 0, 0xD800, 'x', 0, 0)
	if got, want := splitMultiStringUTF16(u), []string{"Key 🔑 0", "\uFFFDx"}; !slices.Equal(got, want) {
		t.Errorf("splitMultiStringUTF16 = %q, want %q", got, want)
	}
}

// fakeList plays SCardListReaders: each call pops the next answer.
type fakeList struct {
	t       *testing.T
	answers []listAnswer
	calls   int
}

type listAnswer struct {
	wantBuf bool   // the call must pass a buffer
	n       uint32 // length returned
	rv      uint32
	fill    string // written into the buffer
}

func (f *fakeList) call(buf []uint16, n *uint32) uint32 {
	if f.calls >= len(f.answers) {
		f.t.Fatalf("call %d: unexpected", f.calls)
	}
	a := f.answers[f.calls]
	f.calls++
	if a.wantBuf != (buf != nil) || (buf != nil && int(*n) != len(buf)) {
		f.t.Fatalf("call %d: buffer %d units, n %d", f.calls, len(buf), *n)
	}
	copy(buf, utf16.Encode([]rune(a.fill)))
	*n = a.n
	return a.rv
}

func TestListMultiString(t *testing.T) {
	const names = "A\x00B\x00\x00"
	tests := []struct {
		name    string
		answers []listAnswer
		want    []string
		wantErr error
	}{
		{"two readers", []listAnswer{{n: 5}, {wantBuf: true, n: 5, fill: names}}, []string{"A", "B"}, nil},
		{"no readers", []listAnswer{{rv: codeNoReaders}}, nil, nil},
		{"empty list", []listAnswer{{n: 0}}, nil, nil},
		{"gone between the calls", []listAnswer{{n: 5}, {wantBuf: true, rv: codeNoReaders}}, nil, nil},
		{"one more between the calls", []listAnswer{
			{n: 3}, {wantBuf: true, rv: codeInsufficientBuffer},
			{n: 5}, {wantBuf: true, n: 5, fill: names},
		}, []string{"A", "B"}, nil},
		{"no service", []listAnswer{{rv: codeNoService}}, nil, ErrNoService},
		{"fails filling", []listAnswer{{n: 5}, {wantBuf: true, rv: codeNoService}}, nil, ErrNoService},
		{"n beyond the buffer", []listAnswer{{n: 5}, {wantBuf: true, n: 50, fill: names}}, []string{"A", "B"}, nil},
	}
	for _, tc := range tests {
		f := &fakeList{t: t, answers: tc.answers}
		buf, err := listMultiString("SCardListReadersW", f.call)
		got := splitMultiStringUTF16(buf)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.wantErr)
		}
		if f.calls != len(tc.answers) {
			t.Errorf("%s: %d calls, want %d", tc.name, f.calls, len(tc.answers))
		}
		var pe *PCSCError
		if errors.As(err, &pe) && pe.Op != "SCardListReadersW" {
			t.Errorf("%s: error names %q", tc.name, pe.Op)
		}
	}
}

func TestPnPTracker(t *testing.T) {
	var p pnpTracker
	pnp := readerState{name: pnpReader}
	card := readerState{name: "R", current: 3<<16 | statePresent}
	if got := p.current(pnp); got != stateUnaware {
		t.Fatalf("first call: PnP current %#x, want unaware", got)
	}
	// Windows: two readers, in the upper word.
	p.observe(readerState{name: pnpReader, event: 2<<16 | stateChanged})
	p.observe(readerState{name: "R", event: 9<<16 | stateEmpty | stateChanged})
	if got := p.current(pnp); got != 2<<16 {
		t.Errorf("PnP current %#x, want the reader count fed back (0x20000) without CHANGED", got)
	}
	if got := p.current(card); got != card.current {
		t.Errorf("a reader's current state %#x changed to %#x", card.current, got)
	}
	// A caller that knows the PnP state keeps it.
	if got := p.current(readerState{name: pnpReader, current: 5 << 16}); got != 5<<16 {
		t.Errorf("PnP current %#x, want the caller's", got)
	}
}

// The state mapping holds for the flags Windows and macOS report too:
// an event counter in the upper word (Windows, pcsc-lite), none (macOS).
func TestReaderFromState(t *testing.T) {
	atr := []byte{0x3B, 0x8B, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xDD}
	tests := []struct {
		name  string
		state readerState
		want  Reader
	}{
		{"card, shared use, counter", readerState{name: "R", event: 4<<16 | statePresent | stateInUse | stateChanged, atr: atr},
			Reader{Name: "R", CardPresent: true, ATR: atr, Protocols: T0 | T1, InUse: true}},
		{"card held exclusively, no counter", readerState{name: "R", event: statePresent | stateExclusive | stateInUse, atr: atr},
			Reader{Name: "R", CardPresent: true, ATR: atr, Protocols: T0 | T1, InUse: true, Exclusive: true}},
		{"empty", readerState{name: "R", event: 1<<16 | stateEmpty}, Reader{Name: "R"}},
		{"mute", readerState{name: "R", event: statePresent | stateMute, atr: atr}, Reader{Name: "R", Mute: true}},
		{"present without an ATR", readerState{name: "R", event: statePresent}, Reader{Name: "R"}},
		{"unavailable", readerState{name: "R", event: stateUnavailable}, Reader{Name: "R", Unavailable: true}},
		{"unknown", readerState{name: "R", event: stateUnknown | stateChanged}, Reader{Name: "R", Unavailable: true}},
	}
	for _, tc := range tests {
		got := readerFromState(tc.state)
		if got.Name != tc.want.Name || got.CardPresent != tc.want.CardPresent || !slices.Equal(got.ATR, tc.want.ATR) ||
			got.Protocols != tc.want.Protocols || got.Mute != tc.want.Mute || got.InUse != tc.want.InUse ||
			got.Exclusive != tc.want.Exclusive || got.Unavailable != tc.want.Unavailable {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
