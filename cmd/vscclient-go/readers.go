package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/reader"
)

const readersUsage = `Usage: vscclient-go readers [--card pcsc[:NAME]] [--json]

Lists the PC/SC readers of this host, with the card in each: its ATR and the
protocols it offers. The index, a name or part of one go to --card pcsc:NAME.
The reader that --card (default pcsc: the first that holds a card) picks now
is marked with *.

Examples:
  vscclient-go readers
  vscclient-go readers --card pcsc:Yubi      # which reader pcsc:Yubi picks
  vscclient-go readers --json | jq '.[] | select(.card) | .name'

Flags:
`

type readerJSON struct {
	Index     int      `json:"index"`
	Name      string   `json:"name"`
	Card      bool     `json:"card"`
	ATR       string   `json:"atr,omitempty"`
	Protocols []string `json:"protocols,omitempty"`
	Mute      bool     `json:"mute,omitempty"`
	InUse     bool     `json:"in_use,omitempty"`
	Exclusive bool     `json:"exclusive,omitempty"`
	Picked    bool     `json:"picked,omitempty"` // --card pcsc[:NAME] picks it now
}

func listReaders(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.FlagSet(prog+" readers", readersUsage, stderr)
	asJSON := fs.Bool("json", false, "print a JSON array")
	card := fs.String("card", "pcsc", "mark the reader this `card` (pcsc or pcsc:NAME) picks")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("readers takes no arguments")
	}
	kind, arg := cardKind(*card), cardArg(*card)
	if kind != "pcsc" {
		return cli.Usagef("--card %q: readers marks what a pcsc or pcsc:NAME card picks", *card)
	}
	sel := reader.ParseSelector(arg)
	readers, err := reader.List(ctx)
	if err != nil {
		switch {
		case errors.Is(err, reader.ErrNoService):
			return cli.WithHint(err, noServiceHint)
		case errors.Is(err, reader.ErrUnsupported):
			return cli.WithHint(err, "this build has --card soft and soft:DIR only; build vscclient-go with CGO_ENABLED=1 on this machine for PC/SC and PKCS#11")
		}
		return err
	}
	picked, pickErr := reader.Choose(readers, sel)
	var out []readerJSON
	for i, r := range readers {
		j := readerJSON{Index: i, Name: r.Name, Card: r.CardPresent, Mute: r.Mute, InUse: r.InUse, Exclusive: r.Exclusive,
			Picked: pickErr == nil && r.Name == picked.Name}
		if r.CardPresent {
			j.ATR = fmt.Sprintf("%X", r.ATR)
			if r.Protocols != 0 {
				j.Protocols = strings.Split(r.Protocols.String(), "|")
			}
		}
		out = append(out, j)
	}
	if *asJSON {
		if out == nil {
			out = []readerJSON{}
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	if len(out) == 0 {
		fmt.Fprintln(stdout, "no readers")
		return nil
	}
	for _, r := range out {
		state := "empty"
		switch {
		case r.Mute:
			state = "card (mute)"
		case r.Card:
			state = fmt.Sprintf("card  ATR %s  %s", r.ATR, strings.Join(r.Protocols, ","))
		}
		if r.Exclusive {
			state += "  (held exclusively by another program)"
		} else if r.InUse {
			state += "  (in use)"
		}
		mark := " "
		if r.Picked {
			mark = "*"
		}
		fmt.Fprintf(stdout, "%s %d  %s  %s\n", mark, r.Index, r.Name, state)
	}
	if pickErr != nil {
		fmt.Fprintf(stdout, "--card %s picks no reader now: %s\n", *card, strings.TrimPrefix(pickErr.Error(), "reader: "))
	}
	return nil
}
