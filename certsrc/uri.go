package certsrc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadURI is wrapped by every error ParseURI returns for a string that is
// not a well-formed PKCS#11 URI.
var ErrBadURI = errors.New("certsrc: bad PKCS#11 URI")

// ErrPINValue is wrapped by the error ParseURI returns for a URI that carries
// a pin-value attribute. A PIN on a command line shows up in ps(1), in shell
// history and in logs, so vscardkit refuses it: the guest sends the PIN with
// VERIFY, and a PIN the host must know comes from a pin-source file.
var ErrPINValue = errors.New("certsrc: a PKCS#11 URI must not carry the PIN (pin-value): it would be visible in the process list and shell history; let the guest send it with VERIFY, or use pin-source")

// maxURILen bounds the length of a URI ParseURI accepts.
const maxURILen = 64 << 10

// Object types the type attribute may name (RFC 7512 section 2.3).
const (
	TypePublic    = "public"
	TypePrivate   = "private"
	TypeCert      = "cert"
	TypeSecretKey = "secret-key"
	TypeData      = "data"
)

// Version is a library version (the library-version attribute).
type Version struct {
	Major, Minor byte
}

// String formats v as MAJOR.MINOR.
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Attribute is an attribute of a URI that vscardkit does not interpret (a
// vendor-specific attribute), kept so that String reproduces it.
type Attribute struct {
	Name  string
	Value string // decoded
}

// URI is a parsed PKCS#11 URI (RFC 7512). String fields hold decoded values;
// an empty field is an absent attribute (as in p11-kit, "serial=" matches
// any serial number).
type URI struct {
	// Token attributes, matched against CK_TOKEN_INFO.
	Token        string // token: the token label
	Manufacturer string // manufacturer: the token's manufacturerID
	Serial       string // serial: the token's serialNumber
	Model        string // model: the token's model

	// Slot attributes, matched against CK_SLOT_INFO and the slot ID.
	SlotDescription  string  // slot-description
	SlotManufacturer string  // slot-manufacturer
	SlotID           *uint64 // slot-id; nil when absent

	// Library attributes, matched against CK_INFO.
	LibraryManufacturer string   // library-manufacturer
	LibraryDescription  string   // library-description
	LibraryVersion      *Version // library-version; nil when absent

	// Object attributes. For a Store they restrict which certificates are
	// considered: ID and Object match the certificate's CKA_ID and CKA_LABEL.
	Object string // object: CKA_LABEL
	ID     []byte // id: CKA_ID
	Type   string // type: one of the Type constants

	// Query attributes.
	ModulePath string // module-path: the module's file, or a directory holding it
	ModuleName string // module-name: a module name without "lib" and ".so"
	PINSource  string // pin-source: where a PIN may be read from; certsrc does not read it

	// PathVendor and QueryVendor hold the attributes of the path and of
	// the query that RFC 7512 does not define, in their order. A URI with
	// an unknown path attribute matches no token (RFC 7512 section 2.4), so
	// Open refuses it; unknown query attributes are ignored.
	PathVendor  []Attribute
	QueryVendor []Attribute
}

// ParseURI parses a PKCS#11 URI such as
//
//	pkcs11:token=alice?module-path=/usr/lib/softhsm/libsofthsm2.so
//
// following RFC 7512 and p11-kit's conventions: the scheme is
// case-insensitive, attribute names are case-sensitive, values are
// percent-decoded (hex digits of either case), whitespace anywhere in the
// string is ignored (so a URI may be wrapped), and a standard attribute may
// appear only once. pin-source (and p11-kit's pinfile) is accepted in the
// path as well as in the query.
//
// A URI with a pin-value attribute is refused with an error wrapping
// ErrPINValue. Errors never repeat a pin-value, and quote other values only
// where they are short enumerations (type, slot-id, library-version).
func ParseURI(s string) (*URI, error) {
	if len(s) > maxURILen {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadURI, len(s), maxURILen)
	}
	s = stripSpace(s)
	const scheme = "pkcs11:"
	if len(s) < len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		return nil, fmt.Errorf("%w: it must start with %q", ErrBadURI, scheme)
	}
	s = s[len(scheme):]
	path, query, hasQuery := strings.Cut(s, "?")
	u := &URI{}
	seen := make(map[string]bool)
	if path != "" {
		for i, seg := range strings.Split(path, ";") {
			if err := u.parseAttr(seg, i, false, seen); err != nil {
				return nil, err
			}
		}
	}
	if hasQuery && query != "" {
		for i, seg := range strings.Split(query, "&") {
			if err := u.parseAttr(seg, i, true, seen); err != nil {
				return nil, err
			}
		}
	}
	return u, nil
}

