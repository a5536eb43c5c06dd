package reader

import "time"

// PC/SC reader state flags (SCARD_STATE_*).
const (
	stateUnaware     = 0x0000
	stateIgnore      = 0x0001
	stateChanged     = 0x0002
	stateUnknown     = 0x0004
	stateUnavailable = 0x0008
	stateEmpty       = 0x0010
	statePresent     = 0x0020
	stateExclusive   = 0x0080
	stateInUse       = 0x0100
	stateMute        = 0x0200
)

// pnpReader is the pseudo-reader whose state changes when readers come or
// go.
const pnpReader = `\\?PnP?\Notification`

// maxStatusReaders is the most reader states one SCardGetStatusChange call
// takes in pcsc-lite (PCSCLITE_MAX_READERS_CONTEXTS), PnP included.
const maxStatusReaders = 16

// infinite is the PC/SC INFINITE timeout.
const infinite time.Duration = -1

// readerState is one entry of an SCardGetStatusChange call.
type readerState struct {
	name    string
	current uint32 // in: what the caller knows (event state fed back, CHANGED cleared)
	event   uint32 // out: flags, and pcsc-lite's event counter in the upper 16 bits
	atr     []byte // out
}

// statusContext is a PC/SC context used for reader status: listing and
// watching. Its methods other than cancel are not safe for concurrent use;
// cancel may be called from another goroutine to end a blocking
// getStatusChange.
type statusContext interface {
	listReaders() ([]string, error)
	// getStatusChange waits until some state differs from its current
	// value, or timeout passes (infinite: no timeout).
	getStatusChange(states []readerState, timeout time.Duration) error
	cancel() error
	release() error
}

// newStatusContext establishes a status context; it is a variable so that
// builds without pcsc-lite can refuse.
var newStatusContext func() (statusContext, error) = establishStatus

// readerFromState turns a status result into a Reader.
func readerFromState(st readerState) Reader {
	r := Reader{
		Name:        st.name,
		Mute:        st.event&stateMute != 0,
		InUse:       st.event&stateInUse != 0,
		Exclusive:   st.event&stateExclusive != 0,
		Unavailable: st.event&(stateUnavailable|stateUnknown) != 0,
	}
	if st.event&statePresent != 0 && !r.Mute && len(st.atr) > 0 {
		r.CardPresent = true
		r.ATR = append([]byte(nil), st.atr...)
		r.Protocols = ATRProtocols(r.ATR)
	}
	return r
}
