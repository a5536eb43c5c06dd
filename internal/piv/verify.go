package piv

import (
	"bytes"
	"errors"

	"github.com/vscardkit/vscardkit/internal/apdu"
)

// keyRefPIN is the PIV Card Application PIN's key reference (SP 800-73-4
// part 1, table 4a); 00 (global PIN) and 81 (PUK) are not on this card.
const keyRefPIN = 0x80

// pinBlockLen is the length of a PIN in a VERIFY command: the PIN, padded
// with FF (SP 800-73-4 part 2, section 2.4.3).
const pinBlockLen = 8

// unknownRetries is what a status word reports when the store cannot say how
// many tries are left (a PKCS#11 token only says "low" or "final"). Wrapping
// the store in a GuardStore gives a real count.
const unknownRetries = 3

// unpadPIN returns the PIN in an FF-padded block, in a new buffer the caller
// must clear, or false when the block is empty, too long, all padding, or
// has padding inside the PIN.
func unpadPIN(block []byte) ([]byte, bool) {
	if len(block) == 0 || len(block) > pinBlockLen {
		return nil, false
	}
	n := len(block)
	for n > 0 && block[n-1] == 0xFF {
		n--
	}
	if n == 0 || bytes.IndexByte(block[:n], 0xFF) >= 0 {
		return nil, false
	}
	return bytes.Clone(block[:n]), true
}

// retriesSW is 63Cx, x being the tries left (at most 15).
func retriesSW(n int) apdu.SW {
	if n < 0 {
		n = unknownRetries
	}
	if n > 15 {
		n = 15
	}
	return apdu.SWWarningCounter | apdu.SW(n)
}

// verify is VERIFY (SP 800-73-4 part 2, section 3.2.1).
//
//   - P1 00, no data: the PIN's status: 9000 when verified, 63Cx when not,
//     6983 when blocked.
//   - P1 00, the PIN padded with FF to 8 bytes: verify it with the store.
//   - P1 FF, no data: reset the security status (log out).
func (a *Applet) verify(c apdu.Command) apdu.Response {
	if c.P1 != 0x00 && c.P1 != 0xFF {
		return apdu.SWIncorrectP1P2.Bytes()
	}
	if c.P2 != keyRefPIN {
		return apdu.SWReferencedDataNotFound.Bytes()
	}
	if c.P1 == 0xFF {
		if len(c.Data) != 0 {
			return apdu.SWWrongLength.Bytes()
		}
		a.resetSecurity()
		return apdu.SWOK.Bytes()
	}
	if len(c.Data) == 0 {
		return a.pinStatus()
	}
	pin, ok := unpadPIN(c.Data)
	if !ok {
		return apdu.SWIncorrectData.Bytes()
	}
	err := a.store.Login(pin)
	clear(pin)
	if err == nil {
		a.verified, a.sigFresh = true, true
		return apdu.SWOK.Bytes()
	}
	a.resetSecurity()
	return a.pinFailure(err)
}

// pinFailure maps a failed Login or ChangePIN to its status word.
func (a *Applet) pinFailure(err error) apdu.Response {
	var pe *PINError
	switch {
	case errors.As(err, &pe):
		return retriesSW(pe.Retries).Bytes()
	case errors.Is(err, ErrPINBlocked):
		return apdu.SWAuthMethodBlocked.Bytes()
	case errors.Is(err, errors.ErrUnsupported):
		return apdu.SWFuncNotSupported.Bytes()
	case errors.Is(err, ErrPINFormat):
		return apdu.SWIncorrectData.Bytes()
	}
	a.log.Debug("piv: PIN check failed", "err", err)
	return apdu.SWUnknown.Bytes()
}

func (a *Applet) pinStatus() apdu.Response {
	if a.verified {
		return apdu.SWOK.Bytes()
	}
	st, err := a.store.PINStatus()
	switch {
	case err != nil:
		a.log.Debug("piv: reading the PIN status failed", "err", err)
		return apdu.SWUnknown.Bytes()
	case st.Blocked:
		return apdu.SWAuthMethodBlocked.Bytes()
	}
	return retriesSW(st.Retries).Bytes()
}

// changeReference is CHANGE REFERENCE DATA (SP 800-73-4 part 2, section
// 3.2.2) for the PIN: 16 bytes, the old and the new PIN, each padded with FF
// to 8. It works when the store is a PINChanger; otherwise it answers 6A81.
// There is no PUK (P2 81 answers 6A88).
func (a *Applet) changeReference(c apdu.Command) apdu.Response {
	if c.P1 != 0x00 {
		return apdu.SWIncorrectP1P2.Bytes()
	}
	if c.P2 != keyRefPIN {
		return apdu.SWReferencedDataNotFound.Bytes()
	}
	if len(c.Data) != 2*pinBlockLen {
		return apdu.SWIncorrectData.Bytes()
	}
	oldPIN, ok1 := unpadPIN(c.Data[:pinBlockLen])
	newPIN, ok2 := unpadPIN(c.Data[pinBlockLen:])
	defer clear(oldPIN)
	defer clear(newPIN)
	if !ok1 || !ok2 {
		return apdu.SWIncorrectData.Bytes()
	}
	pc, ok := a.store.(PINChanger)
	if !ok {
		return apdu.SWFuncNotSupported.Bytes()
	}
	err := pc.ChangePIN(oldPIN, newPIN)
	if err == nil {
		return apdu.SWOK.Bytes()
	}
	var pe *PINError
	if errors.As(err, &pe) || errors.Is(err, ErrPINBlocked) {
		a.resetSecurity() // a failed verification resets the security status
	}
	return a.pinFailure(err)
}

// resetRetryCounter is RESET RETRY COUNTER (SP 800-73-4 part 2, section
// 3.2.3): unblocking the PIN needs the PUK, which this card does not have.
func (a *Applet) resetRetryCounter(c apdu.Command) apdu.Response {
	if c.P1 != 0x00 {
		return apdu.SWIncorrectP1P2.Bytes()
	}
	if c.P2 != keyRefPIN {
		return apdu.SWReferencedDataNotFound.Bytes()
	}
	return apdu.SWFuncNotSupported.Bytes()
}
