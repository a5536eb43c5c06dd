package piv_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

func TestATR(t *testing.T) {
	a := piv.ATR()
	if len(a) > 40 || (a[0] != 0x3B && a[0] != 0x3F) {
		t.Fatalf("ATR %X: bad length or TS", a)
	}
	// Walk the interface bytes (ISO/IEC 7816-3 section 8.2.2).
	k := int(a[1] & 0x0F)
	y := a[1] >> 4
	i := 2
	var protocols []byte
	for {
		for bit := byte(1); bit <= 4; bit <<= 1 {
			if y&bit != 0 {
				i++ // TAi, TBi, TCi
			}
		}
		if y&8 == 0 {
			break
		}
		td := a[i]
		i++
		protocols = append(protocols, td&0x0F)
		y = td >> 4
	}
	hist := a[i : i+k]
	rest := a[i+k:]
	if !bytes.Equal(protocols, []byte{0, 1}) {
		t.Errorf("protocols %v, want T=0 then T=1", protocols)
	}
	// T=1 is offered, so TCK is present and everything from T0 XORs to 0.
	if len(rest) != 1 {
		t.Fatalf("%d bytes after the historical bytes, want 1 (TCK)", len(rest))
	}
	var x byte
	for _, b := range a[1:] {
		x ^= b
	}
	if x != 0 {
		t.Errorf("TCK wrong: XOR of T0..TCK is %02X", x)
	}
	// OpenSC's PIV_II_HIST match: category 80, compact tag F with the 9-byte AID.
	if want := append([]byte{0x80, 0xF9}, piv.AID()[:9]...); !bytes.Equal(hist, want) {
		t.Errorf("historical bytes %X, want %X", hist, want)
	}
	// QEMU 7.2 (ccid-card-passthru.c, atr_get_protocol_num) takes the
	// protocol from TD1, which must say T=0, the only protocol its reader
	// offers.
	if a[2]&0x0F != 0 {
		t.Errorf("TD1 %02X does not say T=0", a[2])
	}
	// Each call returns a fresh copy.
	a[0] = 0
	if piv.ATR()[0] != 0x3B {
		t.Error("ATR returned shared memory")
	}
}

func TestSelect(t *testing.T) {
	c := newCard(t, newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{}), piv.Options{})
	apt := h("61") // checked separately below
	tests := []struct {
		name string
		cmd  string
		sw   apdu.SW
		data bool
	}{
		{"full AID", "00A40400 0B A00000030800001000 0100 00", apdu.SWOK, true},
		{"RID only (piv-go)", "00A40400 05 A000000308", apdu.SWOK, true},
		{"9 bytes (OpenSC, Windows)", "00A40400 09 A00000030800001000 00", apdu.SWOK, true},
		{"no response asked", "00A4040C 05 A000000308", apdu.SWOK, false},
		{"default application", "00A40400 00", apdu.SWOK, true},
		{"too short", "00A40400 04 A0000003", apdu.SWFileNotFound, false},
		{"too long", "00A40400 0C A00000030800001000 010000", apdu.SWFileNotFound, false},
		{"other AID (GIDS)", "00A40400 09 A00000039742544659", apdu.SWFileNotFound, false},
		{"SC PNP AID", "00A40400 0B A0000003974349445F0100", apdu.SWFileNotFound, false},
		{"MF by file id", "00A40000 02 3F00", apdu.SWFileNotFound, false},
		{"EF.ATR by path", "00A40800 02 2F01", apdu.SWFileNotFound, false},
		{"bad P1", "00A40500 05 A000000308", apdu.SWIncorrectP1P2, false},
		{"bad P2", "00A40402 05 A000000308", apdu.SWIncorrectP1P2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			r := c.sendHex(tc.cmd)
			if r.SW() != tc.sw {
				t.Fatalf("SW %v, want %v", r.SW(), tc.sw)
			}
			if got := len(r.Data()) > 0; got != tc.data {
				t.Fatalf("data %X", r.Data())
			}
			if tc.data && r.Data()[0] != apt[0] {
				t.Fatalf("data %X is not an application property template", r.Data())
			}
		})
	}
	c.t = t

	// The template's contents.
	data, sw := c.exchange(0, 0xA4, 0x04, 0x00, piv.AID())
	if sw != apdu.SWOK {
		t.Fatal(sw)
	}
	m := tlvs(t, only(t, data, 0x61))
	if !bytes.Equal(m[0x4F], h("000010000100")) {
		t.Errorf("4F %X, want the PIX 000010000100", m[0x4F])
	}
	if !bytes.Equal(m[0x79], h("4F05A000000308")) {
		t.Errorf("79 %X, want 4F05A000000308", m[0x79])
	}
	if !strings.Contains(string(m[0x50]), "PIV") {
		t.Errorf("label %q does not say PIV", m[0x50])
	}
	ac := m[0xAC]
	for _, alg := range []string{"800107", "800106", "800105", "800111", "800114", "060100"} {
		if !bytes.Contains(ac, h(alg)) {
			t.Errorf("AC %X lacks %s", ac, alg)
		}
	}

	// A failed SELECT leaves PIV selected: GET DATA still works.
	c.sendHex("00A40400 05 A000000397")
	if _, sw := c.getData("7E"); sw != apdu.SWOK {
		t.Errorf("GET DATA after a failed SELECT: %v", sw)
	}

	// The label is configurable.
	c2 := newCard(t, newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{}), piv.Options{Label: "Test PIV"})
	data, _ = c2.exchange(0, 0xA4, 0x04, 0x00, piv.AID()[:5])
	if got := tlvs(t, only(t, data, 0x61))[0x50]; string(got) != "Test PIV" {
		t.Errorf("label %q", got)
	}
}

