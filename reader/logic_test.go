package reader

import (
	"errors"
	"log/slog"
	"testing"
)

func TestPCSCErrorConditions(t *testing.T) {
	tests := []struct {
		code uint32
		want error
	}{
		{codeNoService, ErrNoService},
		{codeSecurityViolation, ErrNoService},
		{codeServiceStopped, ErrNoService},
		{codeCommError, ErrNoService},
		{codeNoReaders, ErrNoReaders},
		{codeReaderUnavailable, ErrReaderGone},
		{codeUnknownReader, ErrReaderGone},
		{codeNoSmartcard, ErrNoCard},
		{codeRemovedCard, ErrNoCard},
		{codeResetCard, ErrCardReset},
		{codeUnresponsiveCard, ErrUnresponsive},
		{codeSharingViolation, ErrSharing},
		{codeProtoMismatch, ErrProtocol},
		{codeCancelled, ErrCancelled},
	}
	all := []error{ErrNoService, ErrNoReaders, ErrReaderGone, ErrNoCard, ErrCardReset, ErrUnresponsive, ErrSharing, ErrProtocol, ErrCancelled}
	for _, tc := range tests {
		err := error(&PCSCError{Op: "SCardX", Code: tc.code})
		for _, s := range all {
			if got := errors.Is(err, s); got != (s == tc.want) {
				t.Errorf("%s: errors.Is(%v) = %v", CodeName(tc.code), s, got)
			}
		}
	}
	err := &PCSCError{Op: "SCardEstablishContext", Code: codeNoService}
	if got, want := err.Error(), "reader: no PC/SC service: is pcscd running? (SCardEstablishContext: SCARD_E_NO_SERVICE)"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if got := (&PCSCError{Op: "SCardX", Code: 0x80100099}).Error(); got != "reader: SCardX: 0x80100099" {
		t.Errorf("unknown code message %q", got)
	}
	if pcscErr("SCardX", 0) != nil {
		t.Error("success is an error")
	}
	if !serviceGone(&PCSCError{Code: codeInvalidHandle}) || serviceGone(&PCSCError{Code: codeNoSmartcard}) || serviceGone(errors.New("x")) {
		t.Error("serviceGone misclassifies")
	}
	re := &ResetError{Replaced: true, Cause: &PCSCError{Code: codeRemovedCard}}
	if !errors.Is(re, ErrCardReset) || errors.Is(re, ErrNoCard) {
		t.Error("a ResetError after a replacement must match ErrCardReset and not ErrNoCard")
	}
}

