package pcscsource

import (
	"errors"
	"fmt"

	"github.com/vscardkit/vscardkit/vscard"
)

// maxATR is the longest ATR ISO/IEC 7816-3 allows (and pcsc-lite stores).
const maxATR = 33

// atrInfo is the structure of an ATR (ISO/IEC 7816-3 section 8.2).
type atrInfo struct {
	tdPos     []int // positions of TD1, TD2, ...
	protocols []int // the protocol each TD names, in order
	histStart int   // position of the first historical byte
	hist      int   // number of historical bytes
	tck       bool  // a check byte ends the ATR
}

func parseATR(atr []byte) (atrInfo, error) {
	var info atrInfo
	if len(atr) < 2 {
		return info, errors.New("shorter than TS T0")
	}
	info.hist = int(atr[1] & 0x0F)
	y := atr[1] >> 4
	i := 2
	for {
		for _, bit := range []byte{1, 2, 4} { // TA, TB, TC
			if y&bit != 0 {
				i++
			}
		}
		if y&8 == 0 {
			break
		}
		if i >= len(atr) {
			return info, errors.New("truncated interface bytes")
		}
		info.tdPos = append(info.tdPos, i)
		info.protocols = append(info.protocols, int(atr[i]&0x0F))
		y = atr[i] >> 4
		i++
	}
	info.histStart = i
	for _, p := range info.protocols {
		if p != 0 {
			info.tck = true
		}
	}
	want := i + info.hist
	if info.tck {
		want++
	}
	if len(atr) != want {
		return info, fmt.Errorf("%d bytes where its interface and historical bytes make %d", len(atr), want)
	}
	return info, nil
}

// offersT0 reports whether the ATR offers T=0: explicitly in a TD byte, or
// implicitly when it has no TD byte at all.
func (a atrInfo) offersT0() bool {
	if len(a.protocols) == 0 {
		return true
	}
	for _, p := range a.protocols {
		if p == 0 {
			return true
		}
	}
	return false
}

// ForGuest returns the ATR to announce for a card whose ATR is atr, and
// whether it differs.
//
// QEMU 7.2's usb-ccid tells the guest that the reader speaks T=0 only
// (dwProtocols), so the guest's CCID driver refuses a card whose ATR offers
// only T=1 ("Protocol T=1 not supported by reader"), as many cards' ATRs do
// (YubiKeys among them). Such an ATR gets a TD1 of 80 (T=0, then TD2 follows)
// inserted before its first TD byte, which becomes TD2, so that it offers T=0
// first and T=1 after; the check byte is computed again. The card itself keeps
// speaking T=1 with the host's pcscd: VSCard carries APDUs, not TPDUs. This is
// done only when the first TD byte announces no TA2, TB2 or TC2 (whose meaning
// would change one level down) and the result stays a valid ATR that QEMU
// accepts; otherwise atr is returned as it is.
func ForGuest(atr []byte) ([]byte, bool) {
	info, err := parseATR(atr)
	if err != nil || info.offersT0() || len(info.tdPos) == 0 {
		return atr, false
	}
	td1 := info.tdPos[0]
	if atr[td1]&0x70 != 0 || len(atr)+1 > maxATR {
		return atr, false
	}
	out := make([]byte, 0, len(atr)+1)
	out = append(out, atr[:td1]...)
	out = append(out, 0x80)
	out = append(out, atr[td1:len(atr)-1]...) // without the old TCK
	var tck byte
	for _, b := range out[1:] {
		tck ^= b
	}
	out = append(out, tck)
	if vscard.CheckATR(out) != nil {
		return atr, false
	}
	return out, true
}