func TestGetData(t *testing.T) {
	pairs := mainKeys(t)
	store := newStore(t, subset(pairs, piv.SlotAuthentication, piv.SlotSignature), softstore.Options{Serial: []byte("token serial 1")})
	c := newCard(t, store, piv.Options{})

	t.Run("CHUID", func(t *testing.T) {
		data, sw := c.getData("5FC102")
		if sw != apdu.SWOK {
			t.Fatal(sw)
		}
		m := tlvs(t, only(t, data, 0x53))
		if !bytes.Equal(m[0x30], h("D4E739DA739CED39CE739D836858210842108421C84210C3EB")) {
			t.Errorf("FASC-N %X is not the non-federal 9999 one", m[0x30])
		}
		guid := m[0x34]
		if len(guid) != 16 || guid[6]>>4 != 5 || guid[8]&0xC0 != 0x80 {
			t.Errorf("GUID %X is not a version 5 RFC 9562 UUID", guid)
		}
		if string(m[0x35]) != "20991231" {
			t.Errorf("expiration %q", m[0x35])
		}
		if sig, ok := m[0x3E]; !ok || len(sig) != 0 {
			t.Errorf("issuer signature %X, want present and empty", sig)
		}
		if fe, ok := m[0xFE]; !ok || len(fe) != 0 {
			t.Errorf("FE %X", fe)
		}

		// Same serial, same GUID (a new applet, a new store); another
		// serial, another GUID.
		again := newCard(t, newStore(t, subset(pairs, piv.SlotAuthentication), softstore.Options{Serial: []byte("token serial 1")}), piv.Options{})
		d2, _ := again.getData("5FC102")
		if g2 := tlvs(t, only(t, d2, 0x53))[0x34]; !bytes.Equal(g2, guid) {
			t.Errorf("GUID changed for the same serial: %X then %X", guid, g2)
		}
		other := newCard(t, newStore(t, subset(pairs, piv.SlotAuthentication), softstore.Options{Serial: []byte("token serial 2")}), piv.Options{})
		d3, _ := other.getData("5FC102")
		if g3 := tlvs(t, only(t, d3, 0x53))[0x34]; bytes.Equal(g3, guid) {
			t.Errorf("two serials, one GUID %X", guid)
		}
	})

	t.Run("CCC", func(t *testing.T) {
		data, sw := c.getData("5FC107")
		if sw != apdu.SWOK {
			t.Fatal(sw)
		}
		m := tlvs(t, only(t, data, 0x53))
		if id := m[0xF0]; len(id) != 21 || !bytes.HasPrefix(id, h("A000000116")) {
			t.Errorf("card identifier %X", id)
		}
		if !bytes.Equal(m[0xF1], []byte{0x21}) || !bytes.Equal(m[0xF2], []byte{0x21}) || !bytes.Equal(m[0xF5], []byte{0x10}) {
			t.Errorf("CCC versions or data model: %X", data)
		}
		for _, tag := range []uint32{0xF3, 0xF4, 0xF6, 0xF7, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE} {
			if _, ok := m[tag]; !ok {
				t.Errorf("CCC lacks %X", tag)
			}
		}
	})

	t.Run("Discovery", func(t *testing.T) {
		data, sw := c.getData("7E")
		if sw != apdu.SWOK {
			t.Fatal(sw)
		}
		m := tlvs(t, only(t, data, 0x7E))
		if !bytes.Equal(m[0x4F], piv.AID()) || !bytes.Equal(m[0x5F2F], h("4000")) {
			t.Errorf("discovery object %X", data)
		}
	})

	t.Run("KeyHistory", func(t *testing.T) {
		data, sw := c.getData("5FC10C")
		if sw != apdu.SWOK {
			t.Fatal(sw)
		}
		m := tlvs(t, only(t, data, 0x53))
		if !bytes.Equal(m[0xC1], []byte{0}) || !bytes.Equal(m[0xC2], []byte{0}) {
			t.Errorf("key history %X", data)
		}
		if _, ok := m[0xF3]; ok {
			t.Error("key history names an off-card URL")
		}
	})

	for _, tc := range []struct {
		tag  string
		slot piv.Slot
	}{{"5FC105", piv.SlotAuthentication}, {"5FC10A", piv.SlotSignature}} {
		t.Run("certificate "+tc.slot.String(), func(t *testing.T) {
			data, sw := c.getData(tc.tag)
			if sw != apdu.SWOK {
				t.Fatal(sw)
			}
			m := tlvs(t, only(t, data, 0x53))
			if !bytes.Equal(m[0x70], pairs[tc.slot].Certificate) {
				t.Error("certificate differs from the store's")
			}
			if _, err := x509.ParseCertificate(m[0x70]); err != nil {
				t.Error(err)
			}
			if !bytes.Equal(m[0x71], []byte{0}) {
				t.Errorf("CertInfo %X", m[0x71])
			}
			if fe, ok := m[0xFE]; !ok || len(fe) != 0 {
				t.Errorf("FE %X", fe)
			}
		})
	}

	for _, tc := range []struct {
		name string
		cmd  string
		sw   apdu.SW
	}{
		{"empty 9D slot", "00CB3FFF 05 5C035FC10B", apdu.SWFileNotFound},
		{"empty 9E slot", "00CB3FFF 05 5C035FC101", apdu.SWFileNotFound},
		{"printed information", "00CB3FFF 05 5C035FC109", apdu.SWFileNotFound},
		{"security object", "00CB3FFF 05 5C035FC106", apdu.SWFileNotFound},
		{"retired key 1 certificate", "00CB3FFF 05 5C035FC10D", apdu.SWFileNotFound},
		{"biometric group template", "00CB3FFF 04 5C027F61", apdu.SWFileNotFound},
		{"Yubico admin data", "00CB3FFF 05 5C035FFF00", apdu.SWFileNotFound},
		{"with Le", "00CB3FFF 03 5C017E 00", apdu.SWOK},
		{"bad P1 P2", "00CB3FFE 03 5C017E", apdu.SWIncorrectP1P2},
		{"not a tag list", "00CB3FFF 03 5D017E", apdu.SWIncorrectData},
		{"empty tag list", "00CB3FFF 02 5C00", apdu.SWIncorrectData},
		{"four-byte tag", "00CB3FFF 06 5C045FC10201", apdu.SWIncorrectData},
		{"trailing bytes", "00CB3FFF 04 5C017E00", apdu.SWIncorrectData},
		{"truncated", "00CB3FFF 03 5C037E", apdu.SWIncorrectData},
		{"no data", "00CB3FFF", apdu.SWIncorrectData},
		{"GET DATA odd INS CA (Windows PnP)", "00CA7F68 00", apdu.SWINSNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			if sw := c.sendHex(tc.cmd).SW(); sw != tc.sw {
				t.Errorf("SW %v, want %v", sw, tc.sw)
			}
		})
	}
	c.t = t
}

