package apdu

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// Instructions whose command data is a secret (a PIN, a PUK, key material).
const (
	INSVerify              = 0x20 // VERIFY
	INSChangeReferenceData = 0x24 // CHANGE REFERENCE DATA
	INSResetRetryCounter   = 0x2C // RESET RETRY COUNTER
	INSImportKey           = 0xFE // IMPORT ASYMMETRIC KEY (Yubico PIV extension)
)

// IsSecret reports whether the data of a command with instruction ins is
// secret.
func IsSecret(ins byte) bool {
	switch ins {
	case INSVerify, INSVerify + 1, INSChangeReferenceData, INSResetRetryCounter, INSImportKey:
		return true
	}
	return false
}

// Redactor formats command and response APDUs for logs and traces, hiding
// the data of commands that carry secrets (VERIFY, CHANGE REFERENCE DATA,
// RESET RETRY COUNTER, key import) and of every piece of a chained command
// that started as one. It keeps the header and the length so a trace still
// shows what happened. The zero value redacts. A Redactor follows one
// card's command stream and is not safe for concurrent use.
type Redactor struct {
	// ShowSecrets turns redaction off (for --trace-secrets).
	ShowSecrets bool

	inSecretChain bool
}

// Command formats cmd as hex, redacting secret data.
func (r *Redactor) Command(cmd []byte) string {
	secret := r.inSecretChain
	if len(cmd) >= 4 {
		secret = secret || IsSecret(cmd[1])
		// CLA bit 0x10: more pieces of this command follow.
		r.inSecretChain = secret && cmd[0]&0x10 != 0
	} else {
		r.inSecretChain = false
	}
	if !secret || r.ShowSecrets || len(cmd) <= 5 {
		return strings.ToUpper(hex.EncodeToString(cmd))
	}
	c, err := Parse(cmd)
	if err != nil || len(c.Data) == 0 {
		// Malformed: keep the header only.
		return fmt.Sprintf("%X<redacted %d bytes>", cmd[:4], len(cmd)-4)
	}
	hdrLen := 5
	if c.Extended {
		hdrLen = 7
	}
	return fmt.Sprintf("%X<redacted %d bytes>", cmd[:hdrLen], len(c.Data))
}

// Response formats resp as hex. Responses carry no secrets the card did not
// mean to give, so they are shown whole.
func (r *Redactor) Response(resp []byte) string {
	return strings.ToUpper(hex.EncodeToString(resp))
}
