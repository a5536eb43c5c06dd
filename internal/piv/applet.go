package piv

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/vscardkit/vscardkit/internal/apdu"
)

// Instruction bytes (SP 800-73-4 part 2, section 3; ISO/IEC 7816-4).
const (
	insSelect            = 0xA4
	insGetData           = 0xCB
	insVerify            = apdu.INSVerify
	insChangeReference   = apdu.INSChangeReferenceData
	insResetRetryCounter = apdu.INSResetRetryCounter
	insGeneralAuth       = apdu.INSGeneralAuthenticate
	insPutData           = 0xDB
	insGenerateKeyPair   = 0x47
	insGetResponse       = apdu.INSGetResponse
	// insGetVersion is Yubico's GET VERSION extension, which piv-go's Open
	// requires.
	insGetVersion = 0xFD
)

// claChaining is the command-chaining bit of the class byte (ISO/IEC 7816-4
// section 5.4.1).
const claChaining = 0x10

// MaxCommandData bounds the data of one command, chained or extended: the
// longest command a PIV client sends is GENERAL AUTHENTICATE with a 512-byte
// RSA 4096 block. A chain that would grow past it is dropped with 6700.
const MaxCommandData = 4096

// maxResponseData is the most data bytes in one response: with the status
// word, 258 bytes, well within the 374 that QEMU's usb-ccid carries.
const maxResponseData = apdu.MaxShortData

// getVersion is what GET VERSION (INS FD, a Yubico extension) reports:
// 0.1.0. It is below 5.3.0 on purpose: piv-go then learns a key's PIN policy
// by asking for an attestation (INS F9), gets 6D00, and assumes "PIN
// always", which this applet satisfies.
func getVersion() []byte { return []byte{0, 1, 0} }

// Options configures an Applet. The zero value is ready to use.
type Options struct {
	// Label is the application label in the SELECT answer (tag 50). Empty
	// means DefaultLabel.
	Label string

	// SignaturePINOnce lets the digital signature key (9C) be used for as
	// long as the PIN stays verified, like 9A and 9D. By default 9C follows
	// SP 800-73-4's "PIN Always" rule: every use needs a successful VERIFY
	// since the previous use.
	SignaturePINOnce bool

	// Logger receives debug records (instruction, status word, lengths;
	// never command data, never a PIN). Nil means no logging.
	Logger *slog.Logger
}

// DefaultLabel is the application label when Options.Label is empty.
const DefaultLabel = "vscardkit virtual PIV"

// Applet is the PIV Card Application (NIST SP 800-73-4) over a Store: it
// answers command APDUs the way a PIV card does. Its methods are safe for
// concurrent use; commands are processed one at a time.
//
// An Applet also has the methods of a vpcd card handler (ATR, PowerOn,
// PowerOff, Reset, Transmit), so it can be served to pcscd directly.
type Applet struct {
	mu    sync.Mutex
	store Store
	opts  Options
	log   *slog.Logger
	id    identity

	// Security status.
	verified bool // the PIN was verified and nothing reset it since
	sigFresh bool // a VERIFY succeeded since 9C was last used

	chain chain
	out   apdu.Splitter
}

// chain is a command being received in pieces (CLA bit 0x10).
type chain struct {
	active           bool
	cla, ins, p1, p2 byte
	data             []byte
}

// New returns an applet presenting store, selected and with no PIN verified.
// It calls store.Serial once, to derive the CHUID's GUID and the CCC's card
// identifier.
func New(store Store, opts Options) *Applet {
	if opts.Label == "" {
		opts.Label = DefaultLabel
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Applet{store: store, opts: opts, log: log, id: deriveIdentity(store.Serial())}
	a.out.Max = maxResponseData
	return a
}

// ATR returns the card's Answer To Reset (see the package function ATR).
func (a *Applet) ATR() []byte { return ATR() }

// PowerOn is a card reset.
func (a *Applet) PowerOn() { a.Reset() }

// PowerOff is a card reset.
func (a *Applet) PowerOff() { a.Reset() }

// Reset is a card reset or removal: the PIN is no longer verified (the store
// is logged out), and any partly received command or partly sent response is
// dropped. The PIV application stays selected, as after any reset.
func (a *Applet) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resetSecurity()
	a.dropChain()
	a.out.Reset()
}

func (a *Applet) resetSecurity() {
	a.verified, a.sigFresh = false, false
	if err := a.store.Logout(); err != nil {
		a.log.Debug("piv: logout failed", "err", err)
	}
}

