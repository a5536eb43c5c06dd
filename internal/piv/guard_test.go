package piv_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

const wrongPIN, rightPIN = "00000000", "123456"

func tokenRetries(t *testing.T, s piv.Store) int {
	t.Helper()
	st, err := s.PINStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st.Retries
}

func TestGuardTripsAfterWrongPINs(t *testing.T) {
	var logs bytes.Buffer
	token := newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{MaxTries: 5})
	guard := piv.NewPINGuard(token, piv.GuardOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c := newCard(t, guard, piv.Options{})

	// The token's count shows, not the guard's lower one: no client warns
	// of a final try that is not one.
	if sw := c.sendHex("00200080").SW(); sw != 0x63C5 {
		t.Fatalf("status: %v, want 63C5 (the token's count)", sw)
	}
	if sw := c.verify(wrongPIN); sw != 0x63C4 {
		t.Fatalf("first wrong PIN: %v", sw)
	}
	if guard.Tripped() {
		t.Fatal("tripped after one wrong PIN")
	}
	if sw := c.verify(wrongPIN); sw != 0x63C0 {
		t.Fatalf("second wrong PIN: %v", sw)
	}
	if !guard.Tripped() {
		t.Fatal("not tripped after two wrong PINs")
	}
	if n := tokenRetries(t, token); n != 3 {
		t.Fatalf("token has %d tries left, want 3", n)
	}
	// Tripped: the right PIN is not passed to the token either.
	if sw := c.verify(rightPIN); sw != apdu.SWAuthMethodBlocked {
		t.Fatalf("right PIN while tripped: %v, want 6983", sw)
	}
	if sw := c.sendHex("00200080").SW(); sw != apdu.SWAuthMethodBlocked {
		t.Fatalf("status while tripped: %v, want 6983", sw)
	}
	if st, _ := token.PINStatus(); st.LoggedIn || st.Retries != 3 {
		t.Fatalf("the token saw a PIN while tripped: %+v", st)
	}
	err := guard.Login([]byte(rightPIN))
	if !errors.Is(err, piv.ErrPINBlocked) || !errors.Is(err, piv.ErrGuardTripped) || strings.Contains(err.Error(), rightPIN) {
		t.Fatalf("Login while tripped: %v", err)
	}
	if got := strings.Count(logs.String(), "guard tripped"); got != 1 {
		t.Fatalf("%d trip warnings, want 1:\n%s", got, logs.String())
	}

	guard.Rearm()
	if guard.Tripped() {
		t.Fatal("still tripped after Rearm")
	}
	if !strings.Contains(logs.String(), "re-armed") {
		t.Errorf("Rearm not logged:\n%s", logs.String())
	}
	if sw := c.verify(rightPIN); sw != apdu.SWOK {
		t.Fatalf("right PIN after Rearm: %v", sw)
	}
	if n := tokenRetries(t, token); n != 5 {
		t.Fatalf("token has %d tries left after a right PIN, want 5", n)
	}
}

func TestGuardRightPINResetsCount(t *testing.T) {
	token := newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{MaxTries: 5})
	guard := piv.NewPINGuard(token, piv.GuardOptions{MaxWrongPINs: 3})
	c := newCard(t, guard, piv.Options{})
	for i, step := range []struct {
		pin string
		sw  apdu.SW
	}{
		{wrongPIN, 0x63C4}, {wrongPIN, 0x63C3}, {rightPIN, apdu.SWOK},
		{wrongPIN, 0x63C4}, {wrongPIN, 0x63C3}, {rightPIN, apdu.SWOK},
	} {
		if sw := c.verify(step.pin); sw != step.sw {
			t.Fatalf("step %d: %v, want %v", i, sw, step.sw)
		}
	}
	if guard.Tripped() {
		t.Fatal("tripped, though no three wrong PINs were in a row")
	}
}

func TestGuardFinalTry(t *testing.T) {
	token := newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{MaxTries: 3})
	guard := piv.NewPINGuard(token, piv.GuardOptions{MaxWrongPINs: 10})
	c := newCard(t, guard, piv.Options{})
	if sw := c.verify(wrongPIN); sw != 0x63C2 {
		t.Fatalf("first wrong PIN: %v", sw)
	}
	// The token now says one try is left: the guard trips.
	if sw := c.verify(wrongPIN); sw != 0x63C0 {
		t.Fatalf("second wrong PIN: %v, want 63C0", sw)
	}
	if sw := c.verify(rightPIN); sw != apdu.SWAuthMethodBlocked {
		t.Fatalf("right PIN at the token's final try: %v", sw)
	}
	if n := tokenRetries(t, token); n != 1 {
		t.Fatalf("token has %d tries left, want its final 1", n)
	}

	// A token already at its final try when the guard starts.
	guard2 := piv.NewPINGuard(token, piv.GuardOptions{})
	c2 := newCard(t, guard2, piv.Options{})
	if sw := c2.sendHex("00200080").SW(); sw != apdu.SWAuthMethodBlocked {
		t.Fatalf("status at the final try: %v", sw)
	}
	if sw := c2.verify(rightPIN); sw != apdu.SWAuthMethodBlocked || !guard2.Tripped() {
		t.Fatalf("VERIFY at the final try: %v, tripped %v", sw, guard2.Tripped())
	}
	if n := tokenRetries(t, token); n != 1 {
		t.Fatalf("token has %d tries left, want 1", n)
	}
}

