package apdu

import (
	"bytes"
	"fmt"
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

// INSGeneralAuthenticate is GENERAL AUTHENTICATE (PIV), whose answers can
// be secrets: an RSA decryption (an unwrapped key) or an ECDH shared secret.
const INSGeneralAuthenticate = 0x87

// secretGA reports whether the answer to a GENERAL AUTHENTICATE piece may be
// a secret: one for the key management key (9D) or a retired key-management
// key (82-95), or one whose data may hold an ECDH ephemeral point (tag 85).
// Signatures with 9A, 9C and 9E stay visible. A false positive only hides
// more.
func secretGA(cmd []byte) bool {
	p2 := cmd[3]
	return p2 == 0x9D || p2 >= 0x82 && p2 <= 0x95 || bytes.IndexByte(cmd[4:], 0x85) >= 0
}

// Redactor formats command and response APDUs for logs and traces, hiding
// the data of commands that carry secrets (VERIFY, CHANGE REFERENCE DATA,
// RESET RETRY COUNTER, key import) and of every piece of a chained command
// that started as one, and the data of answers that can be secrets (a
// decryption or key agreement by GENERAL AUTHENTICATE, and the GET RESPONSE
// pieces that continue it). It
// keeps the header, the lengths and the status words so a trace still shows
// what happened. The zero value redacts. A Redactor follows one card's
// command stream (Command, then Response, in turn) and is not safe for
// concurrent use.
type Redactor struct {
	// ShowSecrets turns redaction off (for --trace-secrets).
	ShowSecrets bool

	inSecretChain bool
	gaChain       bool // a chained GENERAL AUTHENTICATE asks for a secret
	secretAnswer  bool // the last command's answer may be a secret
	inSecretReply bool // a secret answer continues with GET RESPONSE
}

// Command formats cmd as hex, redacting secret data.
func (r *Redactor) Command(cmd []byte) string {
	secret := r.inSecretChain
	r.secretAnswer, r.inSecretChain = false, false
	if len(cmd) >= 4 {
		ins, chained := cmd[1], cmd[0]&0x10 != 0 // CLA bit 0x10: more pieces of this command follow
		switch ins {
		case INSGeneralAuthenticate:
			r.secretAnswer = r.gaChain || secretGA(cmd)
		case INSGetResponse:
			r.secretAnswer = r.inSecretReply
		}
		r.gaChain = ins == INSGeneralAuthenticate && r.secretAnswer && chained
		secret = secret || IsSecret(ins)
		r.inSecretChain = secret && chained
	}
	if !secret || r.ShowSecrets || len(cmd) <= 5 {
		return fmt.Sprintf("%X", cmd)
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

// Response formats resp, the answer to the last command given to Command,
// as hex, redacting its data when it may be a secret.
func (r *Redactor) Response(resp []byte) string {
	secret := r.secretAnswer
	r.inSecretReply = secret && len(resp) >= 2 && resp[len(resp)-2] == SWBytesRemaining.SW1()
	if secret && !r.ShowSecrets && len(resp) > 2 {
		return fmt.Sprintf("<redacted %d bytes>%X", len(resp)-2, resp[len(resp)-2:])
	}
	return fmt.Sprintf("%X", resp)
}
