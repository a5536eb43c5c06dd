package certsrc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"maps"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var testKeys struct {
	once  sync.Once
	p256  *ecdsa.PrivateKey
	p384  *ecdsa.PrivateKey
	p521  *ecdsa.PrivateKey
	rsa2k *rsa.PrivateKey
}

func keys(t *testing.T) {
	testKeys.once.Do(func() {
		testKeys.p256, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		testKeys.p384, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		testKeys.p521, _ = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		testKeys.rsa2k, _ = rsa.GenerateKey(rand.Reader, 2048)
	})
}

type certSpec struct {
	id    byte
	label string
	key   crypto.Signer
	ku    x509.KeyUsage
	eku   []x509.ExtKeyUsage
	oids  []asn1.ObjectIdentifier
	ca    bool
	noID  bool
}

func mkCert(t *testing.T, s certSpec) *certObject {
	t.Helper()
	if s.key == nil {
		s.key = testKeys.p256
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(s.id) + 1), Subject: pkix.Name{CommonName: s.label},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: s.ku, ExtKeyUsage: s.eku, UnknownExtKeyUsage: s.oids,
		BasicConstraintsValid: true, IsCA: s.ca,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.key.Public(), s.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	o := &certObject{id: []byte{s.id}, label: s.label, der: der, cert: c}
	if s.noID {
		o.id = nil
	}
	return o
}

const (
	ds = x509.KeyUsageDigitalSignature
	nr = x509.KeyUsageContentCommitment
	ke = x509.KeyUsageKeyEncipherment
	ka = x509.KeyUsageKeyAgreement
)

var clientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

// mapped returns slot -> label of what mapSlots chose.
func mapped(t *testing.T, certs []*certObject, explicit map[Slot]Selector) map[Slot]string {
	t.Helper()
	as, err := mapSlots(certs, explicit)
	if err != nil {
		t.Fatalf("mapSlots: %v", err)
	}
	out := make(map[Slot]string)
	for s, a := range as {
		out[s] = a.obj.label
	}
	return out
}

func sameMap(a, b map[Slot]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDefaultMapping(t *testing.T) {
	keys(t)
	tests := []struct {
		name  string
		certs []certSpec
		want  map[Slot]string
	}{
		{"PIV-like token", []certSpec{
			{id: 4, label: "cardauth", ku: ds, oids: []asn1.ObjectIdentifier{oidPIVCardAuth}},
			{id: 3, label: "enc", key: testKeys.rsa2k, ku: ke, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}},
			{id: 2, label: "sign", ku: ds | nr, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}},
			{id: 1, label: "auth", ku: ds, oids: []asn1.ObjectIdentifier{oidSmartcardLogon}},
			{id: 9, label: "ca", ku: x509.KeyUsageCertSign, ca: true},
		}, map[Slot]string{SlotAuthentication: "auth", SlotSignature: "sign", SlotKeyManagement: "enc", SlotCardAuthentication: "cardauth"}},
		{"one all-purpose certificate goes to 9A", []certSpec{
			{id: 1, label: "all", ku: ds | nr | ke, eku: clientAuth},
		}, map[Slot]string{SlotAuthentication: "all"}},
		{"no keyUsage extension qualifies for 9A, 9C and 9D", []certSpec{
			{id: 1, label: "any"},
		}, map[Slot]string{SlotAuthentication: "any"}},
		{"the more specialised certificate wins 9A", []certSpec{
			{id: 1, label: "signer", ku: ds | nr}, // no EKU: qualifies 9A and 9C
			{id: 2, label: "auth", ku: ds, eku: clientAuth},
		}, map[Slot]string{SlotAuthentication: "auth", SlotSignature: "signer"}},
		{"ties go to the lower CKA_ID", []certSpec{
			{id: 7, label: "b", ku: ds, eku: clientAuth},
			{id: 5, label: "a", ku: ds, eku: clientAuth},
		}, map[Slot]string{SlotAuthentication: "a"}},
		{"9A and 9D from two dual-use certificates", []certSpec{
			{id: 2, label: "second", ku: ds | ke, eku: clientAuth},
			{id: 1, label: "first", ku: ds | ke, eku: clientAuth},
		}, map[Slot]string{SlotAuthentication: "first", SlotKeyManagement: "second"}},
		{"EC key agreement goes to 9D", []certSpec{
			{id: 1, label: "ecdh", key: testKeys.p384, ku: ka},
		}, map[Slot]string{SlotKeyManagement: "ecdh"}},
		{"digitalSignature without client auth EKU is not 9A", []certSpec{
			{id: 1, label: "tls-server", ku: ds, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		}, map[Slot]string{}},
		{"unsupported keys, CA certificates and certificates without CKA_ID are skipped", []certSpec{
			{id: 1, label: "p521", key: testKeys.p521, ku: ds, eku: clientAuth},
			{id: 2, label: "ca", ku: ds, eku: clientAuth, ca: true},
			{id: 3, label: "noid", ku: ds, eku: clientAuth, noID: true},
		}, map[Slot]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var certs []*certObject
			for _, s := range tt.certs {
				certs = append(certs, mkCert(t, s))
			}
			got := mapped(t, certs, nil)
			if !sameMap(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			// Deterministic: the order the token lists objects in does
			// not matter.
			for i, j := 0, len(certs)-1; i < j; i, j = i+1, j-1 {
				certs[i], certs[j] = certs[j], certs[i]
			}
			if got2 := mapped(t, certs, nil); !sameMap(got2, got) {
				t.Errorf("reversed input: got %v, want %v", got2, got)
			}
		})
	}
}