// An object read with a short Le comes back in pieces: Le bytes and 61xx,
// then GET RESPONSE, as OpenSC does when it first reads 8 bytes to learn the
// length.
func TestGetResponse(t *testing.T) {
	pairs := altKeys(t)
	c := newCard(t, newStore(t, subset(pairs, piv.SlotSignature), softstore.Options{}), piv.Options{})
	cert := pairs[piv.SlotSignature].Certificate // RSA 4096: well over 256 bytes
	if len(cert) < 600 {
		t.Fatalf("certificate of %d bytes is too short for this test", len(cert))
	}

	r := c.sendHex("00CB3FFF 05 5C035FC10A 08")
	if len(r.Data()) != 8 || r.SW()&0xFF00 != 0x6100 {
		t.Fatalf("first piece %X", r)
	}
	head := r.Data()
	// GET RESPONSE with a small Le, then the default.
	r = c.sendHex("00C00000 10")
	if len(r.Data()) != 0x10 || r.SW()&0xFF00 != 0x6100 {
		t.Fatalf("second piece %X", r)
	}
	rest, sw := c.collect(r)
	if sw != apdu.SWOK {
		t.Fatal(sw)
	}
	obj := append(append([]byte(nil), head...), rest...)
	if !bytes.Equal(tlvs(t, only(t, obj, 0x53))[0x70], cert) {
		t.Fatal("reassembled certificate differs")
	}

	// Each piece carries at most 256 bytes, and 61xx counts what is left.
	r = c.sendHex("00CB3FFF 05 5C035FC10A")
	total := len(r.Data())
	for r.SW() != apdu.SWOK {
		if len(r.Data()) != 256 {
			t.Fatalf("a middle piece of %d bytes", len(r.Data()))
		}
		left := len(obj) - total
		if want := apdu.SWBytesRemaining | apdu.SW(min(left, 256)&0xFF); r.SW() != want {
			t.Fatalf("SW %v with %d left, want %v", r.SW(), left, want)
		}
		r = c.sendHex("00C00000")
		total += len(r.Data())
	}
	if total != len(obj) {
		t.Fatalf("%d bytes in pieces, object is %d", total, len(obj))
	}

	// An extended Le does not make a response longer than 258 bytes.
	if r := c.sendHex("00CB3FFF 000005 5C035FC10A 0000"); len(r) != 258 || r.SW() != 0x6100 {
		t.Fatalf("extended Le: %d bytes, SW %v", len(r), r.SW())
	}

	for _, tc := range []struct {
		name  string
		setup string // sent first; empty for none
		cmd   string
		sw    apdu.SW
	}{
		{"nothing pending", "", "00C0000000", apdu.SWConditionsNotSatisfied},
		{"another command drops what is pending", "00CB3FFF 05 5C035FC10A", "00A40400 05 A000000308", apdu.SWOK},
		{"bad P1", "00CB3FFF 05 5C035FC10A", "00C0010000", apdu.SWIncorrectP1P2},
		{"chained", "00CB3FFF 05 5C035FC10A", "10C0000000", apdu.SWCommandChainUnsupported},
		{"with data", "00CB3FFF 05 5C035FC10A", "00C00000 01 00", apdu.SWWrongLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.a.Reset()
			if tc.setup != "" {
				c.sendHex(tc.setup)
			}
			if sw := c.sendHex(tc.cmd).SW(); sw != tc.sw {
				t.Errorf("SW %v, want %v", sw, tc.sw)
			}
			// Whatever happened, nothing is pending any more.
			if sw := c.sendHex("00C0000000").SW(); sw != apdu.SWConditionsNotSatisfied && tc.sw == apdu.SWOK && tc.setup != "" {
				t.Errorf("still pending after %s: %v", tc.cmd, sw)
			}
		})
	}
}

