package vscard

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vscardkit/vscardkit/internal/qemuatr"
)

// MsgType is the type field of a message header (vscard_common.h, enum
// VSCMsgType).
type MsgType uint32

// The nine message types.
const (
	// MsgInit (client <-> host) opens a connection: the client sends it
	// first with its capabilities, the host answers with its own. Payload:
	// see Init.
	MsgInit MsgType = 1
	// MsgError (client <-> host) acknowledges ReaderAdd, ReaderRemove, ATR
	// and CardRemove (code 0 on success), and, from the client, fails the
	// guest's last command. Payload: one big-endian uint32 ErrorCode.
	MsgError MsgType = 2
	// MsgReaderAdd (client -> host) announces a reader; the payload is its
	// UTF-8 name. The host answers Error{0} with the reader id it assigned
	// in the header.
	MsgReaderAdd MsgType = 3
	// MsgReaderRemove (client -> host) withdraws the reader. Empty payload.
	MsgReaderRemove MsgType = 4
	// MsgATR (client -> host) inserts (or resets) the card; the payload is
	// its answer to reset.
	MsgATR MsgType = 5
	// MsgCardRemove (client -> host) removes the card. Empty payload.
	MsgCardRemove MsgType = 6
	// MsgAPDU (client <-> host) carries one APDU: a command from the host, a
	// response from the client.
	MsgAPDU MsgType = 7
	// MsgFlush (host -> client) asks the client to answer FlushComplete once
	// every outstanding APDU is answered. Empty payload. QEMU never sends it.
	MsgFlush MsgType = 8
	// MsgFlushComplete (client -> host) answers Flush. Empty payload.
	MsgFlushComplete MsgType = 9
)

var msgTypeNames = [...]string{
	MsgInit:          "Init",
	MsgError:         "Error",
	MsgReaderAdd:     "ReaderAdd",
	MsgReaderRemove:  "ReaderRemove",
	MsgATR:           "ATR",
	MsgCardRemove:    "CardRemove",
	MsgAPDU:          "APDU",
	MsgFlush:         "Flush",
	MsgFlushComplete: "FlushComplete",
}

func (t MsgType) String() string {
	if t >= MsgInit && t <= MsgFlushComplete {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint32(t))
}

// ErrorCode is the payload of an Error message (vscard_common.h, enum
// VSCErrorCode).
type ErrorCode uint32

// The error codes.
const (
	ErrCodeSuccess              ErrorCode = 0 // VSC_SUCCESS
	ErrCodeGeneral              ErrorCode = 1 // VSC_GENERAL_ERROR
	ErrCodeCannotAddMoreReaders ErrorCode = 2 // VSC_CANNOT_ADD_MORE_READERS
	ErrCodeCardAlreadyInserted  ErrorCode = 3 // VSC_CARD_ALREAY_INSERTED (sic)
)

func (c ErrorCode) String() string {
	switch c {
	case ErrCodeSuccess:
		return "success"
	case ErrCodeGeneral:
		return "general error"
	case ErrCodeCannotAddMoreReaders:
		return "cannot add more readers"
	case ErrCodeCardAlreadyInserted:
		return "card already inserted"
	}
	return fmt.Sprintf("error code %d", uint32(c))
}

// ReaderID is the reader_id field of a message header.
type ReaderID uint32

const (
	// UndefinedReaderID (VSCARD_UNDEFINED_READER_ID) is the reader id of a
	// message about no particular reader: ReaderAdd, and QEMU's Init.
	UndefinedReaderID ReaderID = 0xFFFFFFFF
	// MinimalReaderID (VSCARD_MINIMAL_READER_ID) is the first reader id a
	// host assigns, and in QEMU the only one.
	MinimalReaderID ReaderID = 0
)

func (id ReaderID) String() string {
	if id == UndefinedReaderID {
		return "undefined"
	}
	return fmt.Sprint(uint32(id))
}

// HeaderLen is the length of a message header.
const HeaderLen = 12

// QEMUInputBuffer is the size of QEMU's ccid-card-passthru input buffer
// (VSCARD_IN_SIZE): a message must fit in it whole.
const QEMUInputBuffer = 64 << 10

// MaxPayload is the largest payload QEMU accepts: a message of HeaderLen +
// MaxPayload bytes exactly fills QEMU's input buffer. It is the default
// payload limit of ReadMessage and of Client in both directions.
const MaxPayload = QEMUInputBuffer - HeaderLen

// header is a message header (vscard_common.h, VSCMsgHeader).
type header struct {
	Type     MsgType
	ReaderID ReaderID
	Length   uint32 // payload length, not counting the header
}

// put encodes h into b[:HeaderLen].
func (h header) put(b []byte) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], uint32(h.Type))
	binary.BigEndian.PutUint32(b[4:], uint32(h.ReaderID))
	binary.BigEndian.PutUint32(b[8:], h.Length)
}

// parseHeader decodes the header at the start of b, which holds at least
// HeaderLen bytes.
func parseHeader(b []byte) header {
	return header{
		Type:     MsgType(binary.BigEndian.Uint32(b[0:])),
		ReaderID: ReaderID(binary.BigEndian.Uint32(b[4:])),
		Length:   binary.BigEndian.Uint32(b[8:]),
	}
}

// Message is a whole message: header fields and payload.
type Message struct {
	Type     MsgType
	ReaderID ReaderID
	Payload  []byte
}

// Header returns m's header.
func (m Message) header() header {
	return header{Type: m.Type, ReaderID: m.ReaderID, Length: uint32(len(m.Payload))}
}

