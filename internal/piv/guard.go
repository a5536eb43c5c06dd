package piv

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// DefaultMaxWrongPINs is how many wrong PINs in a row trip a GuardStore when
// GuardOptions.MaxWrongPINs is zero.
const DefaultMaxWrongPINs = 2

// DefaultNominalTries is the count of PIN tries a GuardStore reports for a
// token that does not say (a PKCS#11 token has only flags) when
// GuardOptions.NominalTries is zero: 3, what PIV cards usually allow.
const DefaultNominalTries = 3

// ErrGuardTripped is wrapped (together with ErrPINBlocked, so the applet
// answers 6983) by GuardStore.Login while the guard is tripped.
var ErrGuardTripped = errors.New("piv: PIN guard tripped")

// GuardOptions configures NewPINGuard. The zero value is ready to use.
type GuardOptions struct {
	// MaxWrongPINs is how many wrong PINs in a row trip the guard. Zero
	// means DefaultMaxWrongPINs.
	MaxWrongPINs int

	// NominalTries is how many tries a token that gives no count is said
	// to allow: the guest is told this count less its wrong PINs (never
	// less than 1), while the guard cuts in at MaxWrongPINs without
	// saying so beforehand. A count below MaxWrongPINs+1 would make
	// clients warn of a "final try" that is not one. Zero means
	// DefaultNominalTries, or MaxWrongPINs+1 when that is more.
	NominalTries int

	// AllowFinalTry lets a VERIFY through to the token when the token
	// reports that only one try is left. By default the guard trips
	// instead, so that no guest can block the token.
	AllowFinalTry bool

	// RearmHint says, in the warning logged when the guard trips, how the
	// host user re-arms it (for example "kill -HUP 1234"). Empty means
	// "re-arm the guard or restart the program".
	RearmHint string

	// Logger receives a warning when the guard trips and a note when it is
	// re-armed (never a PIN). Nil means no logging.
	Logger *slog.Logger
}

// GuardStore is a Store wrapper that protects the token's PIN from a guest
// that guesses: after GuardOptions.MaxWrongPINs wrong PINs in a row, or when
// the token says the next wrong PIN would block it, the guard trips. While
// tripped it no longer passes PIN checks to the token and answers them as a
// blocked PIN would (the applet answers 6983), and PINStatus reports the PIN
// blocked. Only the host side re-arms it: Rearm, or a new process.
//
// A right PIN resets the count. Everything but the PIN passes straight
// through. GuardStore is safe for concurrent use (Rearm may be called from
// any goroutine).
type GuardStore struct {
	inner   Store
	max     int
	nominal int
	final   bool // AllowFinalTry
	rearm   string
	log     *slog.Logger

	mu      sync.Mutex
	wrong   int    // wrong PINs in a row
	tripped string // why the guard tripped; "" while armed
}

// NewPINGuard returns a guard around inner.
func NewPINGuard(inner Store, opts GuardOptions) *GuardStore {
	g := &GuardStore{inner: inner, max: opts.MaxWrongPINs, nominal: opts.NominalTries, final: opts.AllowFinalTry, log: opts.Logger}
	if g.max <= 0 {
		g.max = DefaultMaxWrongPINs
	}
	if g.nominal <= 0 {
		g.nominal = max(DefaultNominalTries, g.max+1)
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.rearm = opts.RearmHint
	if g.rearm == "" {
		g.rearm = "re-arm the guard or restart the program"
	}
	return g
}

// Tripped reports whether the guard is tripped.
func (g *GuardStore) Tripped() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tripped != ""
}

// Rearm lets PIN checks through to the token again and forgets the wrong PINs
// counted so far. Call it when the host user has acted (for example after
// checking or resetting the token's PIN).
func (g *GuardStore) Rearm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.tripped != "" {
		g.log.Info("piv: PIN guard re-armed: PIN checks go to the token again")
	}
	g.tripped, g.wrong = "", 0
}

// trip must be called with mu held.
func (g *GuardStore) trip(reason string) {
	if g.tripped != "" {
		return
	}
	g.tripped = reason
	g.log.Warn("piv: PIN guard tripped: PIN checks are no longer passed to the token; the guest sees its PIN blocked (6983; CKR_PIN_LOCKED to PKCS#11 software), though the token is not",
		"reason", reason, "max_wrong_pins", g.max,
		"hint", "once the user knows the PIN: "+g.rearm)
}

func (g *GuardStore) blockedError() error {
	return fmt.Errorf("%w (%s): %w", ErrGuardTripped, g.tripped, ErrPINBlocked)
}

// Login checks pin with the token unless the guard is tripped or trips now.
func (g *GuardStore) Login(pin []byte) error {
	return g.check(func() error { return g.inner.Login(pin) })
}

// ChangePIN changes the PIN when the token can (inner is a PINChanger), under
// the same guard as Login: a wrong old PIN counts. Otherwise it returns an
// error wrapping errors.ErrUnsupported.
func (g *GuardStore) ChangePIN(oldPIN, newPIN []byte) error {
	pc, ok := g.inner.(PINChanger)
	if !ok {
		return fmt.Errorf("piv: the store cannot change the PIN: %w", errors.ErrUnsupported)
	}
	return g.check(func() error { return pc.ChangePIN(oldPIN, newPIN) })
}

// check runs a PIN check through the guard.
func (g *GuardStore) check(try func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.tripped != "" {
		return g.blockedError()
	}
	if !g.final {
		st, err := g.inner.PINStatus()
		if err == nil && !st.Blocked && st.Retries == 1 {
			g.trip("the token reports its final try")
			return g.blockedError()
		}
	}
	err := try()
	var pe *PINError
	switch {
	case err == nil:
		g.wrong = 0
		return nil
	case errors.As(err, &pe):
		g.wrong++
		switch {
		case g.wrong >= g.max:
			g.trip(fmt.Sprintf("%d wrong PINs in a row", g.wrong))
		case pe.Retries == 1 && !g.final:
			g.trip("the token reports its final try")
		}
		return &PINError{Retries: g.retries(pe.Retries)}
	}
	return err
}

// retries is the count of tries the guest is told: the token's when it
// says, else the nominal count less the wrong PINs (at least 1). The
// guard's own count does not show: it cuts in at MaxWrongPINs, so that a
// client does not warn of a final try after one miss (a fresh card telling
// 63C2). Called with mu held.
func (g *GuardStore) retries(token int) int {
	if g.tripped != "" {
		return 0
	}
	if token >= 0 {
		return token
	}
	return max(g.nominal-g.wrong, 1)
}

// PINStatus is the token's status as the guard sees it: blocked while
// tripped, and with the guard's count of tries left when that is lower or the
// token gives none.
func (g *GuardStore) PINStatus() (PINStatus, error) {
	st, err := g.inner.PINStatus()
	if err != nil {
		return st, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if st.Blocked {
		return st, nil
	}
	if !g.final && st.Retries == 1 {
		g.trip("the token reports its final try")
	}
	if g.tripped != "" {
		st.Blocked, st.Retries = true, 0
		return st, nil
	}
	st.Retries = g.retries(st.Retries)
	return st, nil
}

// Serial is the token's.
func (g *GuardStore) Serial() []byte { return g.inner.Serial() }

// Certificate is the token's.
func (g *GuardStore) Certificate(slot Slot) ([]byte, error) { return g.inner.Certificate(slot) }

// PrivateKey is the token's.
func (g *GuardStore) PrivateKey(slot Slot) (PrivateKey, error) { return g.inner.PrivateKey(slot) }

// Logout logs the token out.
func (g *GuardStore) Logout() error { return g.inner.Logout() }