func TestStatusWords(t *testing.T) {
	c := newCard(t, newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{}), piv.Options{})
	for _, tc := range []struct {
		name string
		cmd  string
		sw   apdu.SW
		data string
	}{
		{"unknown INS", "00B00000 00", apdu.SWINSNotSupported, ""},
		{"GET CHALLENGE", "0084000008", apdu.SWINSNotSupported, ""},
		{"Yubico attestation", "00F99A0000", apdu.SWINSNotSupported, ""},
		{"Yubico metadata", "00F7009A00", apdu.SWINSNotSupported, ""},
		{"Yubico serial", "00F8000000", apdu.SWINSNotSupported, ""},
		{"Yubico GET VERSION", "00FD000000", apdu.SWOK, "000100"},
		{"Yubico GET VERSION, case 1", "00FD0000", apdu.SWOK, "000100"},
		{"GET VERSION bad P1", "00FD010000", apdu.SWIncorrectP1P2, ""},
		{"proprietary class", "80A40400 05 A000000308", apdu.SWCLANotSupported, ""},
		{"class FF", "FFCA000000", apdu.SWCLANotSupported, ""},
		{"further interindustry class", "40A40400 05 A000000308", apdu.SWCLANotSupported, ""},
		{"secure messaging", "0CA40400 05 A000000308", 0x6882, ""},
		{"logical channel 1", "01A40400 05 A000000308", 0x6881, ""},
		{"too short", "00A404", apdu.SWWrongLength, ""},
		{"empty", "", apdu.SWWrongLength, ""},
		{"Lc beyond the data", "00A40400 08 A000000308", apdu.SWWrongLength, ""},
		{"PUT DATA", "00DB3FFF 05 5C017E5300", apdu.SWSecurityNotSatisfied, ""},
		{"GENERATE ASYMMETRIC KEY PAIR", "0047009A 05 AC03800111", apdu.SWSecurityNotSatisfied, ""},
		{"extended data longer than the limit", "0087079A 001001" + strings.Repeat("00", 0x1001), apdu.SWWrongLength, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			r := c.sendHex(tc.cmd)
			if r.SW() != tc.sw {
				t.Errorf("SW %v, want %v", r.SW(), tc.sw)
			}
			if !bytes.Equal(r.Data(), h(tc.data)) {
				t.Errorf("data %X, want %s", r.Data(), tc.data)
			}
		})
	}
}

