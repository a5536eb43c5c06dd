package certsrc

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Slot is a PIV key slot: a key reference of NIST SP 800-73-4 part 1,
// table 4b. Its String is the reference in hex ("9A").
type Slot byte

// The PIV key slots a Store fills.
const (
	SlotAuthentication     Slot = 0x9A // PIV Authentication
	SlotSignature          Slot = 0x9C // Digital Signature
	SlotKeyManagement      Slot = 0x9D // Key Management
	SlotCardAuthentication Slot = 0x9E // Card Authentication
)

// slotOrder is the order in which a Store fills and lists its slots.
var slotOrder = [...]Slot{SlotAuthentication, SlotSignature, SlotKeyManagement, SlotCardAuthentication}

// Slots lists the four key slots a Store fills, in the order it fills and
// lists them: 9A, 9C, 9D, 9E. certsrc itself does not read it.
var Slots = []Slot{SlotAuthentication, SlotSignature, SlotKeyManagement, SlotCardAuthentication}

// String formats s as two upper-case hex digits, "9A".
func (s Slot) String() string { return fmt.Sprintf("%02X", byte(s)) }

// Selector names the certificate (and so, by its CKA_ID, the private key) to
// present in a slot. Exactly one of its fields is set.
type Selector struct {
	ID    []byte // the certificate whose CKA_ID is ID
	Label string // the certificate whose CKA_LABEL is Label
	None  bool   // leave the slot empty
}

// String formats s as ParseSelector reads it.
func (s Selector) String() string {
	switch {
	case s.None:
		return "none"
	case s.ID != nil:
		return "id:" + hex.EncodeToString(s.ID)
	default:
		return "label:" + s.Label
	}
}

// ParseSelector parses a selector: "id:HEX" (hex digits, optionally
// separated by ':'), "label:TEXT" (the rest of the string, verbatim) or
// "none".
func ParseSelector(s string) (Selector, error) {
	kind, v, _ := strings.Cut(s, ":")
	switch strings.ToLower(kind) {
	case "none":
		if v != "" {
			return Selector{}, fmt.Errorf("%w: selector %q: none takes no value", ErrMapping, s)
		}
		return Selector{None: true}, nil
	case "id":
		id, err := hex.DecodeString(strings.ReplaceAll(v, ":", ""))
		if err != nil || len(id) == 0 {
			return Selector{}, fmt.Errorf("%w: selector %q: id wants hex digits, such as id:01 or id:a1:b2", ErrMapping, s)
		}
		return Selector{ID: id}, nil
	case "label":
		if v == "" {
			return Selector{}, fmt.Errorf("%w: selector %q: empty label", ErrMapping, s)
		}
		return Selector{Label: v}, nil
	}
	return Selector{}, fmt.Errorf("%w: selector %q: want id:HEX, label:TEXT or none", ErrMapping, s)
}

// ParseSlot parses a slot name: 9a, 9c, 9d or 9e (either case).
func ParseSlot(s string) (Slot, error) {
	for _, sl := range slotOrder {
		if strings.EqualFold(s, sl.String()) {
			return sl, nil
		}
	}
	return 0, fmt.Errorf("%w: slot %q: want 9a, 9c, 9d or 9e", ErrMapping, s)
}

// ParseSlotMapping parses one mapping as a command-line flag gives it:
// SLOT=SELECTOR, for example "9a=id:01", "9c=label:Signing" or "9e=none".
func ParseSlotMapping(s string) (Slot, Selector, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return 0, Selector{}, fmt.Errorf("%w: %q: want SLOT=SELECTOR, such as 9a=id:01", ErrMapping, s)
	}
	slot, err := ParseSlot(strings.TrimSpace(k))
	if err != nil {
		return 0, Selector{}, err
	}
	sel, err := ParseSelector(strings.TrimSpace(v))
	if err != nil {
		return 0, Selector{}, err
	}
	return slot, sel, nil
}

// certObject is an X.509 certificate found on the token.
type certObject struct {
	id    []byte // CKA_ID
	label string // CKA_LABEL
	der   []byte // CKA_VALUE
	cert  *x509.Certificate
}

func (c *certObject) String() string {
	return fmt.Sprintf("certificate id:%x label %q (%s)", c.id, c.label, c.cert.Subject)
}

// checkKey reports whether a PIV card can hold pub: RSA 1024, 2048 or 3072
// bits, or ECDSA on P-256 or P-384.
func checkKey(pub any) error {
	if p := keyProblem(pub); p != "" {
		return fmt.Errorf("%w: %s", ErrUnsupportedKey, p)
	}
	return nil
}

// keyProblem says why a PIV card cannot hold pub's key, or "" when it can.
func keyProblem(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 1024, 2048, 3072:
			return ""
		}
		return fmt.Sprintf("RSA %d bits (PIV takes 1024, 2048 or 3072)", k.N.BitLen())
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return ""
		}
		return fmt.Sprintf("EC curve %s (PIV takes P-256 or P-384)", k.Curve.Params().Name)
	}
	return fmt.Sprintf("%T (PIV takes RSA or ECDSA keys)", pub)
}

