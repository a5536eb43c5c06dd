package reader

// The status calls on Windows go to winscard.dll without cgo, as
// github.com/ebfe/scard's Windows build does for the rest (and for the
// same reason as sys_pcsclite.go: its GetStatusChange is not safe to call
// from two goroutines at once). The names are UTF-16 (the W functions).

import (
	"fmt"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

var (
	winscard                  = syscall.NewLazyDLL("winscard.dll")
	procSCardEstablishContext = winscard.NewProc("SCardEstablishContext")
	procSCardReleaseContext   = winscard.NewProc("SCardReleaseContext")
	procSCardCancel           = winscard.NewProc("SCardCancel")
	procSCardListReadersW     = winscard.NewProc("SCardListReadersW")
	procSCardGetStatusChangeW = winscard.NewProc("SCardGetStatusChangeW")
	winscardProcs             = []*syscall.LazyProc{procSCardEstablishContext, procSCardReleaseContext, procSCardCancel, procSCardListReadersW, procSCardGetStatusChangeW}
)

const (
	scardScopeSystem        = 2          // SCARD_SCOPE_SYSTEM
	scardInfinite    uint32 = 0xFFFFFFFF // INFINITE
)

// scardReaderStateW is SCARD_READERSTATEW from Microsoft's winscard.h:
//
//	LPCWSTR szReader; LPVOID pvUserData; DWORD dwCurrentState;
//	DWORD dwEventState; DWORD cbAtr; BYTE rgbAtr[36];
//
// with the platform's natural alignment (no #pragma pack): 64 bytes on
// amd64 and arm64, 56 on 386, with no padding on either. The checks below
// fail to compile if Go lays it out otherwise.
type scardReaderStateW struct {
	reader       *uint16
	userData     uintptr
	currentState uint32
	eventState   uint32
	atrLen       uint32
	atr          [36]byte
}

const (
	winPtr       = unsafe.Sizeof(uintptr(0))
	winStateSize = 2*winPtr + 3*4 + 36
)

var (
	_ [unsafe.Sizeof(scardReaderStateW{}) - winStateSize]struct{}
	_ [winStateSize - unsafe.Sizeof(scardReaderStateW{})]struct{}
	_ [unsafe.Offsetof(scardReaderStateW{}.currentState) - 2*winPtr]struct{}
	_ [2*winPtr - unsafe.Offsetof(scardReaderStateW{}.currentState)]struct{}
	_ [unsafe.Offsetof(scardReaderStateW{}.atr) - (2*winPtr + 12)]struct{}
	_ [(2*winPtr + 12) - unsafe.Offsetof(scardReaderStateW{}.atr)]struct{}
)

type winscardContext struct {
	h   uintptr // SCARDCONTEXT (ULONG_PTR)
	pnp pnpTracker
}

func establishStatus() (statusContext, error) {
	for _, p := range winscardProcs {
		if err := p.Find(); err != nil {
			return nil, fmt.Errorf("%w: winscard.dll: %v", ErrUnsupported, err)
		}
	}
	var h uintptr
	rv, _, _ := procSCardEstablishContext.Call(scardScopeSystem, 0, 0, uintptr(unsafe.Pointer(&h)))
	if err := pcscErr("SCardEstablishContext", uint32(rv)); err != nil {
		return nil, err
	}
	return &winscardContext{h: h}, nil
}

func (c *winscardContext) listReaders() ([]string, error) {
	buf, err := listMultiString("SCardListReadersW", func(buf []uint16, n *uint32) uint32 {
		var p *uint16
		if len(buf) > 0 {
			p = &buf[0]
		}
		rv, _, _ := procSCardListReadersW.Call(c.h, 0, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(n)))
		return uint32(rv)
	})
	return splitMultiStringUTF16(buf), err
}

func (c *winscardContext) getStatusChange(states []readerState, timeout time.Duration) error {
	if len(states) == 0 {
		return nil
	}
	ws := make([]scardReaderStateW, len(states))
	for i, st := range states {
		name, err := syscall.UTF16PtrFromString(st.name)
		if err != nil {
			return fmt.Errorf("reader: reader name %q: %w", st.name, err)
		}
		ws[i].reader = name
		ws[i].currentState = c.pnp.current(st)
	}
	ms := scardInfinite
	if timeout >= 0 {
		ms = uint32(min(timeout/time.Millisecond, time.Duration(scardInfinite-1)))
	}
	rv, _, _ := procSCardGetStatusChangeW.Call(c.h, uintptr(ms), uintptr(unsafe.Pointer(&ws[0])), uintptr(len(ws)))
	runtime.KeepAlive(ws)
	if err := pcscErr("SCardGetStatusChange", uint32(rv)); err != nil {
		return err
	}
	for i := range states {
		states[i].event = ws[i].eventState
		k := min(int(ws[i].atrLen), len(ws[i].atr))
		states[i].atr = append([]byte(nil), ws[i].atr[:k]...)
		c.pnp.observe(states[i])
	}
	return nil
}

func (c *winscardContext) cancel() error {
	rv, _, _ := procSCardCancel.Call(c.h)
	return pcscErr("SCardCancel", uint32(rv))
}

func (c *winscardContext) release() error {
	rv, _, _ := procSCardReleaseContext.Call(c.h)
	return pcscErr("SCardReleaseContext", uint32(rv))
}
