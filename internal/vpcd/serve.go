package vpcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
)

// Handler is the card behind a vpcd reader slot. Serve calls its methods one
// at a time from a single goroutine, in the order the driver's messages
// arrive, so an implementation needs no locking for Serve's sake.
type Handler interface {
	// ATR returns the card's Answer To Reset. vpcd asks for it at every
	// presence poll (about every 400 ms), so it should be cheap. An empty
	// ATR tells vpcd the card is absent: vpcd drops the connection.
	ATR() []byte
	// PowerOn, PowerOff and Reset report the driver's power requests; they
	// get no reply.
	PowerOn()
	PowerOff()
	Reset()
	// Transmit answers the command APDU cmd with a response APDU (data
	// followed by SW1 SW2) of at most MaxPayload bytes. It may block, for a
	// card that lives elsewhere; ctx is cancelled when the card is shut
	// down. cmd is only valid during the call. An error ends the session:
	// the connection closes, which vpcd reports as the card removed.
	Transmit(ctx context.Context, cmd []byte) ([]byte, error)
}

// ErrHandler is wrapped by Serve's error when the Handler failed a request
// or answered one that cannot be framed.
var ErrHandler = errors.New("vpcd: handler failed")

// Serve answers the vpcd driver on conn with h until the driver closes the
// connection, a read or write fails, h fails, or ctx is done. It closes conn
// before it returns. It returns ctx.Err() when ctx ended it, an error wrapping
// io.EOF when the driver closed the connection between frames, and otherwise
// an error describing what failed.
func Serve(ctx context.Context, conn net.Conn, h Handler) error {
	return serve(ctx, conn, h, slog.New(slog.DiscardHandler), nil)
}

// errRemoved ends a session whose card was taken out with Card.Remove.
var errRemoved = errors.New("vpcd: card removed")

// serve is Serve; when removing is set, the next get-ATR request is answered
// with an empty ATR (the card is gone) and the session ends with errRemoved.
func serve(ctx context.Context, conn net.Conn, h Handler, log *slog.Logger, removing *atomic.Bool) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	quickAck := quickAcker(conn)

	buf := make([]byte, 0, 512)
	for {
		quickAck()
		payload, err := ReadFrame(conn, buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("vpcd: driver closed the connection: %w", err)
			}
			return fmt.Errorf("vpcd: reading from the driver: %w", err)
		}
		if cap(payload) > cap(buf) {
			buf = payload[:0] // keep the larger buffer for the next frame
		}
		quickAck()
		kind := Classify(payload)
		log.Debug("vpcd: request", "kind", kind, "len", len(payload))
		var reply []byte
		switch kind {
		case KindPowerOff:
			h.PowerOff()
			continue
		case KindPowerOn:
			h.PowerOn()
			continue
		case KindReset:
			h.Reset()
			continue
		case KindEmpty, KindUnknownControl:
			log.Debug("vpcd: ignoring a frame", "kind", kind)
			continue
		case KindGetATR:
			if removing != nil && removing.Load() {
				log.Debug("vpcd: answering the presence poll with no card")
				if err := WriteFrame(conn, nil); err != nil {
					return err
				}
				return errRemoved
			}
			reply = h.ATR()
		case KindAPDU:
			reply, err = h.Transmit(ctx, payload)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("%w: transmit: %w", ErrHandler, err)
			}
		}
		if len(reply) > MaxPayload {
			return fmt.Errorf("%w: %s reply of %d bytes exceeds %d", ErrHandler, kind, len(reply), MaxPayload)
		}
		if err := WriteFrame(conn, reply); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}