// Extended key usages Go does not name.
var (
	oidPIVCardAuth     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 6, 8} // id-PIV-cardAuth (SP 800-73-4 / FIPS 201)
	oidSmartcardLogon  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
	oidPKINITClientKDC = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 2, 3, 4} // id-pkinit-KPClientAuth (RFC 4556)
)

func hasEKU(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	return slices.ContainsFunc(c.UnknownExtKeyUsage, oid.Equal)
}

// qualifies reports whether c's key usage suits slot (see the package
// documentation).
func qualifies(c *x509.Certificate, slot Slot) bool {
	ku := c.KeyUsage
	anyKU := ku == 0 // no keyUsage extension: any use
	switch slot {
	case SlotAuthentication:
		noEKU := len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0
		auth := noEKU || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) ||
			slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) ||
			hasEKU(c, oidSmartcardLogon) || hasEKU(c, oidPKINITClientKDC)
		return (anyKU || ku&x509.KeyUsageDigitalSignature != 0) && auth
	case SlotSignature:
		return anyKU || ku&x509.KeyUsageContentCommitment != 0
	case SlotKeyManagement:
		return anyKU || ku&(x509.KeyUsageKeyEncipherment|x509.KeyUsageKeyAgreement) != 0
	case SlotCardAuthentication:
		return hasEKU(c, oidPIVCardAuth)
	}
	return false
}

// eligible reports whether the default mapping may place c at all: an
// end-entity certificate with a CKA_ID and a key a PIV card can hold.
func eligible(c *certObject) bool { return ineligible(c) == "" }

// ineligible says why the default mapping may not place c at all, or ""
// when it may.
func ineligible(c *certObject) string {
	switch {
	case len(c.id) == 0:
		return "it has no CKA_ID, so its private key cannot be found"
	case c.cert.BasicConstraintsValid && c.cert.IsCA:
		return "it is a CA certificate (basicConstraints CA:TRUE, which openssl req -x509 gives by default), which the default mapping leaves for a chain"
	}
	return keyProblem(c.cert.PublicKey)
}

// leftOutReason says why the default mapping did not place c, or "" when
// nothing but the other certificates kept it out.
func leftOutReason(c *certObject) string {
	if r := ineligible(c); r != "" {
		return r
	}
	for _, slot := range slotOrder {
		if qualifies(c.cert, slot) {
			return "the slots its key usage fits hold other certificates"
		}
	}
	return "its key usage and extended key usage fit no PIV slot"
}

// assignment is what a slot holds and why.
type assignment struct {
	obj    *certObject
	reason string // "explicit id:01", "default: keyUsage ..."
}

// mapSlots places certificates in slots: explicit selectors first, then the
// default mapping for the slots left (see the package documentation).
func mapSlots(certs []*certObject, explicit map[Slot]Selector) (map[Slot]assignment, error) {
	out := make(map[Slot]assignment)
	used := make(map[*certObject]bool)
	for _, slot := range slotOrder {
		sel, ok := explicit[slot]
		if !ok || sel.None {
			continue
		}
		var found []*certObject
		for _, c := range certs {
			if sel.ID != nil && bytes.Equal(c.id, sel.ID) || sel.ID == nil && sel.Label != "" && c.label == sel.Label {
				found = append(found, c)
			}
		}
		switch {
		case len(found) == 0:
			return nil, fmt.Errorf("%w: slot %s: no certificate with %s on the token: %w", ErrMapping, slot, sel, ErrNotFound)
		case len(found) > 1:
			return nil, fmt.Errorf("%w: slot %s: %d certificates with %s; select by id", ErrMapping, slot, len(found), sel)
		}
		c := found[0]
		if len(c.id) == 0 {
			return nil, fmt.Errorf("%w: slot %s: %s has no CKA_ID, so its private key cannot be found", ErrMapping, slot, c)
		}
		if err := checkKey(c.cert.PublicKey); err != nil {
			return nil, fmt.Errorf("%w: slot %s: %s: %w", ErrMapping, slot, c, err)
		}
		out[slot] = assignment{obj: c, reason: "explicit " + sel.String()}
		used[c] = true
	}
	for _, slot := range slotOrder {
		if _, ok := explicit[slot]; ok {
			continue
		}
		var best *certObject
		bestFit := 0
		for _, c := range certs {
			if used[c] || !eligible(c) || !qualifies(c.cert, slot) {
				continue
			}
			fit := 0
			for _, s := range slotOrder {
				if qualifies(c.cert, s) {
					fit++
				}
			}
			if best == nil || fit < bestFit || fit == bestFit && lessCert(c, best) {
				best, bestFit = c, fit
			}
		}
		if best != nil {
			out[slot] = assignment{obj: best, reason: "default from key usage"}
			used[best] = true
		}
	}
	return out, nil
}

// lessCert is the tie-break: lower CKA_ID (bytewise), then label, then DER.
func lessCert(a, b *certObject) bool {
	if c := bytes.Compare(a.id, b.id); c != 0 {
		return c < 0
	}
	if a.label != b.label {
		return a.label < b.label
	}
	return bytes.Compare(a.der, b.der) < 0
}
