package piv

import (
	"crypto/sha1"
	"crypto/sha256"
)

// AID is the full PIV Card Application identifier with its version (SP
// 800-73-4 part 1, section 2.2): RID A0 00 00 03 08, PIX 00 00 10 00 01 00.
var aid = [...]byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

// AID returns the full PIV application identifier.
func AID() []byte { return append([]byte(nil), aid[:]...) }

// ridLen is the length of the registered application provider identifier
// (NIST's RID), the shortest AID prefix SELECT accepts.
const ridLen = 5

// Data object tags (SP 800-73-4 part 1, table 3), as they appear in a GET
// DATA tag list.
const (
	tagCHUID        = 0x5FC102 // Card Holder Unique Identifier
	tagCCC          = 0x5FC107 // Card Capability Container
	tagDiscovery    = 0x7E     // Discovery Object
	tagKeyHistory   = 0x5FC10C // Key History Object
	tagCertPIVAuth  = 0x5FC105 // X.509 Certificate for PIV Authentication (9A)
	tagCertSign     = 0x5FC10A // X.509 Certificate for Digital Signature (9C)
	tagCertKeyMgmt  = 0x5FC10B // X.509 Certificate for Key Management (9D)
	tagCertCardAuth = 0x5FC101 // X.509 Certificate for Card Authentication (9E)
)

// certSlot maps a data object tag to the key slot whose certificate it holds.
func certSlot(tag uint32) (Slot, bool) {
	switch tag {
	case tagCertPIVAuth:
		return SlotAuthentication, true
	case tagCertSign:
		return SlotSignature, true
	case tagCertKeyMgmt:
		return SlotKeyManagement, true
	case tagCertCardAuth:
		return SlotCardAuthentication, true
	}
	return 0, false
}

// Algorithm identifiers (SP 800-78-5 table 6-2; 0x16 is Yubico's RSA 4096).
const (
	algRSA1024 = 0x06
	algRSA2048 = 0x07
	algRSA3072 = 0x05
	algRSA4096 = 0x16
	algECCP256 = 0x11
	algECCP384 = 0x14
	// Card management key (9B) algorithms: 00 is the 3DES default.
	alg3DESDefault = 0x00
	alg3DES        = 0x03
	algAES128      = 0x08
	algAES192      = 0x0A
	algAES256      = 0x0C
)

// appTemplate is the application property template the SELECT answers (SP
// 800-73-4 part 2, section 3.1.1, table 3).
func appTemplate(label string) []byte {
	var body []byte
	body = appendTLV(body, 0x4F, aid[ridLen:]) // PIX of the AID, with version
	body = appendTLV(body, 0x79, appendTLV(nil, 0x4F, aid[:ridLen]))
	if len(label) > 0 {
		body = appendTLV(body, 0x50, []byte(label))
	}
	var algs []byte
	for _, a := range []byte{algRSA1024, algRSA2048, algRSA3072, algECCP256, algECCP384} {
		algs = appendTLV(algs, 0x80, []byte{a})
	}
	algs = appendTLV(algs, 0x06, []byte{0x00})
	body = appendTLV(body, 0xAC, algs)
	return appendTLV(nil, 0x61, body)
}

// identity is what the applet derives from Store.Serial: the same serial
// always gives the same GUID and card identifier.
type identity struct {
	guid   [16]byte
	cardID [14]byte
}

// guidNamespace is the name-space UUID of vscardkit's CHUID GUIDs (a random
// constant; RFC 9562 section 5.5).
var guidNamespace = [16]byte{0x6b, 0x2f, 0x4e, 0x1a, 0x93, 0x57, 0x4c, 0x0e, 0xa1, 0x7d, 0x38, 0xc5, 0x52, 0x90, 0xe4, 0x0b}

func deriveIdentity(serial []byte) identity {
	var id identity
	// Name-based UUID, version 5 (SHA-1), RFC 9562 section 5.5.
	h := sha1.New()
	h.Write(guidNamespace[:])
	h.Write(serial)
	sum := h.Sum(nil)
	copy(id.guid[:], sum)
	id.guid[6] = id.guid[6]&0x0F | 0x50
	id.guid[8] = id.guid[8]&0x3F | 0x80
	c := sha256.Sum256(append([]byte("vscardkit PIV CCC card identifier\x00"), serial...))
	copy(id.cardID[:], c[:])
	return id
}

// FASC-N of a card not issued under FIPS 201 to a federal employee: agency
// code 9999, system code 9999, credential number 999999 (SP 800-73-4 part 1,
// section 3.1.2, and TIG SCEPACS: such a FASC-N says "use the GUID"), with
// the other fields as the YubiKey tools and most non-federal cards write
// them (series 0, issue 1, person identifier 0, organizational category 3,
// organization 0, association 1), so clients see a familiar value.
var nonFederalFASCN = fascn("9999", "9999", "999999", "0", "1", "0000000000", "3", "0000", "1")

