package reader

import (
	"errors"
	"fmt"
	"strings"
)

// Conditions, matched with errors.Is. A *PCSCError matches the one its code
// stands for.
var (
	// ErrNoService: the PC/SC service is not running (SCARD_E_NO_SERVICE,
	// SCARD_E_SERVICE_STOPPED, the connection to pcscd broke, or
	// SCardEstablishContext failed with SCARD_F_INTERNAL_ERROR, as a
	// winscard.dll without a service behind it does). Its text says what to
	// check on this OS: "is pcscd running?", or on Windows whether a reader
	// is attached (Windows runs its Smart Card service only while one is).
	ErrNoService = errors.New("reader: no PC/SC service: " + noServiceHint)
	// ErrNoReaders: the service runs but has no reader
	// (SCARD_E_NO_READERS_AVAILABLE).
	ErrNoReaders = errors.New("reader: no smart card reader present")
	// ErrNotFound: no reader matches what was asked for; see NotFoundError.
	ErrNotFound = errors.New("reader: reader not found")
	// ErrReaderGone: the reader was unplugged or became unavailable
	// (SCARD_E_READER_UNAVAILABLE, SCARD_E_UNKNOWN_READER).
	ErrReaderGone = errors.New("reader: reader unavailable")
	// ErrNoCard: the reader holds no card, or the card left it
	// (SCARD_E_NO_SMARTCARD, SCARD_W_REMOVED_CARD).
	ErrNoCard = errors.New("reader: no card in the reader")
	// ErrCardReset: the card was reset, or removed and reinserted, since
	// the last command (SCARD_W_RESET_CARD, or SCARD_W_REMOVED_CARD after
	// which a card was found again); see ResetError.
	ErrCardReset = errors.New("reader: card was reset")
	// ErrUnresponsive: the card does not answer (SCARD_W_UNRESPONSIVE_CARD,
	// SCARD_W_UNPOWERED_CARD, SCARD_E_NOT_READY).
	ErrUnresponsive = errors.New("reader: card does not respond")
	// ErrSharing: another program uses the card exclusively
	// (SCARD_E_SHARING_VIOLATION).
	ErrSharing = errors.New("reader: card in use by another program")
	// ErrProtocol: the card and the requested protocol do not match
	// (SCARD_E_PROTO_MISMATCH).
	ErrProtocol = errors.New("reader: protocol mismatch")
	// ErrCancelled: the call was cancelled (SCARD_E_CANCELLED).
	ErrCancelled = errors.New("reader: cancelled")
	// ErrClosed: the Card or Watcher was closed.
	ErrClosed = errors.New("reader: closed")
	// ErrUnsupported: this build cannot do that: a Linux or macOS build
	// without cgo has no PC/SC at all (Windows builds need no cgo).
	ErrUnsupported = errors.New("reader: not supported in this build")
)

// PC/SC return codes (pcsclite.h) that the package interprets.
const (
	codeInternalError      = 0x80100001
	codeCancelled          = 0x80100002
	codeInvalidHandle      = 0x80100003
	codeInsufficientBuffer = 0x80100008
	codeUnknownReader      = 0x80100009
	codeTimeout            = 0x8010000A
	codeSharingViolation   = 0x8010000B
	codeNoSmartcard        = 0x8010000C
	codeProtoMismatch      = 0x8010000F
	codeNotReady           = 0x80100010
	codeCommError          = 0x80100013
	codeReaderUnavailable  = 0x80100017
	codeNoService          = 0x8010001D
	codeSecurityViolation  = 0x8010006A
	codeServiceStopped     = 0x8010001E
	codeNoReaders          = 0x8010002E
	codeUnresponsiveCard   = 0x80100066
	codeUnpoweredCard      = 0x80100067
	codeResetCard          = 0x80100068
	codeRemovedCard        = 0x80100069
)

var codeNames = map[uint32]string{
	codeInternalError:      "SCARD_F_INTERNAL_ERROR",
	codeCancelled:          "SCARD_E_CANCELLED",
	codeInvalidHandle:      "SCARD_E_INVALID_HANDLE",
	0x80100004:             "SCARD_E_INVALID_PARAMETER",
	0x80100006:             "SCARD_E_NO_MEMORY",
	codeInsufficientBuffer: "SCARD_E_INSUFFICIENT_BUFFER",
	codeUnknownReader:      "SCARD_E_UNKNOWN_READER",
	codeTimeout:            "SCARD_E_TIMEOUT",
	codeSharingViolation:   "SCARD_E_SHARING_VIOLATION",
	codeNoSmartcard:        "SCARD_E_NO_SMARTCARD",
	0x8010000D:             "SCARD_E_UNKNOWN_CARD",
	codeProtoMismatch:      "SCARD_E_PROTO_MISMATCH",
	codeNotReady:           "SCARD_E_NOT_READY",
	0x80100011:             "SCARD_E_INVALID_VALUE",
	0x80100012:             "SCARD_E_SYSTEM_CANCELLED",
	codeCommError:          "SCARD_F_COMM_ERROR",
	0x80100014:             "SCARD_F_UNKNOWN_ERROR",
	0x80100015:             "SCARD_E_INVALID_ATR",
	0x80100016:             "SCARD_E_NOT_TRANSACTED",
	codeReaderUnavailable:  "SCARD_E_READER_UNAVAILABLE",
	0x8010001C:             "SCARD_E_CARD_UNSUPPORTED",
	codeNoService:          "SCARD_E_NO_SERVICE",
	codeServiceStopped:     "SCARD_E_SERVICE_STOPPED",
	0x8010001F:             "SCARD_E_UNSUPPORTED_FEATURE",
	codeNoReaders:          "SCARD_E_NO_READERS_AVAILABLE",
	0x80100065:             "SCARD_W_UNSUPPORTED_CARD",
	codeUnresponsiveCard:   "SCARD_W_UNRESPONSIVE_CARD",
	codeUnpoweredCard:      "SCARD_W_UNPOWERED_CARD",
	codeResetCard:          "SCARD_W_RESET_CARD",
	codeRemovedCard:        "SCARD_W_REMOVED_CARD",
	codeSecurityViolation:  "SCARD_W_SECURITY_VIOLATION",
}