// stripSpace removes ASCII whitespace, which RFC 7512 URIs may be wrapped
// with and which p11-kit ignores.
func stripSpace(s string) string {
	if !strings.ContainsAny(s, " \t\n\r\v\f") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func (u *URI) parseAttr(seg string, index int, inQuery bool, seen map[string]bool) error {
	part := "path"
	if inQuery {
		part = "query"
	}
	name, raw, ok := strings.Cut(seg, "=")
	if !ok || name == "" {
		if seg == "" {
			return fmt.Errorf("%w: empty attribute %d in the %s", ErrBadURI, index+1, part)
		}
		return fmt.Errorf("%w: attribute %d in the %s is not name=value", ErrBadURI, index+1, part)
	}
	if !validName(name) {
		return fmt.Errorf("%w: attribute %d in the %s has an invalid name (letters, digits, '-' and '_' only)", ErrBadURI, index+1, part)
	}
	// Refuse a PIN before looking at its value: the value must not reach
	// any error message.
	if name == "pin-value" {
		return ErrPINValue
	}
	if name == "pinfile" { // p11-kit's older name
		name = "pin-source"
	}
	std := isStandard(name, inQuery)
	if std {
		if seen[name] {
			return fmt.Errorf("%w: attribute %q appears more than once", ErrBadURI, name)
		}
		seen[name] = true
	}
	v, err := pctDecode(raw)
	if err != nil {
		return fmt.Errorf("%w: attribute %q: %v", ErrBadURI, name, err)
	}
	switch name {
	case "token":
		u.Token = v
	case "manufacturer":
		u.Manufacturer = v
	case "serial":
		u.Serial = v
	case "model":
		u.Model = v
	case "slot-description":
		u.SlotDescription = v
	case "slot-manufacturer":
		u.SlotManufacturer = v
	case "library-manufacturer":
		u.LibraryManufacturer = v
	case "library-description":
		u.LibraryDescription = v
	case "object":
		u.Object = v
	case "id":
		if v != "" {
			u.ID = []byte(v)
		}
	case "type":
		switch v {
		case TypePublic, TypePrivate, TypeCert, TypeSecretKey, TypeData:
			u.Type = v
		case "":
		default:
			return fmt.Errorf("%w: type %q is not one of public, private, cert, secret-key, data", ErrBadURI, clip(v))
		}
	case "slot-id":
		if v == "" {
			break
		}
		if !allDigits(v) {
			return fmt.Errorf("%w: slot-id %q is not a decimal number", ErrBadURI, clip(v))
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: slot-id %q is out of range", ErrBadURI, clip(v))
		}
		u.SlotID = &n
	case "library-version":
		if v == "" {
			break
		}
		ver, err := parseVersion(v)
		if err != nil {
			return fmt.Errorf("%w: library-version %q: %v", ErrBadURI, clip(v), err)
		}
		u.LibraryVersion = &ver
	case "pin-source":
		u.PINSource = v
	case "module-name":
		if !inQuery {
			return u.vendor(name, v, inQuery)
		}
		u.ModuleName = v
	case "module-path":
		if !inQuery {
			return u.vendor(name, v, inQuery)
		}
		u.ModulePath = v
	default:
		return u.vendor(name, v, inQuery)
	}
	return nil
}

func (u *URI) vendor(name, v string, inQuery bool) error {
	a := Attribute{Name: name, Value: v}
	if inQuery {
		u.QueryVendor = append(u.QueryVendor, a)
	} else {
		u.PathVendor = append(u.PathVendor, a)
	}
	return nil
}

// isStandard reports whether name is an attribute RFC 7512 defines for that
// part of the URI (pin-source is also accepted in the path, as p11-kit does).
func isStandard(name string, inQuery bool) bool {
	switch name {
	case "pin-source":
		return true
	case "module-name", "module-path":
		return inQuery
	case "token", "manufacturer", "serial", "model",
		"slot-description", "slot-manufacturer", "slot-id",
		"library-manufacturer", "library-description", "library-version",
		"object", "id", "type":
		return !inQuery
	}
	return false
}

// vendorName reports whether name can stand as a vendor attribute in that
// part of a URI (and so survive a round trip through String and ParseURI).
func vendorName(name string, inQuery bool) bool {
	return name != "" && validName(name) && !isStandard(name, inQuery) &&
		name != "pin-value" && name != "pinfile" && name != "pin-source"
}

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func parseVersion(s string) (Version, error) {
	maj, min, hasMin := strings.Cut(s, ".")
	if !allDigits(maj) || hasMin && !allDigits(min) {
		return Version{}, errors.New("want MAJOR or MAJOR.MINOR in decimal")
	}
	a, err := strconv.ParseUint(maj, 10, 8)
	if err != nil {
		return Version{}, errors.New("major version out of range")
	}
	var b uint64
	if hasMin {
		if b, err = strconv.ParseUint(min, 10, 8); err != nil {
			return Version{}, errors.New("minor version out of range")
		}
	}
	return Version{Major: byte(a), Minor: byte(b)}, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// pctDecode decodes percent-escapes. Control characters must be escaped.
// Errors give positions, never the value.
func pctDecode(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] == 0x7f {
				return "", fmt.Errorf("unescaped control character at offset %d", i)
			}
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return "", fmt.Errorf("truncated percent-escape at offset %d", i)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("invalid percent-escape at offset %d", i)
			}
			b = append(b, hi<<4|lo)
			i += 2
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("unescaped control character at offset %d", i)
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}

