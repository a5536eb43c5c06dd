package vscard

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"
)

// answerInit accepts one connection on l and answers the client's Init.
func answerInit(t *testing.T, l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			ch <- nil
			return
		}
		if _, err := newFrameReader(nc, 0).readMessage(); err == nil {
			newFrameWriter(nc, 0).writeMessage(Message{Type: MsgInit, ReaderID: UndefinedReaderID, Payload: DefaultInit().Append(nil)})
		}
		ch <- nc
	}()
	return ch
}

func sockopt(t *testing.T, nc net.Conn, level, opt int) int {
	t.Helper()
	if q, ok := nc.(*quickAckConn); ok {
		nc = q.TCPConn
	}
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// Dial bounds how long a vanished host can hold a connection: keep-alive
// probes and TCP_USER_TIMEOUT are set on the socket.
func TestDialSetsDeadPeerTimeouts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		cfg                       *DialConfig
		user, idle, intvl, probes int
	}{
		{nil, 30000, 15, 5, 3},
		{&DialConfig{UserTimeout: 7 * time.Second, KeepAlive: 9 * time.Second}, 7000, 9, 5, 3},
	} {
		host := answerInit(t, l)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := Dial(ctx, "tcp", l.Addr().String(), tc.cfg)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if nc := <-host; nc != nil {
			defer nc.Close()
		}
		got := [4]int{
			sockopt(t, c.nc, syscall.IPPROTO_TCP, tcpUserTimeout),
			sockopt(t, c.nc, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE),
			sockopt(t, c.nc, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL),
			sockopt(t, c.nc, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT),
		}
		if want := [4]int{tc.user, tc.idle, tc.intvl, tc.probes}; got != want {
			t.Errorf("%+v: TCP_USER_TIMEOUT, KEEPIDLE, KEEPINTVL, KEEPCNT = %v, want %v", tc.cfg, got, want)
		}
		if sockopt(t, c.nc, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) == 0 {
			t.Errorf("%+v: SO_KEEPALIVE off", tc.cfg)
		}
		c.Close()
	}
}
