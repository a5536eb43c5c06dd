package faults_test

import (
	"net"
	"sync"
	"testing"
)

// Directions through the proxy.
const (
	toClient = iota // host -> client
	toHost          // client -> host
)

// proxy is a TCP proxy between vscclient-go and a host that can reset the
// connection in the middle of a message: it forwards every byte until an
// armed cut, forwards the bytes before the cut, and then resets both sides
// (SO_LINGER 0, so the peers get RST, as from a dropped network path).
type proxy struct {
	l        net.Listener
	upstream string

	mu    sync.Mutex
	sent  [2]int64 // bytes forwarded in each direction, over all connections
	cutAt [2]int64 // forward up to this count, then reset; 0: no cut armed
	cuts  int
	conns []net.Conn
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, upstream: upstream}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *proxy) Addr() string { return p.l.Addr().String() }

// CutAfter arms a cut in direction dir after n more bytes.
func (p *proxy) CutAfter(dir int, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAt[dir] = p.sent[dir] + n
}

// Cuts returns how many cuts happened.
func (p *proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *proxy) Close() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(toClient, up, down)
		go p.pipe(toHost, down, up)
	}
}

// pipe copies from src to dst; a cut resets both.
func (p *proxy) pipe(dir int, src, dst net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			k, cut := int64(n), false
			if at := p.cutAt[dir]; at != 0 && p.sent[dir]+k >= at {
				k, cut = at-p.sent[dir], true
				p.cutAt[dir] = 0
				p.cuts++
			}
			p.sent[dir] += k
			p.mu.Unlock()
			if k > 0 {
				dst.Write(buf[:k])
			}
			if cut {
				reset(src)
				reset(dst)
				return
			}
		}
		if err != nil {
			// One side ended: end the other the same way.
			dst.Close()
			return
		}
	}
}

// reset closes c with an RST rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
