package tokenstore

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/vscardkit/vscardkit/certsrc"
	"github.com/vscardkit/vscardkit/internal/piv"
)

// Every certsrc condition the applet has a status word for is translated,
// and the certsrc error stays matchable and keeps its message.
func TestTranslate(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("certsrc: op: %w (CKR_X)", err) }
	for _, tt := range []struct {
		in  error
		piv error
	}{
		{wrap(certsrc.ErrNotFound), piv.ErrNotFound},
		{wrap(certsrc.ErrNotLoggedIn), piv.ErrNotLoggedIn},
		{wrap(certsrc.ErrPINBlocked), piv.ErrPINBlocked},
		{wrap(certsrc.ErrPINFormat), piv.ErrPINFormat},
	} {
		got := translate(tt.in)
		if !errors.Is(got, tt.piv) || !errors.Is(got, errors.Unwrap(tt.in)) || got.Error() != tt.in.Error() {
			t.Errorf("translate(%v) = %v; want it to match %v and keep certsrc's error", tt.in, got, tt.piv)
		}
	}
	for _, retries := range []int{-1, 0, 1, 2} {
		in := wrap(&certsrc.PINError{Retries: retries})
		got := translate(in)
		var pe *piv.PINError
		var ce *certsrc.PINError
		if !errors.As(got, &pe) || pe.Retries != retries || !errors.As(got, &ce) || ce.Retries != retries {
			t.Errorf("translate(%v) = %v; want a *piv.PINError and a *certsrc.PINError with %d retries", in, got, retries)
		}
	}
	// What the applet has no word for passes unchanged.
	unsupported := wrap(errors.ErrUnsupported)
	for _, in := range []error{nil, io.EOF, wrap(certsrc.ErrTokenRemoved), unsupported} {
		if got := translate(in); got != in {
			t.Errorf("translate(%v) = %v, want it unchanged", in, got)
		}
	}
}

// A piv.Slot and a certsrc.Slot are the same key reference.
func TestSlots(t *testing.T) {
	if len(piv.Slots) != len(certsrc.Slots) {
		t.Fatalf("piv has %d slots, certsrc %d", len(piv.Slots), len(certsrc.Slots))
	}
	for i, s := range piv.Slots {
		if c := tokenSlot(s); c != certsrc.Slots[i] || c.String() != s.String() || pivSlot(c) != s {
			t.Errorf("slot %v: certsrc %v", s, c)
		}
	}
}
