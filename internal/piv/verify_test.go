package piv_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

func TestVerify(t *testing.T) {
	store := newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{})
	c := newCard(t, store, piv.Options{})
	// One session, in order: each step's status word depends on the ones
	// before.
	steps := []struct {
		name string
		cmd  string
		sw   apdu.SW
	}{
		{"status before", "00200080", 0x63C3},
		{"status, piv-go's form with Le", "0020008000", 0x63C3},
		{"wrong PIN", "00200080 08 313131313131FFFF", 0x63C2},
		{"status after a wrong PIN", "00200080", 0x63C2},
		{"right PIN", "00200080 08 313233343536FFFF", apdu.SWOK},
		{"status when verified", "00200080", apdu.SWOK},
		{"reset security status", "0020FF80", apdu.SWOK},
		{"status after the reset", "00200080", 0x63C3},
		{"right PIN, unpadded", "00200080 06 313233343536", apdu.SWOK},
		{"wrong PIN resets the status", "00200080 08 3939393939393939", 0x63C2},
		{"status: not verified", "00200080", 0x63C2},
		{"nine bytes", "00200080 09 313233343536FFFFFF", apdu.SWIncorrectData},
		{"all padding", "00200080 08 FFFFFFFFFFFFFFFF", apdu.SWIncorrectData},
		{"padding inside", "00200080 08 3132FF3334FFFFFF", apdu.SWIncorrectData},
		{"global PIN", "00200000 08 313233343536FFFF", apdu.SWReferencedDataNotFound},
		{"PUK", "00200081 08 3132333435363738", apdu.SWReferencedDataNotFound},
		{"bad P1", "00200180 08 313233343536FFFF", apdu.SWIncorrectP1P2},
		{"reset with data", "0020FF80 08 313233343536FFFF", apdu.SWWrongLength},
		{"format errors count no try", "00200080", 0x63C2},
		{"wrong", "00200080 08 3030303030303030", 0x63C1},
		{"wrong, last try", "00200080 08 3030303030303030", 0x63C0},
		{"status: blocked", "00200080", apdu.SWAuthMethodBlocked},
		{"right PIN: still blocked", "00200080 08 313233343536FFFF", apdu.SWAuthMethodBlocked},
		{"CHANGE REFERENCE DATA: blocked", "00240080 10 313233343536FFFF 3635343332310000", apdu.SWAuthMethodBlocked},
	}
	for _, s := range steps {
		if sw := c.sendHex(s.cmd).SW(); sw != s.sw {
			t.Fatalf("%s: SW %v, want %v", s.name, sw, s.sw)
		}
	}
	if st, _ := store.PINStatus(); !st.Blocked {
		t.Error("store not blocked")
	}
}

func TestChangeReferenceData(t *testing.T) {
	store := newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{})
	c := newCard(t, store, piv.Options{})
	steps := []struct {
		name string
		cmd  string
		sw   apdu.SW
	}{
		{"wrong old PIN", "00240080 10 313131313131FFFF 3837363534333231", 0x63C2},
		{"wrong length", "00240080 08 313233343536FFFF", apdu.SWIncorrectData},
		{"empty new PIN", "00240080 10 313233343536FFFF FFFFFFFFFFFFFFFF", apdu.SWIncorrectData},
		{"PUK", "00240081 10 3132333435363738 3837363534333231", apdu.SWReferencedDataNotFound},
		{"bad P1", "00240180 10 313233343536FFFF 3837363534333231", apdu.SWIncorrectP1P2},
		{"change", "00240080 10 313233343536FFFF 3837363534333231", apdu.SWOK},
		{"old PIN no longer works", "00200080 08 313233343536FFFF", 0x63C2},
		{"new PIN works", "00200080 08 3837363534333231", apdu.SWOK},
		{"RESET RETRY COUNTER", "002C0080 10 3132333435363738 313233343536FFFF", apdu.SWFuncNotSupported},
		{"RESET RETRY COUNTER, bad P2", "002C0081 10 3132333435363738 313233343536FFFF", apdu.SWReferencedDataNotFound},
		{"RESET RETRY COUNTER, bad P1", "002C0180 10 3132333435363738 313233343536FFFF", apdu.SWIncorrectP1P2},
	}
	for _, s := range steps {
		if sw := c.sendHex(s.cmd).SW(); sw != s.sw {
			t.Fatalf("%s: SW %v, want %v", s.name, sw, s.sw)
		}
	}

	// A store that cannot change PINs.
	plain := struct{ piv.Store }{newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{})}
	c2 := newCard(t, plain, piv.Options{})
	if sw := c2.sendHex("00240080 10 313233343536FFFF 3837363534333231").SW(); sw != apdu.SWFuncNotSupported {
		t.Errorf("store without ChangePIN: %v, want 6A81", sw)
	}
}

// failingStore is a Store whose token fails every operation with an error
// the applet knows nothing about, as a PKCS#11 token that was pulled out
// would.
type failingStore struct{}

var errTokenGone = errors.New("token gone")

func (failingStore) Serial() []byte                              { return nil }
func (failingStore) Certificate(piv.Slot) ([]byte, error)        { return nil, errTokenGone }
func (failingStore) PrivateKey(piv.Slot) (piv.PrivateKey, error) { return nil, errTokenGone }
func (failingStore) Login([]byte) error                          { return errTokenGone }
func (failingStore) Logout() error                               { return errTokenGone }
func (failingStore) PINStatus() (piv.PINStatus, error)           { return piv.PINStatus{}, errTokenGone }
func (failingStore) ChangePIN(oldPIN, newPIN []byte) error       { return errTokenGone }

func TestStoreFailures(t *testing.T) {
	c := newCard(t, failingStore{}, piv.Options{})
	for _, tc := range []struct {
		name string
		cmd  string
		sw   apdu.SW
	}{
		{"PIN status", "00200080", apdu.SWUnknown},
		{"VERIFY", "00200080 08 313233343536FFFF", apdu.SWUnknown},
		{"CHANGE REFERENCE DATA", "00240080 10 313233343536FFFF 3837363534333231", apdu.SWUnknown},
		{"certificate", "00CB3FFF 05 5C035FC105", apdu.SWUnknown},
		{"key", "0087119E 26 7C24 8200 8120" + strings.Repeat("00", 32), apdu.SWUnknown},
		{"CHUID needs no token", "00CB3FFF 05 5C035FC102", apdu.SWOK},
		{"reset security status", "0020FF80", apdu.SWOK},
	} {
		if sw := c.sendHex(tc.cmd).SW(); sw != tc.sw {
			t.Errorf("%s: SW %v, want %v", tc.name, sw, tc.sw)
		}
	}
}

// The PIN never reaches a log line, whatever the logger's level.
func TestPINNotLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store := newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{PIN: "24680135"})
	guard := piv.NewPINGuard(store, piv.GuardOptions{Logger: log})
	c := newCard(t, guard, piv.Options{Logger: log})
	c.verify("24680135")
	c.verify("97531864")
	c.verify("97531864") // trips the guard
	c.sendHex("00240080 10 3937353331383634 3131313131313131")
	if buf.Len() == 0 {
		t.Fatal("nothing logged at debug level: the test checks nothing")
	}
	out := buf.String()
	for _, secret := range []string{"24680135", "97531864", "3234363830313335", "3937353331383634", "11111111"} {
		if strings.Contains(strings.ToUpper(out), strings.ToUpper(secret)) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "guard tripped") {
		t.Errorf("the guard did not log that it tripped:\n%s", out)
	}
}