func TestNotFoundMessage(t *testing.T) {
	e := &NotFoundError{Wanted: `reader "X"`, Present: []string{"A", "B"}}
	if got, want := e.Error(), `reader: reader "X" not found; readers present: A, B`; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	e.Present = nil
	if got, want := e.Error(), `reader: reader "X" not found; no readers present (is the reader plugged in?)`; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestATRProtocols(t *testing.T) {
	tests := []struct {
		atr  []byte
		want Protocol
	}{
		{[]byte{0x3B, 0x8B, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x5D}, T1},
		{[]byte{0x3B, 0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, T0},
		{[]byte{0x3B, 0x8B, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xDD}, T0 | T1},
		// YubiKey 5: TA1 TB1 TC1 TD1=81 (T=1), TD2=31 (TA3 TB3, T=1).
		{[]byte{0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59, 0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40}, T1},
		{[]byte{0x3B, 0x80}, 0},       // TD1 announced, missing
		{[]byte{0x3C, 0x00}, 0},       // bad TS
		{[]byte{0x3B}, 0},             // too short
		{[]byte{0x3B, 0x80, 0x80}, 0}, // TD2 announced, missing
	}
	for _, tc := range tests {
		if got := ATRProtocols(tc.atr); got != tc.want {
			t.Errorf("ATRProtocols(% X) = %v, want %v", tc.atr, got, tc.want)
		}
	}
	if s := (T0 | T1).String(); s != "T=0|T=1" {
		t.Errorf("String = %q", s)
	}
	if s := Protocol(0x10004).String(); s != "0x10004" {
		t.Errorf("String = %q", s)
	}
}

func TestChooseEmpty(t *testing.T) {
	for _, s := range []Selector{FirstWithCard(), Exact("A"), Containing("A"), Index(0), ParseSelector("x")} {
		_, err := Choose(nil, s)
		var nf *NotFoundError
		if !errors.As(err, &nf) || len(nf.Present) != 0 {
			t.Errorf("Choose(nil, %v) = %v", s, err)
		}
	}
}

// newTestWatcher returns a Watcher without its goroutine, to drive its
// bookkeeping directly.
func newTestWatcher() *Watcher {
	return &Watcher{
		events: make(chan Event, 100),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		log:    slog.New(slog.DiscardHandler),
		known:  map[string]*watched{},
	}
}

func drain(w *Watcher) []string {
	var out []string
	for {
		select {
		case e := <-w.events:
			out = append(out, e.String())
		default:
			return out
		}
	}
}

func TestWatcherBookkeeping(t *testing.T) {
	w := newTestWatcher()
	atr := []byte{0x3B, 0x00}
	present := func(counter uint32) readerState {
		return readerState{name: "R", event: counter<<16 | statePresent | stateChanged, atr: atr}
	}
	empty := func(counter uint32) readerState {
		return readerState{name: "R", event: counter<<16 | stateEmpty | stateChanged}
	}
	steps := []struct {
		name  string
		do    func()
		wants []string
	}{
		{"reader appears", func() { w.syncReaders([]string{"R"}) }, []string{`reader added: "R"`}},
		{"first look: card in", func() { w.apply(present(3)) }, []string{`card inserted: "R" ATR 3B 00`}},
		{"same state", func() { w.apply(present(3)) }, nil},
		{"pulled and back between looks", func() { w.apply(present(5)) }, []string{`card removed: "R"`, `card inserted: "R" ATR 3B 00`}},
		{"pulled", func() { w.apply(empty(6)) }, []string{`card removed: "R"`}},
		{"mute card", func() {
			w.apply(readerState{name: "R", event: 7<<16 | statePresent | stateMute})
		}, nil},
		{"answers after all", func() { w.apply(present(7)) }, []string{`card inserted: "R" ATR 3B 00`}},
		{"reader unavailable", func() {
			w.apply(readerState{name: "R", event: stateUnknown | stateUnavailable | stateChanged})
		}, []string{`card removed: "R"`}},
		{"reader gone", func() { w.syncReaders(nil) }, []string{`reader removed: "R"`}},
		{"service down", func() { w.setDown(&PCSCError{Op: "SCardGetStatusChange", Code: codeNoService}) }, []string{`service down: reader: no PC/SC service: is pcscd running? (SCardGetStatusChange: SCARD_E_NO_SERVICE)`}},
		{"still down", func() { w.setDown(nil) }, nil},
		{"up", func() { w.setUp() }, []string{"service up"}},
	}
	for _, st := range steps {
		st.do()
		got := drain(w)
		if len(got) != len(st.wants) {
			t.Fatalf("%s: events %q, want %q", st.name, got, st.wants)
		}
		for i := range got {
			if got[i] != st.wants[i] {
				t.Fatalf("%s: events %q, want %q", st.name, got, st.wants)
			}
		}
	}
	// The state fed back to pcsc-lite keeps the counter and drops CHANGED.
	w.syncReaders([]string{"R"})
	w.apply(present(9))
	if s := w.known["R"].state; s != 9<<16|statePresent {
		t.Fatalf("fed-back state %#x", s)
	}
	if rs := w.Readers(); len(rs) != 1 || !rs[0].CardPresent {
		t.Fatalf("Readers() = %+v", rs)
	}
}

// A context that cannot be established at all means no PC/SC service, even
// when winscard says SCARD_F_INTERNAL_ERROR (Wine's does); elsewhere that
// code stays an internal error.
func TestEstablishInternalError(t *testing.T) {
	err := error(&PCSCError{Op: "SCardEstablishContext", Code: codeInternalError})
	if !errors.Is(err, ErrNoService) || !serviceGone(err) {
		t.Errorf("%v: want ErrNoService", err)
	}
	if err := error(&PCSCError{Op: "SCardTransmit", Code: codeInternalError}); errors.Is(err, ErrNoService) {
		t.Errorf("%v matches ErrNoService", err)
	}
}
