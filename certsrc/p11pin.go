//go:build cgo

package certsrc

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// login is Login with cgo.
func (s *Store) login(pin []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(pin) == 0 {
		return fmt.Errorf("%w: empty PIN", ErrBadInput)
	}
	flags, err := s.pinFlags("login")
	if err != nil {
		return err
	}
	p := pinString(pin)
	err = s.ctx.Login(s.session, pkcs11.CKU_USER, p)
	if code, _ := ckr(err); code == pkcs11.CKR_USER_ALREADY_LOGGED_IN {
		s.ctx.Logout(s.session)
		s.loggedIn = false
		s.gen++
		err = s.ctx.Login(s.session, pkcs11.CKU_USER, p)
	}
	code, _ := ckr(err)
	switch {
	case err == nil:
		s.failures = 0
		s.loggedIn = true
		s.gen++
		return nil
	case code == pkcs11.CKR_PIN_INCORRECT:
		s.loggedIn = false
		s.gen++
		return s.wrongPIN("login", err, flags)
	case code == pkcs11.CKR_PIN_LOCKED:
		s.loggedIn = false
		return fmt.Errorf("%w (login: %w)", ErrPINBlocked, err)
	case code == pkcs11.CKR_PIN_LEN_RANGE, code == pkcs11.CKR_PIN_INVALID:
		// The token refused the PIN's form without counting a try.
		s.loggedIn = false
		return fmt.Errorf("%w (login: %w)", &PINError{Retries: s.retries(flags)}, err)
	}
	return s.fail("C_Login", err)
}

// pinString gives the module a PIN's bytes without a Go copy of them.
func pinString(pin []byte) string { return unsafe.String(unsafe.SliceData(pin), len(pin)) }

// pinFlags is what Login and ChangePIN do before a PIN goes to the token:
// make sure of a session and read the token's flags, refusing a locked PIN.
// Called with mu held.
func (s *Store) pinFlags(op string) (uint, error) {
	if err := s.ensureSession(); err != nil {
		return 0, err
	}
	flags, err := s.tokenFlags()
	if err != nil {
		return 0, err
	}
	if flags&pkcs11.CKF_USER_PIN_LOCKED != 0 {
		return 0, fmt.Errorf("%w (%s: the token's CKF_USER_PIN_LOCKED is set)", ErrPINBlocked, op)
	}
	return flags, nil
}

// wrongPIN counts a PIN the token answered with CKR_PIN_INCORRECT (err)
// and returns op's error: blocked when the token now says so, else a
// *PINError with the tries left. flags are the token's flags from
// before the try, used when they cannot be read again. Called with mu held.
func (s *Store) wrongPIN(op string, err error, flags uint) error {
	s.failures++
	if f, ferr := s.tokenFlags(); ferr == nil {
		flags = f
	}
	if flags&pkcs11.CKF_USER_PIN_LOCKED != 0 {
		return fmt.Errorf("%w (%s: %w)", ErrPINBlocked, op, err)
	}
	return fmt.Errorf("%w (%s: %w)", &PINError{Retries: s.retries(flags)}, op, err)
}

// tokenFlags returns CK_TOKEN_INFO.flags. Called with mu held.
func (s *Store) tokenFlags() (uint, error) {
	raw, err := s.ctx.GetTokenInfo(s.slotID)
	if err != nil {
		return 0, s.fail("C_GetTokenInfo", err)
	}
	if tokenInfo(raw) != s.token {
		s.dropSession()
		return 0, fmt.Errorf("%w: %s was replaced by %s", ErrTokenRemoved, s.token, tokenInfo(raw))
	}
	return raw.Flags, nil
}

// retries computes the tries left from the token's flags and the failures
// this Store counted (see the package documentation).
func (s *Store) retries(flags uint) int {
	switch {
	case flags&pkcs11.CKF_USER_PIN_LOCKED != 0:
		return 0
	case flags&pkcs11.CKF_USER_PIN_FINAL_TRY != 0:
		return 1
	case s.nominal < 0:
		return -1
	}
	f := s.failures
	if f == 0 && flags&pkcs11.CKF_USER_PIN_COUNT_LOW != 0 {
		f = 1
	}
	return max(s.nominal-f, 1)
}

// logout is Logout with cgo.
func (s *Store) logout() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.hasSession {
		s.loggedIn = false
		return nil
	}
	err := s.ctx.Logout(s.session)
	s.loggedIn = false
	s.gen++
	code, _ := ckr(err)
	switch {
	case err == nil, code == pkcs11.CKR_USER_NOT_LOGGED_IN:
		return nil
	case removedCode(code):
		s.dropSession()
		return nil
	}
	return s.fail("C_Logout", err)
}

// pinStatus is PINStatus with cgo.
func (s *Store) pinStatus() (PINStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensureSession(); err != nil {
		return PINStatus{}, err
	}
	flags, err := s.tokenFlags()
	if err != nil {
		return PINStatus{}, err
	}
	info, err := s.ctx.GetSessionInfo(s.session)
	if err != nil {
		return PINStatus{}, s.fail("C_GetSessionInfo", err)
	}
	if in := isUserState(info.State); in != s.loggedIn {
		s.loggedIn = in
		s.gen++
	}
	return PINStatus{
		LoggedIn: s.loggedIn,
		Retries:  s.retries(flags),
		Blocked:  flags&pkcs11.CKF_USER_PIN_LOCKED != 0,
	}, nil
}

// changePIN is ChangePIN with cgo.
func (s *Store) changePIN(oldPIN, newPIN []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(oldPIN) == 0 || len(newPIN) == 0 {
		return fmt.Errorf("%w: empty PIN", ErrBadInput)
	}
	flags, err := s.pinFlags("change PIN")
	if err != nil {
		return err
	}
	if flags&pkcs11.CKF_WRITE_PROTECTED != 0 {
		return fmt.Errorf("certsrc: change PIN: %w: the token is write-protected", errors.ErrUnsupported)
	}
	rw, err := s.ctx.OpenSession(s.slotID, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		if code, _ := ckr(err); code == pkcs11.CKR_TOKEN_WRITE_PROTECTED {
			return fmt.Errorf("certsrc: change PIN: %w (%w)", errors.ErrUnsupported, err)
		}
		return s.fail("C_OpenSession(read-write)", err)
	}
	defer s.ctx.CloseSession(rw)
	err = s.ctx.SetPIN(rw, pinString(oldPIN), pinString(newPIN))
	code, _ := ckr(err)
	switch {
	case err == nil:
		s.failures = 0
		return nil
	case code == pkcs11.CKR_PIN_INCORRECT:
		return s.wrongPIN("change PIN", err, flags)
	case code == pkcs11.CKR_PIN_LOCKED:
		return fmt.Errorf("%w (change PIN: %w)", ErrPINBlocked, err)
	case code == pkcs11.CKR_PIN_LEN_RANGE, code == pkcs11.CKR_PIN_INVALID:
		return fmt.Errorf("%w (change PIN: %w)", ErrPINFormat, err)
	case code == pkcs11.CKR_FUNCTION_NOT_SUPPORTED, code == pkcs11.CKR_SESSION_READ_ONLY,
		code == pkcs11.CKR_TOKEN_WRITE_PROTECTED:
		return fmt.Errorf("certsrc: change PIN: %w (%w)", errors.ErrUnsupported, err)
	}
	return s.fail("C_SetPIN", err)
}