// Append appends m's encoding (header and payload) to b.
func (m Message) Append(b []byte) []byte {
	n := len(b)
	b = append(b, make([]byte, HeaderLen)...)
	m.header().put(b[n:])
	return append(b, m.Payload...)
}

func (m Message) String() string {
	return fmt.Sprintf("%v(reader %v, %d bytes)", m.Type, m.ReaderID, len(m.Payload))
}

// ErrMalformed is wrapped by every error about a message that does not
// decode.
var ErrMalformed = errors.New("malformed message")

// Magic is the Init magic, sent as these four ASCII bytes.
const Magic = "VSCD"

// Version is a protocol version: major<<21 | middle<<10 | minor
// (vscard_common.h, MAKE_VERSION).
type Version uint32

// MakeVersion returns the version major.middle.minor. Major and middle are
// 11 bits, minor 10 bits; higher bits are dropped.
func MakeVersion(major, middle, minor uint32) Version {
	return Version((major&0x7FF)<<21 | (middle&0x7FF)<<10 | minor&0x3FF)
}

// CurrentVersion is the version QEMU and libcacard speak: 0.0.2.
var CurrentVersion = MakeVersion(0, 0, 2)

// Major returns the major number.
func (v Version) Major() uint32 { return uint32(v) >> 21 }

// Middle returns the middle number.
func (v Version) Middle() uint32 { return uint32(v) >> 10 & 0x7FF }

// Minor returns the minor number.
func (v Version) Minor() uint32 { return uint32(v) & 0x3FF }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major(), v.Middle(), v.Minor()) }

// Init is the payload of an Init message (vscard_common.h, VSCMsgInit): the
// magic "VSCD", a version, and one or more capability words. The protocol
// defines no capabilities yet; both QEMU and libcacard send a single 0.
type Init struct {
	Magic        [4]byte
	Version      Version
	Capabilities []uint32
}

// DefaultInit is the Init QEMU and libcacard send: magic, version 0.0.2,
// capabilities [0].
func DefaultInit() Init {
	return Init{Magic: [4]byte{'V', 'S', 'C', 'D'}, Version: CurrentVersion, Capabilities: []uint32{0}}
}

// Append appends the Init payload to b. An empty capability list is sent as
// the single word 0, since the receiver expects at least one.
func (in Init) Append(b []byte) []byte {
	b = append(b, in.Magic[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(in.Version))
	if len(in.Capabilities) == 0 {
		return binary.BigEndian.AppendUint32(b, 0)
	}
	for _, c := range in.Capabilities {
		b = binary.BigEndian.AppendUint32(b, c)
	}
	return b
}

// maxCapabilities bounds the capability words ParseInit keeps: a longer
// array is accepted, its tail ignored.
const maxCapabilities = 64

// ParseInit decodes an Init payload. It needs the magic, the version and at
// least one capability word; a longer capability array is accepted (the
// first 64 words are kept), as the protocol requires. Trailing bytes that do
// not make a whole word are an error. ParseInit does not check the magic or
// the version: see Init.Check.
func ParseInit(p []byte) (Init, error) {
	var in Init
	if len(p) < 12 {
		return in, fmt.Errorf("vscard: Init payload of %d bytes, need at least 12: %w", len(p), ErrMalformed)
	}
	if (len(p)-8)%4 != 0 {
		return in, fmt.Errorf("vscard: Init payload of %d bytes is not whole capability words: %w", len(p), ErrMalformed)
	}
	copy(in.Magic[:], p)
	in.Version = Version(binary.BigEndian.Uint32(p[4:]))
	n := min((len(p)-8)/4, maxCapabilities)
	in.Capabilities = make([]uint32, n)
	for i := range n {
		in.Capabilities[i] = binary.BigEndian.Uint32(p[8+4*i:])
	}
	return in, nil
}

// Check reports whether in has the right magic and a compatible version
// (same major number).
func (in Init) Check() error {
	if string(in.Magic[:]) != Magic {
		return fmt.Errorf("vscard: Init magic %q, want %q: %w", in.Magic[:], Magic, ErrMalformed)
	}
	if in.Version.Major() != CurrentVersion.Major() {
		return fmt.Errorf("vscard: peer speaks version %v, incompatible with %v: %w", in.Version, CurrentVersion, ErrVersion)
	}
	return nil
}

// ErrVersion is wrapped by the error for a peer whose major version differs.
var ErrVersion = errors.New("incompatible protocol version")

// AppendError appends an Error payload with code to b.
func AppendError(b []byte, code ErrorCode) []byte {
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

// ParseError decodes an Error payload: one big-endian uint32. Longer
// payloads are accepted and their tail ignored.
func ParseError(p []byte) (ErrorCode, error) {
	if len(p) < 4 {
		return 0, fmt.Errorf("vscard: Error payload of %d bytes, need 4: %w", len(p), ErrMalformed)
	}
	return ErrorCode(binary.BigEndian.Uint32(p)), nil
}

// CheckATR reports whether QEMU's ccid-card-passthru accepts atr: at most 40
// bytes, TS 3B or 3F, and interface bytes consistent with the historical
// byte count. A client can use it to explain a refusal before QEMU does.
func CheckATR(atr []byte) error {
	if len(atr) > qemuatr.MaxLen {
		return fmt.Errorf("vscard: ATR of %d bytes is longer than the %d QEMU accepts: %w", len(atr), qemuatr.MaxLen, ErrMalformed)
	}
	if !qemuatr.Check(atr, 0, len(atr)) {
		return fmt.Errorf("vscard: ATR %X is inconsistent (QEMU refuses it): %w", atr, ErrMalformed)
	}
	return nil
}