func (a *Applet) dropChain() {
	clear(a.chain.data)
	a.chain = chain{data: a.chain.data[:0]}
}

// Transmit processes the command APDU cmd and returns the response APDU
// (data, then SW1 SW2; never more than 258 bytes). Every command gets a
// response, malformed ones included; the error is non-nil only when ctx is
// done before the command is processed. cmd is not retained.
func (a *Applet) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	resp := a.transmit(cmd)
	if a.log.Enabled(ctx, slog.LevelDebug) && len(cmd) >= 4 {
		a.log.Debug("piv: command", "cla", cmd[0], "ins", cmd[1], "p1", cmd[2], "p2", cmd[3],
			"len", len(cmd), "sw", apdu.Response(resp).SW().String(), "resplen", len(resp))
	}
	return resp, nil
}

func (a *Applet) transmit(raw []byte) apdu.Response {
	c, err := apdu.Parse(raw)
	if err != nil {
		a.dropChain()
		a.out.Reset()
		return apdu.SWWrongLength.Bytes()
	}
	switch {
	case c.CLA&0xE0 != 0: // proprietary classes and further interindustry classes
		return apdu.SWCLANotSupported.Bytes()
	case c.CLA&0x0C != 0:
		return swSecureMessagingUnsupported.Bytes()
	case c.CLA&0x03 != 0:
		return swLogicalChannelUnsupported.Bytes()
	}
	if c.INS == insGetResponse {
		return a.getResponse(c)
	}
	a.out.Reset()
	if len(c.Data) > MaxCommandData {
		a.dropChain()
		return apdu.SWWrongLength.Bytes()
	}

	if c.CLA&claChaining != 0 {
		return a.chainPiece(c)
	}
	if a.chain.active {
		if a.chain.cla == c.CLA && a.chain.ins == c.INS && a.chain.p1 == c.P1 && a.chain.p2 == c.P2 {
			if len(a.chain.data)+len(c.Data) > MaxCommandData {
				a.dropChain()
				return apdu.SWWrongLength.Bytes()
			}
			a.chain.data = append(a.chain.data, c.Data...)
			c.Data = a.chain.data
			defer a.dropChain()
		} else {
			// The client gave up on its chain: forget it and answer this
			// command on its own.
			a.dropChain()
		}
	}
	return a.dispatch(c)
}

// More status words (ISO/IEC 7816-4 table 6).
const (
	swLogicalChannelUnsupported  apdu.SW = 0x6881
	swSecureMessagingUnsupported apdu.SW = 0x6882
)

func (a *Applet) getResponse(c apdu.Command) apdu.Response {
	switch {
	case c.CLA&claChaining != 0:
		a.out.Reset()
		return apdu.SWCommandChainUnsupported.Bytes()
	case c.P1 != 0 || c.P2 != 0:
		a.out.Reset()
		return apdu.SWIncorrectP1P2.Bytes()
	case c.Data != nil:
		a.out.Reset()
		return apdu.SWWrongLength.Bytes()
	}
	resp, _ := a.out.Next(c)
	return resp
}

// chainPiece takes one non-final piece of a chained command.
func (a *Applet) chainPiece(c apdu.Command) apdu.Response {
	cla := c.CLA &^ claChaining
	switch c.INS {
	case insGeneralAuth:
	case insPutData, insGenerateKeyPair:
		a.dropChain()
		return apdu.SWSecurityNotSatisfied.Bytes()
	default:
		a.dropChain()
		if !knownINS(c.INS) {
			return apdu.SWINSNotSupported.Bytes()
		}
		return apdu.SWCommandChainUnsupported.Bytes()
	}
	if a.chain.active && (a.chain.cla != cla || a.chain.ins != c.INS || a.chain.p1 != c.P1 || a.chain.p2 != c.P2) {
		a.dropChain()
	}
	if len(a.chain.data)+len(c.Data) > MaxCommandData {
		a.dropChain()
		return apdu.SWWrongLength.Bytes()
	}
	a.chain.active = true
	a.chain.cla, a.chain.ins, a.chain.p1, a.chain.p2 = cla, c.INS, c.P1, c.P2
	a.chain.data = append(a.chain.data, c.Data...)
	return apdu.SWOK.Bytes()
}

