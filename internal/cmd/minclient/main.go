//go:build linux

// Command minclient is the baseline of vscclient-go's benchmarks: the least
// a VSCard client can do. It connects, announces a reader and a card, and
// answers every command with the same response bytes, with nothing between
// the socket and the answer: no card, no parsing, no logging, one goroutine.
// Like vscclient-go it sets TCP_QUICKACK after every read (Linux), without
// which a host that writes header and payload apart (QEMU under libvirt)
// costs a delayed ACK per command.
//
//	minclient --atr 3B8B... --response 61..9000 127.0.0.1:PORT
package main

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/vscardkit/vscardkit/vscard"
)

func main() {
	atr := flag.String("atr", "", "the card's ATR, in hex")
	response := flag.String("response", "9000", "the response to every command, in hex")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: minclient --atr HEX --response HEX HOST:PORT")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *atr, *response); err != nil && err != io.EOF {
		fmt.Fprintln(os.Stderr, "minclient: error:", err)
		os.Exit(1)
	}
}

func run(addr, atrHex, respHex string) error {
	atr, err := hex.DecodeString(atrHex)
	if err != nil {
		return fmt.Errorf("--atr: %w", err)
	}
	resp, err := hex.DecodeString(respHex)
	if err != nil {
		return fmt.Errorf("--response: %w", err)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	quickAck := func() {
		rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
	r := bufio.NewReaderSize(readFunc(func(p []byte) (int, error) {
		n, err := nc.Read(p)
		if n > 0 {
			quickAck()
		}
		return n, err
	}), 4096)
	send := func(m vscard.Message) error {
		_, err := nc.Write(m.Append(nil))
		return err
	}
	// Announce, and wait for each acknowledgement.
	for _, m := range []vscard.Message{
		{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)},
		{Type: vscard.MsgReaderAdd, ReaderID: vscard.UndefinedReaderID, Payload: []byte("minclient")},
		{Type: vscard.MsgATR, ReaderID: vscard.MinimalReaderID, Payload: atr},
	} {
		if err := send(m); err != nil {
			return err
		}
		want := vscard.MsgError
		if m.Type == vscard.MsgInit {
			want = vscard.MsgInit
		}
		for {
			got, err := vscard.ReadMessage(r, 0)
			if err != nil {
				return err
			}
			if got.Type == want {
				break
			}
		}
	}
	answer := vscard.Message{Type: vscard.MsgAPDU, ReaderID: vscard.MinimalReaderID, Payload: resp}.Append(nil)
	var hdr [vscard.HeaderLen]byte
	buf := make([]byte, vscard.MaxPayload)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := int(hdr[8])<<24 | int(hdr[9])<<16 | int(hdr[10])<<8 | int(hdr[11])
		if n > len(buf) {
			return fmt.Errorf("message of %d bytes", n)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return err
		}
		if hdr[3] == byte(vscard.MsgAPDU) {
			if _, err := nc.Write(answer); err != nil {
				return err
			}
		}
	}
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }
