// Command testcard runs internal/testcard's card as a separate process, in
// the vpcd reader of a pcscd, until it is interrupted.
//
// Usage:
//
//	testcard --vpcd HOST:PORT [--atr t1|t0|dual|HEX] [--program CMD=RESP]... [-v]
//
// Examples:
//
//	testcard --vpcd 127.0.0.1:35963
//	testcard --vpcd 127.0.0.1:35963 --atr dual --program 80FE0000=01029000
//
// The card's command table is documented in package internal/testcard. The
// card reconnects if pcscd restarts. SIGINT or SIGTERM pulls it out and
// exits 0.
package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/testcard"
)

const usage = `usage: testcard --vpcd HOST:PORT [--atr t1|t0|dual|HEX] [--program CMD=RESP]... [-v]

Runs the test card of internal/testcard in the vpcd reader slot at HOST:PORT
until interrupted.

  --vpcd HOST:PORT   the vpcd slot to connect to (required)
  --atr ATR          t1 (default), t0, dual, or the ATR in hex
  --program CMD=RESP answer the exact command CMD (hex) with RESP (hex);
                     may be repeated
  -v                 log connection changes and frames (never APDU contents)
  --version          print the version and exit

Example:
  testcard --vpcd 127.0.0.1:35963 --program 80FE0000=01029000
`

type programs [][2][]byte

func (p *programs) String() string { return fmt.Sprint(len(*p)) }

func (p *programs) Set(s string) error {
	cmd, resp, ok := strings.Cut(s, "=")
	if !ok {
		return errors.New("want CMD=RESP")
	}
	c, err := hex.DecodeString(strings.ReplaceAll(cmd, ":", ""))
	if err != nil || len(c) < 4 {
		return fmt.Errorf("bad command %q: want at least 4 bytes in hex", cmd)
	}
	r, err := hex.DecodeString(strings.ReplaceAll(resp, ":", ""))
	if err != nil || len(r) < 2 {
		return fmt.Errorf("bad response %q: want at least 2 bytes in hex", resp)
	}
	*p = append(*p, [2][]byte{c, r})
	return nil
}

func main() {
	os.Exit(cli.Report(os.Stderr, "testcard", run(os.Args[1:], os.Stderr)))
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("testcard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	addr := fs.String("vpcd", "", "")
	atrFlag := fs.String("atr", "t1", "")
	verbose := fs.Bool("v", false, "")
	var progs programs
	fs.Var(&progs, "program", "")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *addr == "" || fs.NArg() != 0 {
		return cli.WithHint(cli.Usagef("--vpcd HOST:PORT is required and nothing else may follow the flags"), "testcard --vpcd 127.0.0.1:35963")
	}
	atr, err := parseATR(*atrFlag)
	if err != nil {
		return err
	}
	opts := testcard.Options{ATR: atr}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c := testcard.New(opts)
	for _, p := range progs {
		c.Program(p[0], p[1])
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	if err := c.Insert(*addr); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "testcard: card in vpcd slot %s (ATR %X)\n", *addr, atr)
	<-sig
	c.Remove()
	fmt.Fprintf(stderr, "testcard: card removed after %d APDUs\n", c.Transmits())
	return nil
}

func parseATR(s string) ([]byte, error) {
	switch strings.ToLower(s) {
	case "t1":
		return testcard.ATRT1, nil
	case "t0":
		return testcard.ATRT0, nil
	case "dual":
		return testcard.ATRDual, nil
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) < 2 || len(b) > 33 {
		return nil, cli.WithHint(cli.Usagef("bad --atr %q", s), "use t1, t0, dual, or 2 to 33 bytes in hex")
	}
	return b, nil
}