func knownINS(ins byte) bool {
	switch ins {
	case insSelect, insGetData, insVerify, insChangeReference, insResetRetryCounter,
		insGeneralAuth, insPutData, insGenerateKeyPair, insGetVersion, insGetResponse:
		return true
	}
	return false
}

func (a *Applet) dispatch(c apdu.Command) apdu.Response {
	switch c.INS {
	case insSelect:
		return a.selectApp(c)
	case insGetData:
		return a.getData(c)
	case insVerify:
		return a.verify(c)
	case insChangeReference:
		return a.changeReference(c)
	case insResetRetryCounter:
		return a.resetRetryCounter(c)
	case insGeneralAuth:
		return a.generalAuthenticate(c)
	case insPutData, insGenerateKeyPair:
		// Both need the card management key (9B), which nobody can
		// authenticate with: the card's contents come from the store.
		return apdu.SWSecurityNotSatisfied.Bytes()
	case insGetVersion:
		if c.P1 != 0 || c.P2 != 0 {
			return apdu.SWIncorrectP1P2.Bytes()
		}
		return a.respond(getVersion(), c.Ne)
	}
	return apdu.SWINSNotSupported.Bytes()
}

// respond answers data with 9000, in pieces when it is longer than the
// command's Ne or than one response may be (61xx, then GET RESPONSE).
func (a *Applet) respond(data []byte, ne int) apdu.Response {
	first := maxResponseData
	if ne > 0 && ne < first {
		first = ne
	}
	return a.out.StartWithin(data, apdu.SWOK, first)
}

// selectApp is SELECT (SP 800-73-4 part 2, section 3.1.1). The PIV
// application is chosen by its AID or any prefix of it at least as long as
// the RID (Windows sends 9 bytes, piv-go 5, OpenSC 9 then 11). Selecting
// anything else fails with 6A82 and leaves the PIV application selected.
func (a *Applet) selectApp(c apdu.Command) apdu.Response {
	switch c.P1 {
	case 0x04: // by DF name
	case 0x00, 0x01, 0x02, 0x03, 0x08, 0x09: // by file identifier or path: there are no files
		return apdu.SWFileNotFound.Bytes()
	default:
		return apdu.SWIncorrectP1P2.Bytes()
	}
	if c.P2 != 0x00 && c.P2 != 0x0C {
		return apdu.SWIncorrectP1P2.Bytes()
	}
	if len(c.Data) > 0 && (len(c.Data) < ridLen || len(c.Data) > len(aid) || !bytes.HasPrefix(aid[:], c.Data)) {
		return apdu.SWFileNotFound.Bytes()
	}
	if c.P2 == 0x0C { // no response data asked for
		return apdu.SWOK.Bytes()
	}
	return a.respond(appTemplate(a.opts.Label), c.Ne)
}

// getData is GET DATA (SP 800-73-4 part 2, section 3.1.2): P1 P2 3F FF and a
// tag list 5C holding one object tag.
func (a *Applet) getData(c apdu.Command) apdu.Response {
	if c.P1 != 0x3F || c.P2 != 0xFF {
		return apdu.SWIncorrectP1P2.Bytes()
	}
	t, err := readOnlyTLV(c.Data)
	if err != nil || t.tag != 0x5C || len(t.value) == 0 || len(t.value) > 3 {
		return apdu.SWIncorrectData.Bytes()
	}
	var tag uint32
	for _, b := range t.value {
		tag = tag<<8 | uint32(b)
	}
	var obj []byte
	switch tag {
	case tagCHUID:
		obj = chuid(a.id)
	case tagCCC:
		obj = ccc(a.id)
	case tagDiscovery:
		obj = discovery()
	case tagKeyHistory:
		obj = keyHistory()
	default:
		slot, ok := certSlot(tag)
		if !ok {
			return apdu.SWFileNotFound.Bytes()
		}
		der, err := a.store.Certificate(slot)
		switch {
		case errors.Is(err, ErrNotFound) || (err == nil && len(der) == 0):
			return apdu.SWFileNotFound.Bytes()
		case err != nil:
			a.log.Debug("piv: reading a certificate failed", "slot", slot, "err", err)
			return apdu.SWUnknown.Bytes()
		case len(der) > maxCertLen:
			a.log.Debug("piv: certificate too long for a PIV object", "slot", slot, "len", len(der))
			return apdu.SWUnknown.Bytes()
		}
		obj = certObject(der)
	}
	return a.respond(obj, c.Ne)
}