// PCSCError is a PC/SC call that failed with a return code. errors.Is
// matches it against the condition its code stands for (ErrNoService for
// SCARD_E_NO_SERVICE, and so on).
type PCSCError struct {
	Op   string // the PC/SC function, e.g. "SCardTransmit"
	Code uint32 // the SCARD_E_*, SCARD_F_* or SCARD_W_* code
}

// CodeName returns the symbolic name of a PC/SC return code
// ("SCARD_E_NO_SERVICE"), or its value in hex when the package does not
// know it.
func CodeName(code uint32) string {
	if n, ok := codeNames[code]; ok {
		return n
	}
	return fmt.Sprintf("0x%08X", code)
}

// Error names the condition (when the code stands for one), the call and
// the code.
func (e *PCSCError) Error() string {
	if s := e.condition(); s != nil {
		return fmt.Sprintf("%v (%s: %s)", s, e.Op, CodeName(e.Code))
	}
	return fmt.Sprintf("reader: %s: %s", e.Op, CodeName(e.Code))
}

// Is reports whether target is the condition e's code stands for.
func (e *PCSCError) Is(target error) bool {
	c := e.condition()
	return c != nil && c == target
}

func (e *PCSCError) condition() error {
	if e.Op == "SCardEstablishContext" && e.Code == codeInternalError {
		// No context at all: whatever failed inside, there is no PC/SC
		// service to use (Wine's winscard.dll says so this way).
		return ErrNoService
	}
	switch e.Code {
	case codeNoService, codeServiceStopped, codeCommError:
		return ErrNoService
	case codeSecurityViolation:
		// pcsc-lite's answer to a context it does not know: the one
		// this context was made with has gone (seen while pcscd was
		// killed under load).
		return ErrNoService
	case codeNoReaders:
		return ErrNoReaders
	case codeReaderUnavailable, codeUnknownReader:
		return ErrReaderGone
	case codeNoSmartcard, codeRemovedCard:
		return ErrNoCard
	case codeResetCard:
		return ErrCardReset
	case codeUnresponsiveCard, codeUnpoweredCard, codeNotReady:
		return ErrUnresponsive
	case codeSharingViolation:
		return ErrSharing
	case codeProtoMismatch:
		return ErrProtocol
	case codeCancelled:
		return ErrCancelled
	}
	return nil
}

// pcscErr wraps a non-zero return code of op; it returns nil for success.
func pcscErr(op string, code uint32) error {
	if code == 0 {
		return nil
	}
	return &PCSCError{Op: op, Code: code}
}

// serviceGone reports whether err means the connection to the PC/SC
// service is lost: the service stopped, or pcscd restarted and forgot the
// context (SCARD_E_INVALID_HANDLE).
func serviceGone(err error) bool {
	var pe *PCSCError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.condition() == ErrNoService || pe.Code == codeInvalidHandle
}

// NotFoundError reports that no reader matched a selection, and which
// readers there are. errors.Is(err, ErrNotFound) matches it.
type NotFoundError struct {
	// Wanted describes the selection: `reader "X"`, `reader #2`, `a reader
	// whose name contains "X"`, `a reader with a card`.
	Wanted string
	// Present are the readers present (names).
	Present []string
}

// Error says what was wanted and which readers there are.
func (e *NotFoundError) Error() string {
	if len(e.Present) == 0 {
		return fmt.Sprintf("reader: %s not found; no readers present (is the reader plugged in?)", e.Wanted)
	}
	return fmt.Sprintf("reader: %s not found; readers present: %s", e.Wanted, strings.Join(e.Present, ", "))
}

// Is matches ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// AmbiguousError reports that a partial name matched more than one reader.
type AmbiguousError struct {
	Query   string
	Matches []string
}

// Error lists the readers the query matched.
func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("reader: %q matches %d readers: %s; give more of the name", e.Query, len(e.Matches), strings.Join(e.Matches, ", "))
}

// ResetError reports that the card was reset, or removed and reinserted,
// since the last command: the Card has reconnected and the command was not
// sent. The card's state (selected application, verified PIN) is gone and
// its ATR may have changed; a bridge re-announces ATR to its host.
// errors.Is(err, ErrCardReset) matches it.
type ResetError struct {
	// Replaced is true when the card had been removed (the card now in the
	// reader may be another).
	Replaced bool
	// ATR is the ATR of the card now in the reader.
	ATR []byte
	// Cause is the PC/SC error that revealed it.
	Cause error
}

// Error says what happened to the card and gives its ATR now.
func (e *ResetError) Error() string {
	what := "reset"
	if e.Replaced {
		what = "removed and reinserted"
	}
	return fmt.Sprintf("reader: card was %s; reconnected, command not sent (ATR % X): %v", what, e.ATR, e.Cause)
}

// Is matches ErrCardReset. (Cause is deliberately not unwrapped: after a
// replacement its SCARD_W_REMOVED_CARD would match ErrNoCard, yet a card is
// in the reader.)
func (e *ResetError) Is(target error) bool { return target == ErrCardReset }
