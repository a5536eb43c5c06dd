//go:build cgo

package certsrc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// maxObjects bounds how many objects of one search a Store looks at.
const maxObjects = 1024

// p11state is a Store's PKCS#11 side: the module, and the session and login
// state (guarded by Store.mu).
type p11state struct {
	mod *module
	ctx *pkcs11.Ctx

	slotID     uint
	session    pkcs11.SessionHandle
	hasSession bool
	loggedIn   bool
	mechs      map[uint]bool // the token's mechanisms; nil when it would not list them
	gen        uint64        // bumped by login, logout and new sessions: key handles live within one generation
	failures   int           // wrong PINs since the last successful login
}

// open is Open with cgo.
func open(ctx context.Context, u *URI, cfg Config) (*Store, error) {
	if len(u.PathVendor) > 0 {
		return nil, fmt.Errorf("%w: the URI has path attribute %q, which RFC 7512 does not define, so it matches no token", ErrTokenNotFound, u.PathVendor[0].Name)
	}
	file, err := u.ModuleFile()
	if err != nil {
		return nil, err
	}
	mod, err := loadModule(file)
	if err != nil {
		return nil, err
	}
	s := newStore(cfg)
	s.mod, s.ctx = mod, mod.ctx
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if err := s.checkLibrary(u); err != nil {
		return nil, err
	}
	slotID, ti, err := s.findToken(func(id uint, si func() (pkcs11.SlotInfo, error), ti TokenInfo) bool {
		return matchURI(u, id, si, ti)
	})
	if err != nil {
		return nil, err
	}
	s.token = ti
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("certsrc: open: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.openSession(slotID); err != nil {
		return nil, err
	}
	certs, err := s.findCerts(u)
	if err != nil {
		return nil, err
	}
	if err := s.fill(certs, cfg.Slots); err != nil {
		return nil, err
	}
	s.log.Info("certsrc: token opened", "token", ti.Label, "serial", ti.Serial,
		"certificates", len(certs), "slots", len(s.slots))
	ok = true
	return s, nil
}

// checkLibrary matches the library-* attributes against C_GetInfo.
func (s *Store) checkLibrary(u *URI) error {
	if u.LibraryManufacturer == "" && u.LibraryDescription == "" && u.LibraryVersion == nil {
		return nil
	}
	info, err := s.ctx.GetInfo()
	if err != nil {
		return opError("C_GetInfo", err)
	}
	switch {
	case u.LibraryManufacturer != "" && trimPad(info.ManufacturerID) != u.LibraryManufacturer,
		u.LibraryDescription != "" && trimPad(info.LibraryDescription) != u.LibraryDescription,
		u.LibraryVersion != nil && (info.LibraryVersion.Major != u.LibraryVersion.Major || info.LibraryVersion.Minor != u.LibraryVersion.Minor):
		return fmt.Errorf("%w: the module is %q by %q, version %d.%d, not the library the URI names", ErrTokenNotFound,
			trimPad(info.LibraryDescription), trimPad(info.ManufacturerID), info.LibraryVersion.Major, info.LibraryVersion.Minor)
	}
	return nil
}

// trimPad removes the blank (or NUL) padding of a CK_*_INFO string.
func trimPad(s string) string { return strings.TrimRight(s, " \x00") }

func tokenInfo(ti pkcs11.TokenInfo) TokenInfo {
	return TokenInfo{Label: trimPad(ti.Label), Manufacturer: trimPad(ti.ManufacturerID),
		Model: trimPad(ti.Model), Serial: trimPad(ti.SerialNumber)}
}

// matchURI matches a token against the token and slot attributes of u
// (RFC 7512 section 2.4: exact comparison of the unpadded values).
func matchURI(u *URI, id uint, si func() (pkcs11.SlotInfo, error), ti TokenInfo) bool {
	if u.Token != "" && ti.Label != u.Token || u.Manufacturer != "" && ti.Manufacturer != u.Manufacturer ||
		u.Model != "" && ti.Model != u.Model || u.Serial != "" && ti.Serial != u.Serial ||
		u.SlotID != nil && uint64(id) != *u.SlotID {
		return false
	}
	if u.SlotDescription != "" || u.SlotManufacturer != "" {
		info, err := si()
		if err != nil || u.SlotDescription != "" && trimPad(info.SlotDescription) != u.SlotDescription ||
			u.SlotManufacturer != "" && trimPad(info.ManufacturerID) != u.SlotManufacturer {
			return false
		}
	}
	return true
}