// String formats u as a PKCS#11 URI that ParseURI reads back to an equal
// URI. Attributes come in p11-kit's order (library, slot, token, object,
// then pin-source, module-name, module-path), followed by vendor
// attributes. Values are percent-encoded except for RFC 3986 unreserved
// characters (and, in the query, ':' and '/', so that paths stay
// readable); id is always fully encoded. Escapes use upper-case hex.
func (u *URI) String() string {
	var b strings.Builder
	b.WriteString("pkcs11:")
	sep := byte(0)
	add := func(name, value string, query, force bool) {
		if sep != 0 {
			b.WriteByte(sep)
		}
		b.WriteString(name)
		b.WriteByte('=')
		pctEncode(&b, value, query, force)
		if query {
			sep = '&'
		} else {
			sep = ';'
		}
	}
	str := func(name, value string) {
		if value != "" {
			add(name, value, false, false)
		}
	}
	str("library-description", u.LibraryDescription)
	str("library-manufacturer", u.LibraryManufacturer)
	if u.LibraryVersion != nil {
		add("library-version", u.LibraryVersion.String(), false, false)
	}
	str("slot-description", u.SlotDescription)
	str("slot-manufacturer", u.SlotManufacturer)
	if u.SlotID != nil {
		add("slot-id", strconv.FormatUint(*u.SlotID, 10), false, false)
	}
	str("model", u.Model)
	str("manufacturer", u.Manufacturer)
	str("serial", u.Serial)
	str("token", u.Token)
	if len(u.ID) > 0 {
		add("id", string(u.ID), false, true)
	}
	str("object", u.Object)
	str("type", u.Type)
	for _, a := range u.PathVendor {
		if !vendorName(a.Name, false) {
			continue // cannot be represented as a vendor attribute
		}
		add(a.Name, a.Value, false, false)
	}
	sep = '?'
	q := func(name, value string) {
		if value != "" {
			add(name, value, true, false)
		}
	}
	q("pin-source", u.PINSource)
	q("module-name", u.ModuleName)
	q("module-path", u.ModulePath)
	for _, a := range u.QueryVendor {
		if !vendorName(a.Name, true) {
			continue
		}
		add(a.Name, a.Value, true, false)
	}
	return b.String()
}

// pctEncode writes s with everything but unreserved characters (and ':'
// and '/' in a query value) percent-encoded; force encodes every byte.
func pctEncode(b *strings.Builder, s string, query, force bool) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		keep := !force && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || query && (c == ':' || c == '/'))
		if keep {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
}