// fascn encodes the FASC-N fields as TIG SCEPACS section 6 does: 40
// characters of 5 bits (4 data bits, least significant first, and an odd
// parity bit), framed by a start sentinel, field separators, an end sentinel
// and a longitudinal redundancy character, packed into 25 bytes.
func fascn(agency, system, credential, cs, ici, pi, oc, oi, poa string) [25]byte {
	const ss, fs, es = 0xB, 0xD, 0xF
	var chars []byte
	digits := func(s string) {
		for i := 0; i < len(s); i++ {
			chars = append(chars, s[i]-'0')
		}
	}
	chars = append(chars, ss)
	digits(agency)
	chars = append(chars, fs)
	digits(system)
	chars = append(chars, fs)
	digits(credential)
	chars = append(chars, fs)
	digits(cs)
	chars = append(chars, fs)
	digits(ici)
	chars = append(chars, fs)
	digits(pi)
	digits(oc)
	digits(oi)
	digits(poa)
	chars = append(chars, es)
	var lrc byte
	for _, c := range chars {
		lrc ^= c
	}
	chars = append(chars, lrc)

	var out [25]byte
	bit := 0
	put := func(v byte) {
		if v != 0 {
			out[bit/8] |= 0x80 >> (bit % 8)
		}
		bit++
	}
	for _, c := range chars {
		ones := 0
		for i := 0; i < 4; i++ {
			b := c >> i & 1
			ones += int(b)
			put(b)
		}
		put(byte(1 - ones%2)) // odd parity
	}
	return out
}

// chuidExpiration is the CHUID's expiration date, YYYYMMDD. A virtual card
// does not expire; the date stays fixed so the CHUID stays the same.
const chuidExpiration = "20991231"

// chuid is the Card Holder Unique Identifier (SP 800-73-4 part 1, table 9):
// FASC-N, GUID, expiration date, and an empty issuer signature, which
// clients that do not check it (OpenSC, Windows, macOS) accept.
func chuid(id identity) []byte {
	var body []byte
	body = appendTLV(body, 0x30, nonFederalFASCN[:])
	body = appendTLV(body, 0x34, id.guid[:])
	body = appendTLV(body, 0x35, []byte(chuidExpiration))
	body = appendTLV(body, 0x3E, nil)
	body = appendTLV(body, 0xFE, nil)
	return appendTLV(nil, 0x53, body)
}

// gscRID is the GSC-IS registered application provider identifier that
// starts the CCC's card identifier.
var gscRID = []byte{0xA0, 0x00, 0x00, 0x01, 0x16}

// ccc is the Card Capability Container (SP 800-73-4 part 1, table 8): a card
// identifier derived from the store's serial, versions 2.1, data model 0x10,
// and the empty elements the table requires.
func ccc(id identity) []byte {
	var body []byte
	cardID := append(append(append([]byte(nil), gscRID...), 0xFF, 0x02), id.cardID[:]...)
	body = appendTLV(body, 0xF0, cardID)
	body = appendTLV(body, 0xF1, []byte{0x21})
	body = appendTLV(body, 0xF2, []byte{0x21})
	body = appendTLV(body, 0xF3, nil)
	body = appendTLV(body, 0xF4, []byte{0x00})
	body = appendTLV(body, 0xF5, []byte{0x10})
	for _, t := range []uint32{0xF6, 0xF7, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE} {
		body = appendTLV(body, t, nil)
	}
	return appendTLV(nil, 0x53, body)
}

// discovery is the Discovery Object (SP 800-73-4 part 1, table 18): the AID
// and a PIN usage policy of 40 00 (only the PIV Card Application PIN
// satisfies the access rules; no global PIN, no OCC).
func discovery() []byte {
	var body []byte
	body = appendTLV(body, 0x4F, aid[:])
	body = appendTLV(body, 0x5F2F, []byte{0x40, 0x00})
	return appendTLV(nil, 0x7E, body)
}

// keyHistory is the Key History Object (SP 800-73-4 part 1, table 19): no
// retired keys, on card or off.
func keyHistory() []byte {
	var body []byte
	body = appendTLV(body, 0xC1, []byte{0})
	body = appendTLV(body, 0xC2, []byte{0})
	body = appendTLV(body, 0xFE, nil)
	return appendTLV(nil, 0x53, body)
}

// maxCertLen is the longest DER certificate a certificate object can carry
// (the object's own length field is at most 65535).
const maxCertLen = maxTLVLen - 16

// certObject wraps a DER certificate as SP 800-73-4 part 1, table 10 says:
// 70 certificate, 71 CertInfo (00: not compressed), FE error detection code.
func certObject(der []byte) []byte {
	var body []byte
	body = appendTLV(body, 0x70, der)
	body = appendTLV(body, 0x71, []byte{0x00})
	body = appendTLV(body, 0xFE, nil)
	return appendTLV(nil, 0x53, body)
}
