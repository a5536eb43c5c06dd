//go:build cgo && !windows && !darwin

package reader

// The status calls go to pcsc-lite directly rather than through
// github.com/ebfe/scard: the pinned ebfe/scard version converts reader names
// through a package-level map without a lock inside GetStatusChange, so two
// status calls at once (a Watcher and a List) crash the process with
// "concurrent map writes" (fixed upstream in ebfe/scard 7af069c). Here the
// reader states and names live in C memory for the duration of the call.

/*
#cgo pkg-config: libpcsclite
#include <stdlib.h>
#include <string.h>
#include <winscard.h>
*/
import "C"

import (
	"time"
	"unsafe"
)

type pcscliteContext struct {
	h C.SCARDCONTEXT
}

func establishStatus() (statusContext, error) {
	var h C.SCARDCONTEXT
	rv := C.SCardEstablishContext(C.SCARD_SCOPE_SYSTEM, nil, nil, &h)
	if err := pcscErr("SCardEstablishContext", uint32(rv)); err != nil {
		return nil, err
	}
	return &pcscliteContext{h: h}, nil
}

func (c *pcscliteContext) listReaders() ([]string, error) {
	buf, err := listMultiString("SCardListReaders", func(buf []byte, n *uint32) uint32 {
		var p *C.char
		if len(buf) > 0 {
			p = (*C.char)(unsafe.Pointer(&buf[0]))
		}
		cn := C.DWORD(*n)
		rv := C.SCardListReaders(c.h, nil, p, &cn)
		*n = uint32(cn)
		return uint32(rv)
	})
	return splitMultiString(buf), err
}

func (c *pcscliteContext) getStatusChange(states []readerState, timeout time.Duration) error {
	if len(states) == 0 {
		return nil
	}
	n := len(states)
	arr := (*C.SCARD_READERSTATE)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.SCARD_READERSTATE{}))))
	if arr == nil {
		return &PCSCError{Op: "SCardGetStatusChange", Code: 0x80100006} // SCARD_E_NO_MEMORY
	}
	defer C.free(unsafe.Pointer(arr))
	cs := unsafe.Slice(arr, n)
	for i := range states {
		cs[i].szReader = C.CString(states[i].name)
		cs[i].dwCurrentState = C.DWORD(states[i].current)
	}
	defer func() {
		for i := range cs {
			C.free(unsafe.Pointer(cs[i].szReader))
		}
	}()
	ms := C.DWORD(C.INFINITE)
	if timeout >= 0 {
		ms = C.DWORD(timeout / time.Millisecond)
	}
	rv := uint32(C.SCardGetStatusChange(c.h, ms, arr, C.DWORD(n)))
	if err := pcscErr("SCardGetStatusChange", rv); err != nil {
		return err
	}
	for i := range states {
		states[i].event = uint32(cs[i].dwEventState)
		k := int(cs[i].cbAtr)
		if k > len(cs[i].rgbAtr) {
			k = len(cs[i].rgbAtr)
		}
		states[i].atr = C.GoBytes(unsafe.Pointer(&cs[i].rgbAtr[0]), C.int(k))
	}
	return nil
}

func (c *pcscliteContext) cancel() error {
	return pcscErr("SCardCancel", uint32(C.SCardCancel(c.h)))
}

func (c *pcscliteContext) release() error {
	return pcscErr("SCardReleaseContext", uint32(C.SCardReleaseContext(c.h)))
}