// findToken returns the one initialised token for which match is true.
func (s *Store) findToken(match func(id uint, si func() (pkcs11.SlotInfo, error), ti TokenInfo) bool) (uint, TokenInfo, error) {
	ids, err := s.ctx.GetSlotList(true)
	if err != nil {
		return 0, TokenInfo{}, opError("C_GetSlotList", err)
	}
	var found []uint
	var infos []TokenInfo
	var all []string // every initialised token, for the error
	for _, id := range ids {
		raw, err := s.ctx.GetTokenInfo(id)
		if err != nil {
			s.log.Debug("certsrc: skipping slot", "slot", id, "err", err)
			continue
		}
		if raw.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		ti := tokenInfo(raw)
		all = append(all, fmt.Sprintf("%q (serial %s)", ti.Label, ti.Serial))
		if match(id, func() (pkcs11.SlotInfo, error) { return s.ctx.GetSlotInfo(id) }, ti) {
			found = append(found, id)
			infos = append(infos, ti)
		}
	}
	switch len(found) {
	case 0:
		if len(all) == 0 {
			return 0, TokenInfo{}, fmt.Errorf("%w: none of the module's tokens is initialised (%s with a token; softhsm2-util --init-token or pkcs11-tool --init-token makes one)", ErrTokenNotFound, plural(len(ids), "slot"))
		}
		return 0, TokenInfo{}, fmt.Errorf("%w: the module's tokens are %s", ErrTokenNotFound, strings.Join(all, ", "))
	case 1:
		return found[0], infos[0], nil
	}
	var names []string
	for _, ti := range infos {
		names = append(names, fmt.Sprintf("%q serial %s", ti.Label, ti.Serial))
	}
	return 0, TokenInfo{}, fmt.Errorf("%w: %s", ErrAmbiguousToken, strings.Join(names, ", "))
}

// openSession opens a read-only session on slotID. Called with mu held.
func (s *Store) openSession(slotID uint) error {
	sh, err := s.ctx.OpenSession(slotID, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return opError("C_OpenSession", err)
	}
	s.slotID, s.session, s.hasSession = slotID, sh, true
	s.loggedIn = false
	s.gen++
	s.mechs = nil // every mechanism, unless the token lists its own
	if ms, err := s.ctx.GetMechanismList(slotID); err == nil {
		s.mechs = make(map[uint]bool, len(ms))
		for _, m := range ms {
			s.mechs[m.Mechanism] = true
		}
	}
	// A login of this application survives in other sessions: mirror it.
	if info, err := s.ctx.GetSessionInfo(sh); err == nil && isUserState(info.State) {
		s.loggedIn = true
	}
	return nil
}

func isUserState(state uint) bool {
	return state == pkcs11.CKS_RO_USER_FUNCTIONS || state == pkcs11.CKS_RW_USER_FUNCTIONS
}

// dropSession forgets the session (closing it if the module still knows
// it). Called with mu held.
func (s *Store) dropSession() {
	if s.hasSession {
		s.ctx.CloseSession(s.session)
	}
	s.hasSession, s.loggedIn = false, false
	s.gen++
}

// ensureSession re-opens a session on the same token (same label, serial,
// manufacturer and model) after it went away. When the token is not
// found and this Store is the module's only user, it re-initialises the
// module first: softhsm2, for one, only finds tokens at C_Initialize.
// Called with mu held.
func (s *Store) ensureSession() error {
	if s.closed {
		return ErrClosed
	}
	if s.hasSession {
		return nil
	}
	same := func(_ uint, _ func() (pkcs11.SlotInfo, error), ti TokenInfo) bool { return ti == s.token }
	id, _, err := s.findToken(same)
	if errors.Is(err, ErrTokenNotFound) || errors.Is(err, ErrTokenRemoved) || isRemoved(err) {
		did, rerr := s.mod.reinitialize()
		if rerr != nil {
			return fmt.Errorf("%w: %s: re-initialising the module: %w", ErrTokenRemoved, s.token, rerr)
		}
		if did {
			s.log.Debug("certsrc: module re-initialised to look for the token again", "token", s.token.Label)
			id, _, err = s.findToken(same)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrTokenRemoved, s.token, err)
	}
	if err := s.openSession(id); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrTokenRemoved, s.token, err)
	}
	s.log.Info("certsrc: token is back, session re-opened", "token", s.token.Label, "serial", s.token.Serial)
	return nil
}

func isRemoved(err error) bool {
	code, ok := ckr(err)
	return ok && removedCode(code)
}

// tokenPresent reports whether the token is still in its slot. Called with
// mu held.
func (s *Store) tokenPresent() bool {
	raw, err := s.ctx.GetTokenInfo(s.slotID)
	return err == nil && tokenInfo(raw) == s.token
}

