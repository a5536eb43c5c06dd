// Package qemuatr is QEMU's check of an answer to reset, as
// ccid-card-passthru applies it to a client's ATR message (check_atr in
// hw/usb/ccid-card-passthru.c). Package vscard uses it to explain a refusal
// before QEMU makes one; the fake QEMU in vscard/vscardtest uses it to make
// the same refusals.
package qemuatr

// MaxLen is the longest ATR QEMU accepts (ISO 7816-3, MAX_ATR_SIZE).
const MaxLen = 40

// Check reports whether QEMU accepts the n-byte ATR at buf[off:]: TS 3B or
// 3F, and interface bytes consistent with the historical byte count. It
// looks at buf past the ATR where QEMU does (following a TD byte near the
// end, QEMU reads the byte after it, which is the next message's), so that
// a host reading a whole input buffer decides exactly as QEMU. It does not
// check MaxLen.
func Check(buf []byte, off, n int) bool {
	at := func(i int) int {
		if off+i < len(buf) {
			return int(buf[off+i])
		}
		return 0
	}
	if n < 2 {
		return false
	}
	if t0 := at(0); t0 != 0x3B && t0 != 0x3F {
		return false
	}
	hist := at(1) & 0xF
	opt := 0
	td := at(1) >> 4
	for count := 0; td != 0 && count < 2 && opt+hist+2 < n; count++ {
		for _, bit := range []int{1, 2, 4} {
			if td&bit != 0 {
				opt++
			}
		}
		if td&8 != 0 {
			opt++
			td = at(opt+2) >> 4 // QEMU reads the byte after TD here
		}
	}
	return n >= 2+hist+opt
}