func TestExplicitMapping(t *testing.T) {
	keys(t)
	certs := []*certObject{
		mkCert(t, certSpec{id: 1, label: "auth", ku: ds, eku: clientAuth}),
		mkCert(t, certSpec{id: 2, label: "sign", ku: ds | nr}),
		mkCert(t, certSpec{id: 3, label: "twin", ku: ke}),
		mkCert(t, certSpec{id: 4, label: "twin", ku: ke}),
		mkCert(t, certSpec{id: 5, label: "big", key: testKeys.p521, ku: ds}),
	}
	got := mapped(t, certs, map[Slot]Selector{
		SlotAuthentication: {Label: "sign"},
		SlotKeyManagement:  {None: true},
	})
	// 9A explicit, 9D explicitly empty; by default 9C would take "sign",
	// which 9A took, and nothing else has nonRepudiation or cardAuth.
	want := map[Slot]string{SlotAuthentication: "sign"}
	if !sameMap(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got = mapped(t, certs, map[Slot]Selector{SlotSignature: {ID: []byte{1}}, SlotCardAuthentication: {ID: []byte{3}}})
	// Explicit slots first; then "sign" (no EKU) takes 9A by default and
	// the other "twin" 9D.
	want = map[Slot]string{SlotSignature: "auth", SlotCardAuthentication: "twin", SlotAuthentication: "sign", SlotKeyManagement: "twin"}
	if !sameMap(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	for _, tt := range []struct {
		sel  Selector
		want error
	}{
		{Selector{Label: "nothing"}, ErrNotFound},
		{Selector{ID: []byte{0x42}}, ErrNotFound},
		{Selector{Label: "twin"}, ErrMapping},
		{Selector{ID: []byte{5}}, ErrUnsupportedKey},
	} {
		_, err := mapSlots(certs, map[Slot]Selector{SlotAuthentication: tt.sel})
		if !errors.Is(err, tt.want) || !errors.Is(err, ErrMapping) {
			t.Errorf("mapSlots(9A=%s) = %v, want an error wrapping ErrMapping and %v", tt.sel, err, tt.want)
		}
	}
}

func TestParseSlotMapping(t *testing.T) {
	tests := []struct {
		in   string
		slot Slot
		sel  string
	}{
		{"9a=id:01", SlotAuthentication, "id:01"},
		{"9A=id:a1:B2", SlotAuthentication, "id:a1b2"},
		{"9c=label:Signing key", SlotSignature, "label:Signing key"},
		{"9c=label:a=b:c", SlotSignature, "label:a=b:c"},
		{" 9d = none", SlotKeyManagement, "none"},
		{"9e=ID:0f", SlotCardAuthentication, "id:0f"},
	}
	for _, tt := range tests {
		slot, sel, err := ParseSlotMapping(tt.in)
		if err != nil || slot != tt.slot || sel.String() != tt.sel {
			t.Errorf("ParseSlotMapping(%q) = %v, %v, %v; want %v, %v", tt.in, slot, sel, err, tt.slot, tt.sel)
		}
	}
	for _, in := range []string{"", "9a", "9b=id:01", "9a=id:", "9a=id:xyz", "9a=label:", "9a=none:x", "9a=serial:1", "9a=01"} {
		if _, _, err := ParseSlotMapping(in); !errors.Is(err, ErrMapping) {
			t.Errorf("ParseSlotMapping(%q) = %v, want ErrMapping", in, err)
		}
	}
}

func TestSlots(t *testing.T) {
	want := []Slot{0x9A, 0x9C, 0x9D, 0x9E}
	if !slices.Equal(Slots, want) || !slices.Equal(slotOrder[:], want) {
		t.Errorf("Slots = %v, want %v", Slots, want)
	}
	for _, s := range want {
		for _, name := range []string{s.String(), strings.ToLower(s.String())} {
			if got, err := ParseSlot(name); got != s || err != nil {
				t.Errorf("ParseSlot(%q) = %v, %v; want %v", name, got, err, s)
			}
		}
	}
	if got := Slot(0x82).String(); got != "82" {
		t.Errorf("Slot(0x82).String() = %q", got)
	}
	for _, name := range []string{"9b", "82", "", "9a ", "0x9a"} {
		if _, err := ParseSlot(name); !errors.Is(err, ErrMapping) {
			t.Errorf("ParseSlot(%q): %v, want ErrMapping", name, err)
		}
	}
}

// Every certificate the mapping leaves out is listed with why, and with the
// slot an explicit mapping could put it in.
func TestLeftOut(t *testing.T) {
	keys(t)
	certs := []*certObject{
		mkCert(t, certSpec{id: 1, label: "self-signed CA, as openssl req -x509 makes", ku: ds | x509.KeyUsageCertSign, ca: true}),
		mkCert(t, certSpec{id: 2, label: "auth", ku: ds, eku: clientAuth}),
		mkCert(t, certSpec{id: 3, label: "auth too", ku: ds, eku: clientAuth}),
		mkCert(t, certSpec{id: 4, label: "P-521", key: testKeys.p521, ku: ds}),
		mkCert(t, certSpec{id: 5, label: "no id", ku: ds, noID: true}),
	}
	s := newStore(Config{})
	if err := s.fill(certs, nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]LeftOut{}
	for _, lo := range s.LeftOut() {
		got[lo.Label] = lo
	}
	for _, c := range []struct {
		label, reason string
		slot          Slot
	}{
		{"self-signed CA, as openssl req -x509 makes", "CA certificate", SlotSignature},
		{"auth too", "hold other certificates", SlotSignature},
		{"P-521", "P-521", 0},
		{"no id", "no CKA_ID", 0},
	} {
		lo, ok := got[c.label]
		if !ok {
			t.Errorf("%q is not listed as left out", c.label)
			continue
		}
		if !strings.Contains(lo.Reason, c.reason) || lo.Slot != c.slot {
			t.Errorf("%q left out because %q, slot %v; want a reason with %q and slot %v", c.label, lo.Reason, lo.Slot, c.reason, c.slot)
		}
	}
	if _, ok := got["auth"]; ok || len(got) != 4 {
		t.Errorf("left out: %v", slices.Collect(maps.Keys(got)))
	}
	// Placed explicitly, the CA certificate is taken.
	if err := s.fill(certs, map[Slot]Selector{SlotAuthentication: {ID: []byte{1}}}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Certificate(SlotAuthentication); err != nil || c.Subject.CommonName != "self-signed CA, as openssl req -x509 makes" {
		t.Fatalf("--slot 9a=id:01: %v, %v", c, err)
	}
}
