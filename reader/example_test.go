package reader_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/vscardkit/vscardkit/reader"
)

// List the readers and what is in them.
func ExampleList() {
	readers, err := reader.List(context.Background())
	if errors.Is(err, reader.ErrNoService) {
		log.Fatal(err) // reader: no PC/SC service: is pcscd running? (...)
	}
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range readers {
		if r.CardPresent {
			fmt.Printf("%d: %s: card %X (%v)\n", i, r.Name, r.ATR, r.Protocols)
		} else {
			fmt.Printf("%d: %s: empty\n", i, r.Name)
		}
	}
}

// Choose a reader the way a command-line flag names it.
func ExampleChoose() {
	readers := []reader.Reader{
		{Name: "Alcor Micro AU9560 00 00"},
		{Name: "Yubico YubiKey OTP+FIDO+CCID 01 00", CardPresent: true},
	}
	for _, arg := range []string{"", "1", "yubikey", "Alcor Micro AU9560 00 00", "Gemalto"} {
		r, err := reader.Choose(readers, reader.ParseSelector(arg))
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%q -> %s\n", arg, r.Name)
	}
	// Output:
	// "" -> Yubico YubiKey OTP+FIDO+CCID 01 00
	// "1" -> Yubico YubiKey OTP+FIDO+CCID 01 00
	// "yubikey" -> Yubico YubiKey OTP+FIDO+CCID 01 00
	// "Alcor Micro AU9560 00 00" -> Alcor Micro AU9560 00 00
	// reader: reader "Gemalto" (a name, or part of one) not found; readers present: Alcor Micro AU9560 00 00, Yubico YubiKey OTP+FIDO+CCID 01 00
}

// Connect to the first card and send it a command, re-announcing the card
// when it was reset behind our back.
func ExampleConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := reader.Select(ctx, reader.FirstWithCard())
	if err != nil {
		log.Fatal(err)
	}
	card, err := reader.Connect(ctx, r.Name, &reader.ConnectOptions{Protocol: reader.T1})
	if err != nil {
		log.Fatal(err)
	}
	defer card.Close()

	selectPIV := []byte{0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08}
	resp, err := card.Transmit(ctx, selectPIV)
	if errors.Is(err, reader.ErrCardReset) {
		fmt.Printf("card reset; its ATR is now %X\n", card.ATR())
		resp, err = card.Transmit(ctx, selectPIV)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("SW %X\n", resp[len(resp)-2:])
}

// Follow readers and cards until interrupted; pcscd may stop and start
// meanwhile.
func ExampleWatch() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := reader.Watch(ctx, nil)
	defer w.Close()
	for ev := range w.Events() {
		switch ev.Kind {
		case reader.CardInserted:
			fmt.Printf("card in %s: %X\n", ev.Reader, ev.ATR)
		case reader.CardRemoved:
			fmt.Printf("card out of %s\n", ev.Reader)
		case reader.ServiceDown:
			fmt.Println("pcscd is gone:", ev.Err)
		default:
			fmt.Println(ev)
		}
	}
}

// How ParseSelector reads a --card pcsc:NAME argument.
func ExampleParseSelector() {
	for _, arg := range []string{"", "0", "2", "YubiKey", "Gemalto PC Twin Reader 00 00", "-1"} {
		fmt.Printf("%q: %v\n", arg, reader.ParseSelector(arg))
	}
	// Output:
	// "": a reader with a card
	// "0": reader #0
	// "2": reader #2
	// "YubiKey": reader "YubiKey" (a name, or part of one)
	// "Gemalto PC Twin Reader 00 00": reader "Gemalto PC Twin Reader 00 00" (a name, or part of one)
	// "-1": reader "-1" (a name, or part of one)
}

// The protocols an ATR offers, before connecting.
func ExampleATRProtocols() {
	for _, atr := range [][]byte{
		{0x3B, 0x8B, 0x80, 0x01, 0x80, 0xF9, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0xC8},                                           // TD1 names T=0, TD2 T=1
		{0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59, 0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40}, // YubiKey 5
		{0x3B, 0x02, 0x14, 0x50}, // no TD: T=0
		{0x3B, 0x80},             // TD1 announced but missing
	} {
		fmt.Printf("% X: %v\n", atr[:2], reader.ATRProtocols(atr))
	}
	// Output:
	// 3B 8B: T=0|T=1
	// 3B FD: T=1
	// 3B 02: T=0
	// 3B 80: none
}

// Protocol names the PC/SC protocol bits.
func ExampleProtocol_String() {
	fmt.Println(reader.T0, reader.T1, reader.Any, reader.Protocol(0), reader.T1|reader.Protocol(0x10000))
	// Output:
	// T=0 T=1 T=0|T=1 none T=1|0x10000
}
