package vscardtest

import (
	"fmt"
	"time"

	"github.com/vscardkit/vscardkit/vscard"
)

// EventKind says what a host saw.
type EventKind int

// The events a Host reports.
const (
	EventConnected     EventKind = iota + 1 // a client connected (Remote)
	EventDisconnected                       // the client left (Remote, Err)
	EventInit                               // the client's Init (Init)
	EventReaderAdded                        // ReaderAdd (Name)
	EventReaderRemoved                      // ReaderRemove
	EventCardInserted                       // an ATR accepted (ATR)
	EventATRRejected                        // an ATR refused with Error{1} (ATR)
	EventCardRemoved                        // CardRemove, or ReaderRemove with a card in
	EventAPDU                               // a command and its response (Command, Response, RTT)
	EventCardError                          // a command answered with Error (Command, Code, RTT)
	EventUnexpected                         // a message QEMU does not expect (Type)
	EventFlushComplete                      // FlushComplete answering the host's Flush
	EventStalled                            // input buffer full: nothing more is read until Reset
	EventReplugged                          // Host.Replug: a new card device sent Init
)

var eventNames = map[EventKind]string{
	EventConnected:     "connected",
	EventDisconnected:  "disconnected",
	EventInit:          "init",
	EventReaderAdded:   "reader-added",
	EventReaderRemoved: "reader-removed",
	EventCardInserted:  "card-inserted",
	EventATRRejected:   "atr-rejected",
	EventCardRemoved:   "card-removed",
	EventAPDU:          "apdu",
	EventCardError:     "card-error",
	EventUnexpected:    "unexpected",
	EventFlushComplete: "flush-complete",
	EventStalled:       "stalled",
	EventReplugged:     "replugged",
}

func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is something a Host saw. Only the fields its Kind names are set.
type Event struct {
	Kind     EventKind
	Time     time.Time
	Remote   string
	ReaderID vscard.ReaderID
	Type     vscard.MsgType // EventUnexpected
	Init     vscard.Init    // EventInit
	Name     string         // EventReaderAdded
	ATR      []byte         // EventCardInserted, EventATRRejected
	Command  []byte         // EventAPDU, EventCardError
	Response []byte         // EventAPDU
	RTT      time.Duration
	Code     vscard.ErrorCode // EventCardError
	Err      error            // EventDisconnected, EventStalled
}