func TestChaining(t *testing.T) {
	pairs := altKeys(t) // 9E: P-256, no PIN needed
	c := newCard(t, newStore(t, subset(pairs, piv.SlotCardAuthentication), softstore.Options{}), piv.Options{})
	piece := strings.Repeat("AB", 200)
	// A GENERAL AUTHENTICATE signing a 32-byte digest with 9E, split after
	// the first 22 bytes: each half alone is malformed.
	first, last := "7C24 8200 8120"+strings.Repeat("11", 16), strings.Repeat("22", 16)
	for _, tc := range []struct {
		name string
		cmds []string
		sws  []apdu.SW
	}{
		{"pieces are acknowledged", []string{"1087119E C8" + piece, "1087119E C8" + piece}, []apdu.SW{apdu.SWOK, apdu.SWOK}},
		{"a finished chain is one command", []string{"1087119E 16" + first, "0087119E 10" + last + "00"}, []apdu.SW{apdu.SWOK, apdu.SWOK}},
		{"the last piece alone", []string{"0087119E 10" + last}, []apdu.SW{apdu.SWIncorrectData}},
		{"a piece with other parameters starts over", []string{"1087119E 16" + first, "1087119A 02 0000", "0087119E 10" + last}, []apdu.SW{apdu.SWOK, apdu.SWOK, apdu.SWIncorrectData}},
		{"a chain growing past the limit is dropped", []string{
			"1087119E 00 0800" + strings.Repeat("00", 0x800),
			"1087119E 00 0800" + strings.Repeat("00", 0x800),
			"1087119E 01 00",
			"0087119E 10" + last,
		}, []apdu.SW{apdu.SWOK, apdu.SWOK, apdu.SWWrongLength, apdu.SWIncorrectData}},
		{"another command ends the chain", []string{"1087119E 16" + first, "00CB3FFF 03 5C017E", "0087119E 10" + last}, []apdu.SW{apdu.SWOK, apdu.SWOK, apdu.SWIncorrectData}},
		{"chained VERIFY", []string{"10200080 08 31323334FFFFFFFF"}, []apdu.SW{apdu.SWCommandChainUnsupported}},
		{"chained GET DATA", []string{"10CB3FFF 03 5C017E"}, []apdu.SW{apdu.SWCommandChainUnsupported}},
		{"chained SELECT", []string{"10A40400 05 A000000308"}, []apdu.SW{apdu.SWCommandChainUnsupported}},
		{"chained PUT DATA", []string{"10DB3FFF 05 5C017E5300"}, []apdu.SW{apdu.SWSecurityNotSatisfied}},
		{"chained unknown INS", []string{"10B00000 01 00"}, []apdu.SW{apdu.SWINSNotSupported}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.a.Reset()
			for i, cmd := range tc.cmds {
				if sw := c.sendHex(cmd).SW(); sw != tc.sws[i] {
					t.Fatalf("command %d: SW %v, want %v", i, sw, tc.sws[i])
				}
			}
		})
	}
}

