package reader

import "log/slog"

// MaxCommand is the longest command APDU PC/SC carries: an extended APDU
// with 65535 data bytes and a 2-byte Le (header 4, Lc 3, Le 2).
const MaxCommand = 4 + 3 + 65535 + 2

// ConnectOptions configures Connect. A nil *ConnectOptions is the zero
// value: any protocol, exclusive access, card left as it is on Close.
type ConnectOptions struct {
	// Protocol is the protocols to accept (T0, T1 or Any); zero means Any.
	// pcsc-lite keeps the protocol the first connection to a card
	// negotiated until the card is reset: asking for another one before
	// that fails with an error matching ErrProtocol.
	Protocol Protocol
	// Shared lets other programs use the card at the same time
	// (SCARD_SHARE_SHARED); by default the connection is exclusive.
	Shared bool
	// ResetOnClose resets the card when the Card is closed
	// (SCARD_RESET_CARD) instead of leaving it as it is.
	ResetOnClose bool
	// Logger receives debug records (never APDU contents). Nil means none.
	Logger *slog.Logger
}