func TestGuardAllowFinalTry(t *testing.T) {
	token := newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{MaxTries: 3})
	guard := piv.NewPINGuard(token, piv.GuardOptions{MaxWrongPINs: 10, AllowFinalTry: true})
	c := newCard(t, guard, piv.Options{})
	for i, step := range []struct {
		pin string
		sw  apdu.SW
	}{{wrongPIN, 0x63C2}, {wrongPIN, 0x63C1}, {rightPIN, apdu.SWOK}} {
		if sw := c.verify(step.pin); sw != step.sw {
			t.Fatalf("step %d: %v, want %v", i, sw, step.sw)
		}
	}
	// And the final try may be lost: the token blocks.
	c.verify(wrongPIN)
	c.verify(wrongPIN)
	if sw := c.verify(wrongPIN); sw != 0x63C0 {
		t.Fatalf("last wrong PIN: %v", sw)
	}
	if st, _ := token.PINStatus(); !st.Blocked {
		t.Fatal("token not blocked")
	}
}

func TestGuardChangePIN(t *testing.T) {
	token := newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{MaxTries: 5})
	guard := piv.NewPINGuard(token, piv.GuardOptions{})
	c := newCard(t, guard, piv.Options{})
	const change = "00240080 10 %s 3837363534333231"
	if sw := c.sendHex(strings.Replace(change, "%s", "3030303030303030", 1)).SW(); sw != 0x63C4 {
		t.Fatalf("wrong old PIN: %v", sw)
	}
	if sw := c.sendHex(strings.Replace(change, "%s", "313233343536FFFF", 1)).SW(); sw != apdu.SWOK {
		t.Fatalf("change: %v", sw)
	}
	c.verify(wrongPIN)
	c.verify(wrongPIN)
	if sw := c.sendHex(strings.Replace(change, "%s", "3837363534333231", 1)).SW(); sw != apdu.SWAuthMethodBlocked {
		t.Fatalf("change while tripped: %v", sw)
	}

	// A token that cannot change its PIN.
	plain := piv.NewPINGuard(struct{ piv.Store }{token}, piv.GuardOptions{})
	if err := plain.ChangePIN([]byte("1"), []byte("2")); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("ChangePIN on a plain store: %v", err)
	}
	if sw := newCard(t, plain, piv.Options{}).sendHex(strings.Replace(change, "%s", "3837363534333231", 1)).SW(); sw != apdu.SWFuncNotSupported {
		t.Fatalf("CHANGE REFERENCE DATA on a plain store: %v", sw)
	}
}

// opaqueStore is a token that does not say how many tries are left, as a
// PKCS#11 token without the count-low flags.
type opaqueStore struct{ *softstore.Store }

func (s opaqueStore) PINStatus() (piv.PINStatus, error) {
	st, err := s.Store.PINStatus()
	if !st.Blocked {
		st.Retries = -1
	}
	return st, err
}

func (s opaqueStore) Login(pin []byte) error {
	err := s.Store.Login(pin)
	var pe *piv.PINError
	if errors.As(err, &pe) {
		return &piv.PINError{Retries: -1}
	}
	return err
}

func TestGuardUnknownRetries(t *testing.T) {
	token := opaqueStore{newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{MaxTries: 9})}
	// Unguarded, the applet can only guess.
	bare := newCard(t, token, piv.Options{})
	if sw := bare.sendHex("00200080").SW(); sw != 0x63C3 {
		t.Fatalf("unguarded status: %v", sw)
	}
	if sw := bare.verify(wrongPIN); sw != 0x63C3 {
		t.Fatalf("unguarded wrong PIN: %v", sw)
	}
	bare.verify(rightPIN)
	// Guarded, the nominal count shows (3, not the guard's 2, so that no
	// client warns of a final try after one miss), and the guard cuts in
	// at its own count.
	c := newCard(t, piv.NewPINGuard(token, piv.GuardOptions{}), piv.Options{})
	for i, step := range []struct {
		cmd string
		sw  apdu.SW
	}{
		{"00200080", 0x63C3},
		{verifyHex(wrongPIN), 0x63C2},
		{"00200080", 0x63C2},
		{verifyHex(wrongPIN), 0x63C0},
		{"00200080", apdu.SWAuthMethodBlocked},
	} {
		if sw := c.sendHex(step.cmd).SW(); sw != step.sw {
			t.Fatalf("step %d: %v, want %v", i, sw, step.sw)
		}
	}
}

func verifyHex(pin string) string { return hex.EncodeToString(verifyCmd(pin)) }

// Rearm may come from another goroutine than the one answering commands.
func TestGuardConcurrentRearm(t *testing.T) {
	token := newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{MaxTries: 1000})
	guard := piv.NewPINGuard(token, piv.GuardOptions{})
	c := newCard(t, guard, piv.Options{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			guard.Rearm()
			guard.Tripped()
		}
	}()
	for range 200 {
		c.verify(wrongPIN)
	}
	wg.Wait()
	guard.Rearm()
	if sw := c.verify(rightPIN); sw != apdu.SWOK {
		t.Fatalf("right PIN after the storm: %v", sw)
	}
}