// Reset logs out and drops partial commands and responses.
func TestReset(t *testing.T) {
	pairs := altKeys(t)
	store := newStore(t, subset(pairs, piv.SlotSignature), softstore.Options{})
	c := newCard(t, store, piv.Options{})
	if sw := c.verify("123456"); sw != apdu.SWOK {
		t.Fatal(sw)
	}
	if st, _ := store.PINStatus(); !st.LoggedIn {
		t.Fatal("store not logged in after VERIFY")
	}
	if r := c.sendHex("00CB3FFF 05 5C035FC10A"); r.SW()&0xFF00 != 0x6100 {
		t.Fatalf("no pending response: %v", r.SW())
	}
	// Half a signing command for 9C (RSA 4096, algorithm 16).
	c.sendHex("1087169C 06 7C82020682 00")
	c.a.Reset()
	if st, _ := store.PINStatus(); st.LoggedIn {
		t.Error("store still logged in after Reset")
	}
	if sw := c.sendHex("00200080").SW(); sw != 0x63C3 {
		t.Errorf("PIN status after Reset: %v, want 63C3", sw)
	}
	if sw := c.sendHex("00C0000000").SW(); sw != apdu.SWConditionsNotSatisfied {
		t.Errorf("GET RESPONSE after Reset: %v", sw)
	}
	// The chain is gone: the rest alone is a malformed command (with the
	// chain, it would be a complete one, refused for want of a PIN).
	rest := "0087169C 00 0204 8182 0200" + strings.Repeat("00", 512)
	if sw := c.sendHex(rest).SW(); sw != apdu.SWIncorrectData {
		t.Errorf("final piece after Reset: %v", sw)
	}
	c.sendHex("1087169C 06 7C82020682 00")
	if sw := c.sendHex(rest).SW(); sw != apdu.SWSecurityNotSatisfied {
		t.Errorf("whole chain after Reset: %v, want 6982", sw)
	}
	// PowerOn and PowerOff are resets too.
	c.verify("123456")
	c.a.PowerOff()
	if st, _ := store.PINStatus(); st.LoggedIn {
		t.Error("store still logged in after PowerOff")
	}
	if !bytes.Equal(c.a.ATR(), piv.ATR()) {
		t.Error("Applet.ATR differs from ATR")
	}
}

func TestTransmitContext(t *testing.T) {
	c := newCard(t, newStore(t, subset(mainKeys(t), piv.SlotAuthentication), softstore.Options{}), piv.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.a.Transmit(ctx, h("00A4040005A000000308")); !errors.Is(err, context.Canceled) {
		t.Errorf("Transmit with a cancelled context: %v", err)
	}
}
