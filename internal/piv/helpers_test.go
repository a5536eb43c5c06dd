package piv_test

import (
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

// h decodes hex, ignoring spaces.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Key pairs are slow to make (RSA), so each set is made once per test binary.
var (
	mainOnce, altOnce sync.Once
	mainPairs         map[piv.Slot]softstore.KeyPair
	altPairs          map[piv.Slot]softstore.KeyPair
)

// mainKeys: 9A RSA 2048, 9C P-256, 9D P-384, 9E RSA 1024: every slot filled
// and the algorithm identifiers 07, 11, 14, 06.
func mainKeys(t testing.TB) map[piv.Slot]softstore.KeyPair {
	t.Helper()
	mainOnce.Do(func() {
		mainPairs = makePairs(map[piv.Slot]softstore.Algorithm{
			piv.SlotAuthentication:     softstore.RSA2048,
			piv.SlotSignature:          softstore.P256,
			piv.SlotKeyManagement:      softstore.P384,
			piv.SlotCardAuthentication: softstore.RSA1024,
		})
	})
	if mainPairs == nil {
		t.Fatal("making the main key pairs failed")
	}
	return mainPairs
}

// altKeys: 9A RSA 3072, 9C RSA 4096, 9D RSA 2048 (decryption), 9E P-256:
// the algorithm identifiers 05 and 16 (Yubico's RSA 4096), RSA key
// management, EC card authentication.
func altKeys(t testing.TB) map[piv.Slot]softstore.KeyPair {
	t.Helper()
	altOnce.Do(func() {
		altPairs = makePairs(map[piv.Slot]softstore.Algorithm{
			piv.SlotAuthentication:     softstore.RSA3072,
			piv.SlotSignature:          softstore.RSA4096,
			piv.SlotKeyManagement:      softstore.RSA2048,
			piv.SlotCardAuthentication: softstore.P256,
		})
	})
	if altPairs == nil {
		t.Fatal("making the alternative key pairs failed")
	}
	return altPairs
}

func makePairs(algs map[piv.Slot]softstore.Algorithm) map[piv.Slot]softstore.KeyPair {
	out := map[piv.Slot]softstore.KeyPair{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := false
	for slot, alg := range algs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kp, err := softstore.NewKeyPair(slot, alg, "vscardkit test "+slot.String())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = true
				return
			}
			out[slot] = kp
		}()
	}
	wg.Wait()
	if failed {
		return nil
	}
	return out
}

// subset returns the key pairs of pairs in slots only.
func subset(pairs map[piv.Slot]softstore.KeyPair, slots ...piv.Slot) map[piv.Slot]softstore.KeyPair {
	out := map[piv.Slot]softstore.KeyPair{}
	for _, s := range slots {
		out[s] = pairs[s]
	}
	return out
}

func newStore(t testing.TB, pairs map[piv.Slot]softstore.KeyPair, opts softstore.Options) *softstore.Store {
	t.Helper()
	s, err := softstore.New(pairs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// card drives an applet as a client would.
type card struct {
	t testing.TB
	a *piv.Applet
}

func newCard(t testing.TB, store piv.Store, opts piv.Options) *card {
	return &card{t: t, a: piv.New(store, opts)}
}

// send transmits one command and checks the response's size.
func (c *card) send(cmd []byte) apdu.Response {
	c.t.Helper()
	resp, err := c.a.Transmit(context.Background(), cmd)
	if err != nil {
		c.t.Fatalf("Transmit(%X): %v", cmd, err)
	}
	if len(resp) < 2 || len(resp) > 258 {
		c.t.Fatalf("Transmit(%X): response of %d bytes", cmd, len(resp))
	}
	return resp
}

// sendHex is send with a hex command.
func (c *card) sendHex(cmd string) apdu.Response {
	c.t.Helper()
	return c.send(h(cmd))
}

// exchange sends cmd (splitting it into a CLA 10 chain of 255-byte pieces
// when its data is longer, as OpenSC and piv-go do) and collects the whole
// response with GET RESPONSE. It returns the data and the final status word.
func (c *card) exchange(cla, ins, p1, p2 byte, data []byte) ([]byte, apdu.SW) {
	c.t.Helper()
	for len(data) > 255 {
		cmd, _ := apdu.Command{CLA: cla | 0x10, INS: ins, P1: p1, P2: p2, Data: data[:255]}.Bytes()
		if r := c.send(cmd); r.SW() != apdu.SWOK {
			return nil, r.SW()
		}
		data = data[255:]
	}
	cmd, _ := apdu.Command{CLA: cla, INS: ins, P1: p1, P2: p2, Data: data, Ne: 256}.Bytes()
	return c.collect(c.send(cmd))
}

// collect follows 61xx with GET RESPONSE.
func (c *card) collect(r apdu.Response) ([]byte, apdu.SW) {
	c.t.Helper()
	var out []byte
	for i := 0; ; i++ {
		out = append(out, r.Data()...)
		if r.SW()&0xFF00 != apdu.SWBytesRemaining {
			return out, r.SW()
		}
		if i > 300 {
			c.t.Fatal("GET RESPONSE does not end")
		}
		r = c.sendHex("00C0000000")
	}
}

// verify sends VERIFY with pin padded to 8 bytes.
func (c *card) verify(pin string) apdu.SW {
	c.t.Helper()
	return c.send(verifyCmd(pin)).SW()
}

func verifyCmd(pin string) []byte {
	b := append([]byte(pin), 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)[:8]
	return append(h("00200080 08"), b...)
}

// getData reads a data object by its tag (hex).
func (c *card) getData(tag string) ([]byte, apdu.SW) {
	c.t.Helper()
	t := h(tag)
	return c.exchange(0x00, 0xCB, 0x3F, 0xFF, append([]byte{0x5C, byte(len(t))}, t...))
}

// tlvs splits b into BER-TLV elements (1-3 byte tags) for test checks.
func tlvs(t testing.TB, b []byte) map[uint32][]byte {
	t.Helper()
	out := map[uint32][]byte{}
	for len(b) > 0 {
		tag := uint32(b[0])
		i := 1
		if b[0]&0x1F == 0x1F {
			for {
				tag = tag<<8 | uint32(b[i])
				i++
				if b[i-1]&0x80 == 0 {
					break
				}
			}
		}
		n := int(b[i])
		i++
		switch n {
		case 0x81:
			n = int(b[i])
			i++
		case 0x82:
			n = int(b[i])<<8 | int(b[i+1])
			i += 2
		}
		if i+n > len(b) {
			t.Fatalf("TLV %X overruns its buffer", tag)
		}
		if _, dup := out[tag]; dup {
			t.Fatalf("TLV %X twice", tag)
		}
		out[tag] = b[i : i+n]
		b = b[i+n:]
	}
	return out
}

// only parses b as exactly one TLV with the given tag and returns its value.
func only(t testing.TB, b []byte, tag uint32) []byte {
	t.Helper()
	m := tlvs(t, b)
	v, ok := m[tag]
	if !ok || len(m) != 1 {
		t.Fatalf("want one TLV %X, got %X", tag, b)
	}
	return v
}
