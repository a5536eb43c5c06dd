//go:build cgo && darwin

package reader

// The status calls on macOS go to PCSC.framework through cgo, for the same
// reason as sys_pcsclite.go (the pinned ebfe/scard's GetStatusChange is not
// safe to call from two goroutines at once).
//
// macOS differs from pcsc-lite on Linux: DWORD is 32 bits and LONG is
// int32_t, and SCARD_READERSTATE is packed (1-byte alignment, 61 bytes:
// rgbAtr has MAX_ATR_SIZE 33 bytes), which a Go struct cannot mirror. So
// the reader states live in C memory and only the C helpers below touch
// their fields, and every call goes through a helper with fixed-width
// types, leaving the SDK's typedefs to the C compiler.
//
// This file has not been compiled: it was written without a macOS SDK.
// A build on a Mac (CGO_ENABLED=1 go build ./...) is its first check.

/*
#cgo LDFLAGS: -framework PCSC
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

static int32_t vsk_establish(SCARDCONTEXT *h) {
	return (int32_t)SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, h);
}

static int32_t vsk_list(SCARDCONTEXT h, char *buf, uint32_t *n) {
	DWORD dn = (DWORD)*n;
	LONG rv = SCardListReaders(h, NULL, buf, &dn);
	*n = (uint32_t)dn;
	return (int32_t)rv;
}

static SCARD_READERSTATE *vsk_states_new(uint32_t n) {
	SCARD_READERSTATE *p = NULL;
	return (SCARD_READERSTATE *)calloc(n, sizeof(*p));
}

static void vsk_states_free(SCARD_READERSTATE *s, uint32_t n) {
	for (uint32_t i = 0; i < n; i++) {
		free((void *)s[i].szReader);
	}
	free(s);
}

// vsk_state_set takes ownership of name (freed by vsk_states_free).
static void vsk_state_set(SCARD_READERSTATE *s, uint32_t i, char *name, uint32_t current) {
	s[i].szReader = name;
	s[i].dwCurrentState = (DWORD)current;
}

static uint32_t vsk_state_event(SCARD_READERSTATE *s, uint32_t i) {
	return (uint32_t)s[i].dwEventState;
}

static uint32_t vsk_state_atr(SCARD_READERSTATE *s, uint32_t i, unsigned char *out, uint32_t max) {
	uint32_t n = (uint32_t)s[i].cbAtr;
	if (n > sizeof(s[i].rgbAtr)) n = sizeof(s[i].rgbAtr);
	if (n > max) n = max;
	memcpy(out, s[i].rgbAtr, n);
	return n;
}

static int32_t vsk_get_status_change(SCARDCONTEXT h, uint32_t ms, SCARD_READERSTATE *s, uint32_t n) {
	return (int32_t)SCardGetStatusChange(h, (DWORD)ms, s, (DWORD)n);
}

static int32_t vsk_cancel(SCARDCONTEXT h) { return (int32_t)SCardCancel(h); }
static int32_t vsk_release(SCARDCONTEXT h) { return (int32_t)SCardReleaseContext(h); }
*/
import "C"

import (
	"time"
	"unsafe"
)

type pcscFrameworkContext struct {
	h C.SCARDCONTEXT
}

func establishStatus() (statusContext, error) {
	var h C.SCARDCONTEXT
	if err := pcscErr("SCardEstablishContext", uint32(C.vsk_establish(&h))); err != nil {
		return nil, err
	}
	return &pcscFrameworkContext{h: h}, nil
}

func (c *pcscFrameworkContext) listReaders() ([]string, error) {
	buf, err := listMultiString("SCardListReaders", func(buf []byte, n *uint32) uint32 {
		var p *C.char
		if len(buf) > 0 {
			p = (*C.char)(unsafe.Pointer(&buf[0]))
		}
		cn := C.uint32_t(*n)
		rv := C.vsk_list(c.h, p, &cn)
		*n = uint32(cn)
		return uint32(rv)
	})
	return splitMultiString(buf), err
}

func (c *pcscFrameworkContext) getStatusChange(states []readerState, timeout time.Duration) error {
	if len(states) == 0 {
		return nil
	}
	n := C.uint32_t(len(states))
	cs := C.vsk_states_new(n)
	if cs == nil {
		return &PCSCError{Op: "SCardGetStatusChange", Code: 0x80100006} // SCARD_E_NO_MEMORY
	}
	defer C.vsk_states_free(cs, n)
	for i, st := range states {
		C.vsk_state_set(cs, C.uint32_t(i), C.CString(st.name), C.uint32_t(st.current))
	}
	ms := C.uint32_t(0xFFFFFFFF) // INFINITE
	if timeout >= 0 {
		ms = C.uint32_t(min(timeout/time.Millisecond, 0xFFFFFFFE))
	}
	if err := pcscErr("SCardGetStatusChange", uint32(C.vsk_get_status_change(c.h, ms, cs, n))); err != nil {
		return err
	}
	var atr [64]byte
	for i := range states {
		states[i].event = uint32(C.vsk_state_event(cs, C.uint32_t(i)))
		k := C.vsk_state_atr(cs, C.uint32_t(i), (*C.uchar)(unsafe.Pointer(&atr[0])), C.uint32_t(len(atr)))
		states[i].atr = append([]byte(nil), atr[:k]...)
	}
	return nil
}

func (c *pcscFrameworkContext) cancel() error {
	return pcscErr("SCardCancel", uint32(C.vsk_cancel(c.h)))
}

func (c *pcscFrameworkContext) release() error {
	return pcscErr("SCardReleaseContext", uint32(C.vsk_release(c.h)))
}
