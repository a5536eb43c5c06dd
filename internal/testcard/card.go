package testcard

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"sync"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/vpcd"
)

// ATRs the card can present. ATRT1 is the default.
var (
	// ATRT1 offers T=1 only: TS 3B, T0 8B (TD1 follows, 11 historical
	// bytes), TD1 01 (T=1), historical bytes 00 (status at the end) 56
	// "vscard" (card issuer's data, compact TLV) 00 90 00 (status), TCK.
	ATRT1 = withTCK([]byte{0x3B, 0x8B, 0x01}, histBytes)
	// ATRT0 offers T=0 only (no interface bytes, so no TCK).
	ATRT0 = append([]byte{0x3B, 0x0B}, histBytes...)
	// ATRDual offers T=0 (TD1 80) and T=1 (TD2 01).
	ATRDual = withTCK([]byte{0x3B, 0x8B, 0x80, 0x01}, histBytes)
)

var histBytes = []byte{0x00, 0x56, 'v', 's', 'c', 'a', 'r', 'd', 0x00, 0x90, 0x00}

// withTCK returns prefix+hist followed by the check byte: the XOR of every
// byte from T0 on (ISO/IEC 7816-3 section 8.2.5).
func withTCK(prefix, hist []byte) []byte {
	out := append(append([]byte(nil), prefix...), hist...)
	var tck byte
	for _, b := range out[1:] {
		tck ^= b
	}
	return append(out, tck)
}

// TestAID is the application SELECT accepts.
var TestAID = []byte{0xF0, 'v', 's', 'c', 'k', 'i', 't'}

// Instruction bytes of the proprietary commands (CLA 80).
const (
	CLAProprietary = 0x80
	INSEcho        = 0x10
	INSLong        = 0x12
	INSDigest      = 0x14
	INSChainedLong = 0x16
	INSStatus      = 0x18
	INSSelect      = 0xA4
)

// DefaultLongLen is the length LONG and CHAINED LONG return for P1P2 0000.
const DefaultLongLen = 1000

// Pattern returns the n bytes LONG and CHAINED LONG return: byte i is
// i*7+3 (mod 256), which never repeats with a period shorter than 256.
func Pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return p
}

// Options configures a Card. The zero value is the default card.
type Options struct {
	// ATR replaces ATRT1.
	ATR []byte
	// Logger receives the vpcd connection's records. Nil means none.
	Logger *slog.Logger
}

// Card is the test card. Its methods are safe for concurrent use.
type Card struct {
	log *slog.Logger

	mu        sync.Mutex
	atr       []byte
	program   map[string][]byte
	selected  bool
	split     apdu.Splitter
	transmits int
	powerOns  int
	resets    int
	muted     chan struct{} // non-nil while mute; closed on unmute

	conn *vpcd.Card // while inserted
}

// New returns a card that is not in any reader yet.
func New(opts Options) *Card {
	atr := opts.ATR
	if atr == nil {
		atr = ATRT1
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Card{atr: append([]byte(nil), atr...), log: log, program: map[string][]byte{}}
}

// SetATR changes the ATR the card reports from now on (vpcd reads it at
// every presence poll; pcscd uses the one it read at insertion).
func (c *Card) SetATR(atr []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.atr = append([]byte(nil), atr...)
}

// Program makes the card answer the exact command cmd with resp, before
// consulting its table.
func (c *Card) Program(cmd, resp []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.program[string(cmd)] = append([]byte(nil), resp...)
}

// ClearProgram forgets every Program entry.
func (c *Card) ClearProgram() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.program)
}

// Transmits returns how many APDUs the card has received.
func (c *Card) Transmits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transmits
}

// PowerOns returns how many power-on requests the card has received.
func (c *Card) PowerOns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.powerOns
}

// Resets returns how many reset requests the card has received.
func (c *Card) Resets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resets
}

// Selected reports whether TestAID is selected.
func (c *Card) Selected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.selected
}

// Mute makes the card stop answering APDUs (true) or answer again (false).
// A command that arrived while mute is answered once the card is unmuted,
// or dropped when the card is removed.
func (c *Card) Mute(mute bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case mute && c.muted == nil:
		c.muted = make(chan struct{})
	case !mute && c.muted != nil:
		close(c.muted)
		c.muted = nil
	}
}

// ATR implements vpcd.Handler.
func (c *Card) ATR() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.atr...)
}

// PowerOn implements vpcd.Handler.
func (c *Card) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powerOns++
	c.resetState()
}

// PowerOff implements vpcd.Handler.
func (c *Card) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetState()
}

// Reset implements vpcd.Handler.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resets++
	c.resetState()
}

func (c *Card) resetState() {
	c.selected = false
	c.split.Reset()
}

// Transmit implements vpcd.Handler: it answers cmd from the program and the
// table.
func (c *Card) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	c.mu.Lock()
	c.transmits++
	muted := c.muted
	c.mu.Unlock()
	if muted != nil {
		select {
		case <-muted:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if resp, ok := c.program[string(cmd)]; ok {
		return append([]byte(nil), resp...), nil
	}
	return c.answer(cmd), nil
}

// answer runs the table; c.mu is held.
func (c *Card) answer(raw []byte) []byte {
	cmd, err := apdu.Parse(raw)
	if err != nil {
		return apdu.SWWrongLength.Bytes()
	}
	if apdu.IsGetResponse(cmd) {
		r, _ := c.split.Next(cmd)
		return r
	}
	c.split.Reset()
	switch cmd.CLA {
	case 0x00:
		if cmd.INS != INSSelect {
			return apdu.SWINSNotSupported.Bytes()
		}
		if cmd.P1 != 0x04 || cmd.P2 != 0x00 {
			return apdu.SWIncorrectP1P2.Bytes()
		}
		if string(cmd.Data) != string(TestAID) {
			c.selected = false
			return apdu.SWFileNotFound.Bytes()
		}
		c.selected = true
		return apdu.SWOK.Bytes()
	case CLAProprietary:
	default:
		return apdu.SWCLANotSupported.Bytes()
	}
	switch cmd.INS {
	case INSEcho:
		return apdu.Append(cmd.Data, apdu.SWOK)
	case INSLong:
		n := longLen(cmd)
		if n > vpcd.MaxPayload-2 {
			return apdu.SWWrongLength.Bytes()
		}
		return apdu.Append(Pattern(n), apdu.SWOK)
	case INSDigest:
		sum := sha256.Sum256(cmd.Data)
		return apdu.Append(sum[:], apdu.SWOK)
	case INSChainedLong:
		first := cmd.Ne
		if first == 0 || first > apdu.MaxShortData {
			first = apdu.MaxShortData
		}
		return c.split.StartWithin(Pattern(longLen(cmd)), apdu.SWOK, first)
	case INSStatus:
		out := binary.BigEndian.AppendUint32(nil, uint32(c.transmits))
		sel := byte(0)
		if c.selected {
			sel = 1
		}
		return apdu.Append(append(out, sel), apdu.SWOK)
	}
	return apdu.SWINSNotSupported.Bytes()
}

func longLen(cmd apdu.Command) int {
	n := int(cmd.P1)<<8 | int(cmd.P2)
	if n == 0 {
		return DefaultLongLen
	}
	return n
}

var _ vpcd.Handler = (*Card)(nil)
