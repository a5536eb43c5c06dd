package faults_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/conformance"
	"github.com/vscardkit/vscardkit/reader"
	"github.com/vscardkit/vscardkit/vscard"
)

// The fuzz targets here cover the parsers whose packages have none for
// them and that can be driven from outside: the client's side of a VSCard
// connection (what a host sends), the APDU redactor (what reaches a log),
// and the ATR checks (what a card in a PC/SC reader sends). The other
// parsers have targets in their own packages; see the package
// documentation.

// hostReplies returns QEMU's replies recorded in the conformance goldens,
// one stream per file, in step order: what a real host sends a client.
func hostReplies(f *testing.F) [][]byte {
	files, _ := filepath.Glob("../../../testdata/conformance/*.qemu")
	var out [][]byte
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		replies, err := conformance.ParseGolden(src)
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		var all []byte
		for _, step := range slices.Sorted(maps.Keys(replies)) {
			all = append(all, replies[step]...)
		}
		if len(all) > 0 {
			out = append(out, all)
		}
	}
	if len(out) == 0 {
		f.Fatal("no conformance goldens")
	}
	return out
}

// FuzzClient plays a host that sends arbitrary bytes to a vscard.Client:
// the handshake ends or fails, every command delivered fits QEMU's limit,
// requests end (with a reply, an error or their context), and the client
// ends with a reason when the stream does. No panic, no hang.
func FuzzClient(f *testing.F) {
	initMsg := vscard.Message{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)}.Append(nil)
	ok := vscard.Message{Type: vscard.MsgError, Payload: vscard.AppendError(nil, vscard.ErrCodeSuccess)}.Append(nil)
	apduMsg := vscard.Message{Type: vscard.MsgAPDU, Payload: []byte{0x00, 0xA4, 0x04, 0x00}}.Append(nil)
	flush := vscard.Message{Type: vscard.MsgFlush}.Append(nil)
	for _, s := range hostReplies(f) {
		f.Add(s)
	}
	f.Add(bytes.Join([][]byte{initMsg, ok, apduMsg, flush, apduMsg, initMsg}, nil))
	f.Add(bytes.Join([][]byte{initMsg, {0, 0, 0, 0x55, 0, 0, 0, 0, 0, 0, 0, 1, 9}, ok}, nil))
	f.Add(append(initMsg, 0, 0, 0, 7, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF))
	f.Fuzz(func(t *testing.T, stream []byte) {
		cn, hn := net.Pipe()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // the host's writes
			defer wg.Done()
			hn.Write(stream)
			hn.Close()
		}()
		go func() { // whatever the client writes is read and dropped
			defer wg.Done()
			io.Copy(io.Discard, hn)
		}()
		defer wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := vscard.NewClient(ctx, cn, &vscard.ClientConfig{WriteTimeout: time.Second})
		if err != nil {
			cn.Close()
			return
		}
		defer c.Close()
		wg.Add(1)
		go func() { // a control request racing the commands
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			c.AddReader(rctx, "fuzz")
		}()
		n := 0
		for cmd := range c.Commands() {
			if len(cmd.APDU) > vscard.MaxPayload {
				t.Fatalf("a %d-byte command", len(cmd.APDU))
			}
			if n++; n%2 == 0 {
				cmd.Fail(vscard.ErrCodeGeneral)
			} else {
				cmd.Respond([]byte{0x90, 0x00})
			}
		}
		if c.Err() == nil {
			t.Fatal("Commands closed while the connection runs")
		}
	})
}

// FuzzRedactor sends sessions of commands and responses through the APDU
// redactor: the data of a command that may carry a PIN or a key (VERIFY,
// CHANGE REFERENCE DATA, RESET RETRY COUNTER, key import, and every piece
// of a command chained after one) never appears in what it formats, and
// nothing panics. A session is commands and responses alternating, each
// after a 2-byte big-endian length.
func FuzzRedactor(f *testing.F) {
	pin := []byte("123456\xFF\xFF")
	session := func(msgs ...[]byte) []byte {
		var out []byte
		for _, m := range msgs {
			out = append(out, byte(len(m)>>8), byte(len(m)))
			out = append(out, m...)
		}
		return out
	}
	f.Add(session(append([]byte{0x00, 0x20, 0x00, 0x80, 0x08}, pin...), []byte{0x90, 0x00}))
	f.Add(session(append([]byte{0x10, 0x20, 0x00, 0x80, 0x04}, pin[:4]...), []byte{0x90, 0x00}, append([]byte{0x00, 0x20, 0x00, 0x80, 0x04}, pin[4:]...), []byte{0x90, 0x00}))
	f.Add(session(append([]byte{0x00, 0x24, 0x00, 0x80, 0x10}, append(pin, pin...)...), []byte{0x63, 0xC2}))
	f.Add(session(append([]byte{0x00, 0x20, 0x00, 0x80, 0x00, 0x00, 0x08}, pin...), []byte{0x90, 0x00}))
	f.Add(session([]byte{0x00, 0x87, 0x07, 0x9D, 0x0A, 0x7C, 0x08, 0x82, 0x00, 0x85, 0x04, 1, 2, 3, 4, 0x00}, []byte{0x7C, 0x04, 0x82, 0x02, 9, 9, 0x61, 0x10}, []byte{0x00, 0xC0, 0x00, 0x00, 0x10}, []byte{5, 6, 0x90, 0x00}))
	f.Fuzz(func(t *testing.T, in []byte) {
		var r apdu.Redactor
		secretChain := false
		for i := 0; len(in) >= 2 && i < 256; i++ {
			n := min(int(in[0])<<8|int(in[1]), len(in)-2)
			msg := in[2 : 2+n]
			in = in[2+n:]
			if i%2 == 1 {
				r.Response(msg)
				continue
			}
			out := r.Command(msg)
			secret := secretChain || len(msg) >= 4 && apdu.IsSecret(msg[1])
			secretChain = secret && len(msg) >= 4 && msg[0]&0x10 != 0
			// Only the header (at most 7 bytes: extended Lc) may show.
			if secret && len(msg) >= 7+4 {
				data := strings.ToUpper(hex.EncodeToString(msg[7:]))
				head := strings.ToUpper(hex.EncodeToString(msg[:7]))
				if strings.Contains(out, data) && !strings.Contains(head, data) {
					t.Fatalf("Command(%X) = %s: the secret data shows", msg, out)
				}
			}
		}
	})
}

// FuzzATR checks arbitrary answers to reset, as a card in a PC/SC reader
// may give them, with the checks vscclient-go applies before announcing
// one: no panic, and an ATR CheckATR accepts is one QEMU can take.
func FuzzATR(f *testing.F) {
	for _, atr := range [][]byte{
		{0x3B, 0x8B, 0x01, 0x00, 0x56, 0x76, 0x73, 0x63, 0x61, 0x72, 0x64, 0x00, 0x90, 0x00, 0x5D},
		{0x3B, 0x8B, 0x80, 0x01, 0x80, 0xF9, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0xC8},
		{0x3B, 0xFF, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45, 0x43, 0x44, 0x32, 0x14, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01},
		{0x3F, 0x00},
		{},
	} {
		f.Add(atr)
	}
	f.Fuzz(func(t *testing.T, atr []byte) {
		_ = reader.ATRProtocols(atr)
		if vscard.CheckATR(atr) == nil && (len(atr) == 0 || len(atr) > 40 || atr[0] != 0x3B && atr[0] != 0x3F) {
			t.Fatalf("CheckATR accepted %X", atr)
		}
	})
}