// fail turns the failure of a PKCS#11 call into a certsrc error, and notes
// what it says about the session: gone (ErrTokenRemoved) or logged out
// (ErrNotLoggedIn). The pkcs11.Error stays wrapped. Called with mu held.
func (s *Store) fail(op string, err error) error {
	code, ok := ckr(err)
	if !ok {
		return err
	}
	switch {
	case removedCode(code), suspectCode(code) && !s.tokenPresent():
		s.dropSession()
		s.log.Info("certsrc: token went away", "token", s.token.Label, "op", op, "err", err)
		return fmt.Errorf("%w: %s (%s: %w)", ErrTokenRemoved, s.token, op, err)
	case code == pkcs11.CKR_USER_NOT_LOGGED_IN:
		s.loggedIn = false
		s.gen++
		return fmt.Errorf("%w (%s: %w)", ErrNotLoggedIn, op, err)
	case refusedCode(code):
		return fmt.Errorf("%w (%s: %w)", ErrUnsupportedKey, op, err)
	}
	return opError(op, err)
}

// findObjects returns at most max objects matching tmpl. Called with mu
// held.
func (s *Store) findObjects(tmpl []*pkcs11.Attribute, max int) ([]pkcs11.ObjectHandle, error) {
	if err := s.ctx.FindObjectsInit(s.session, tmpl); err != nil {
		return nil, err
	}
	var out []pkcs11.ObjectHandle
	var err error
	for len(out) < max {
		var hs []pkcs11.ObjectHandle
		hs, _, err = s.ctx.FindObjects(s.session, 64)
		if err != nil || len(hs) == 0 {
			break
		}
		out = append(out, hs...)
	}
	if ferr := s.ctx.FindObjectsFinal(s.session); err == nil {
		err = ferr
	}
	if len(out) > max {
		s.log.Warn("certsrc: too many objects, ignoring the rest", "limit", max)
		out = out[:max]
	}
	return out, err
}

// findCerts reads the X.509 certificates the URI's id and object
// attributes select. Called with mu held.
func (s *Store) findCerts(u *URI) ([]*certObject, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
		pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
	}
	if len(u.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	if u.Object != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	hs, err := s.findObjects(tmpl, maxObjects)
	if err != nil {
		return nil, s.fail("C_FindObjects", err)
	}
	var certs []*certObject
	for _, h := range hs {
		attrs, err := s.ctx.GetAttributeValue(s.session, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
		})
		if err != nil {
			if code, _ := ckr(err); removedCode(code) {
				return nil, s.fail("C_GetAttributeValue", err)
			}
			s.log.Debug("certsrc: skipping unreadable certificate object", "handle", h, "err", err)
			continue
		}
		c := &certObject{der: attrs[0].Value, id: attrs[1].Value, label: string(attrs[2].Value)}
		if c.cert, err = x509.ParseCertificate(c.der); err != nil {
			s.log.Debug("certsrc: skipping certificate that does not parse", "id", fmt.Sprintf("%x", c.id), "label", c.label, "err", err)
			continue
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// hasMech reports whether the token lists mechanism ckm (true when it
// would not give its list). Called with mu held.
func (s *Store) hasMech(ckm uint) bool { return s.mechs == nil || s.mechs[ckm] }

// close is Close with cgo.
func (s *Store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.hasSession {
		if s.loggedIn {
			s.ctx.Logout(s.session)
		}
		s.ctx.CloseSession(s.session)
		s.hasSession, s.loggedIn = false, false
	}
	if s.mod == nil {
		return nil
	}
	return s.mod.release()
}

// ckr returns the CKR_ code err carries, if any.
func ckr(err error) (uint, bool) {
	var e pkcs11.Error
	if errors.As(err, &e) {
		return uint(e), true
	}
	return 0, false
}

// removedCode reports whether code says that the session or the token is
// gone, so that the session must be re-opened.
func removedCode(code uint) bool {
	switch code {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_SLOT_ID_INVALID,
		pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED:
		return true
	}
	return false
}

// suspectCode reports whether code may mean that the token went away
// without saying so: softhsm2 answers CKR_GENERAL_ERROR and
// CKR_OBJECT_HANDLE_INVALID once its token directory is gone, while the
// session stays valid. The Store then checks whether the token is still
// there.
func suspectCode(code uint) bool {
	switch code {
	case pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_FUNCTION_FAILED,
		pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID:
		return true
	}
	return false
}

// refusedCode reports whether code is the token refusing an operation for
// the key or mechanism (reported as ErrUnsupportedKey).
func refusedCode(code uint) bool {
	switch code {
	case pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_MECHANISM_PARAM_INVALID,
		pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED, pkcs11.CKR_KEY_TYPE_INCONSISTENT:
		return true
	}
	return false
}

// opError wraps a PKCS#11 failure of op.
func opError(op string, err error) error {
	return fmt.Errorf("certsrc: %s: %w", op, err)
}

// plural returns "1 slot", "2 slots".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
