package main

import (
	"context"
	"log/slog"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/vpcd"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// vpcdCard presents the VSCard client's card to pcscd through vpcd: the
// guest side of the fake host becomes a local PC/SC reader.
type vpcdCard struct {
	srv *vscardtest.Server
	log *slog.Logger
}

// ATR returns the remote card's ATR while a client is connected with a card
// in, and nothing otherwise (vpcd then reports the card absent).
func (v *vpcdCard) ATR() []byte {
	st := v.srv.Host().State()
	if !st.Connected || !st.CardPresent {
		return nil
	}
	return st.ATR
}

func (v *vpcdCard) PowerOn()  { v.log.Debug("vpcd: power on") }
func (v *vpcdCard) PowerOff() { v.log.Debug("vpcd: power off") }
func (v *vpcdCard) Reset()    { v.log.Debug("vpcd: reset") }

// Transmit sends the PC/SC application's command to the VSCard client, as
// QEMU sends the guest's.
func (v *vpcdCard) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	resp, err := v.srv.Transmit(ctx, cmd)
	if err != nil {
		v.log.Warn("vpcd: the client did not answer a command; pulling the card", "err", err)
		return nil, err
	}
	return resp, nil
}

// vpcdHint is what to check when the vpcd reader cannot be reached.
const vpcdHint = "is pcscd running with the vpcd reader (package vsmartcard-vpcd)? its port is in /etc/reader.conf.d/vpcd (35963 for slot 0 by default)"

// serveVPCD keeps a vpcd card connected while the VSCard client has a card
// in, and pulled out otherwise, until ctx ends. changed is signalled after
// every change of the host's state that can present or pull the card
// (the host emits its events once its state is updated), so a coalesced
// signal loses nothing: the loop reads the state afresh.
//
// The card dials vpcd in the background and keeps trying while the reader
// is not reachable: the first failure of each run is a warning that says
// so, the others are quiet (debug), and the vpcd package logs the card
// connected once it is.
func serveVPCD(ctx context.Context, srv *vscardtest.Server, addr string, changed <-chan struct{}, log *slog.Logger) error {
	h := &vpcdCard{srv: srv, log: log}
	var card *vpcd.Card
	pull := func() {
		if card != nil {
			card.Close()
			card = nil
			log.Info("vpcd: card pulled from the local reader")
		}
	}
	defer pull()
	dialFailed := func(err error, failures int) {
		if failures == 1 {
			log.Warn("vpcd: the local reader is not reachable; trying again quietly until it is", "vpcd", addr, "err", err, "hint", vpcdHint)
		}
	}
	for {
		present := h.ATR() != nil
		switch {
		case present && card == nil:
			c, err := vpcd.Dial(ctx, addr, vpcd.Config{Handler: h, Reconnect: true, Logger: log, DialFailed: dialFailed})
			if err != nil {
				return cli.WithHint(err, vpcdHint)
			}
			card = c
			log.Debug("vpcd: presenting the card to the local reader", "vpcd", addr)
		case !present:
			pull()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}
