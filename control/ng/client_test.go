package ng

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/sockbuf"
)

// fakeDaemon is a UDP socket that hands every datagram to fn, which may
// reply through conn; it stands in for rtpengine misbehaving on purpose.
func fakeDaemon(t *testing.T, fn func(conn *net.UDPConn, from netip.AddrPort, msg []byte)) string {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, MaxDatagram)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			fn(conn, from, buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return conn.LocalAddr().String()
}

func dial(t *testing.T, addr string, opts ...ClientOption) *Client {
	t.Helper()
	c, err := Dial(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientRetransmitsWithSameCookie(t *testing.T) {
	var mu sync.Mutex
	var cookies []string
	addr := fakeDaemon(t, func(conn *net.UDPConn, from netip.AddrPort, msg []byte) {
		cookie, d, err := ParseMessage(msg)
		if err != nil {
			t.Errorf("client sent %q: %v", msg, err)
			return
		}
		mu.Lock()
		cookies = append(cookies, cookie)
		n := len(cookies)
		mu.Unlock()
		if n < 3 { // lose the first two
			return
		}
		reply, _ := AppendMessage(nil, cookie, Dict{"result": "pong", "command": d.Str("command")})
		conn.WriteToUDPAddrPort(reply, from)
	})
	c := dial(t, addr, WithRetransmit(20*time.Millisecond))
	reply, err := c.Do(context.Background(), Dict{"command": "ping"})
	if err != nil {
		t.Fatal(err)
	}
	if reply.Str("result") != "pong" || reply.Str("command") != "ping" {
		t.Errorf("reply = %#v", reply)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(cookies) != 3 || cookies[0] != cookies[1] || cookies[1] != cookies[2] {
		t.Errorf("cookies sent = %q, want the same one three times", cookies)
	}
}

func TestClientFreshCookies(t *testing.T) {
	var calls atomic.Int64
	c := dial(t, startServer(t, echoHandler(&calls)).String())
	for range 2 {
		if _, err := c.Do(context.Background(), Dict{"command": "ping"}); err != nil {
			t.Fatal(err)
		}
	}
	// Had the cookie been reused, the server would have answered from its
	// cache.
	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times for two requests", n)
	}
}

func TestClientTimeout(t *testing.T) {
	var sent atomic.Int64
	addr := fakeDaemon(t, func(*net.UDPConn, netip.AddrPort, []byte) { sent.Add(1) })
	// A timeout of 20 retransmit intervals: a loaded machine that delays
	// the retransmit timer by 150 ms must not make "retransmitted" false
	// (at 200 ms the test failed so).
	const timeout, every = time.Second, 50 * time.Millisecond
	c := dial(t, addr, WithTimeout(timeout), WithRetransmit(every))
	start := time.Now()
	_, err := c.Do(context.Background(), Dict{"command": "offer"})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do = %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el < timeout || el > 5*timeout {
		t.Errorf("timed out after %v, want about %v", el, timeout)
	}
	if n := sent.Load(); n < 2 || n > int64(timeout/every)+1 {
		t.Errorf("sent %d datagrams in %v at %v intervals", n, timeout, every)
	}
}

// TestClientTimeoutBetweenRetransmits: a timeout that falls between two
// retransmits (250 ms at 100 ms intervals) ends the request at the
// timeout, with the one timer's last wait shortened to it: never a
// retransmit at or after the deadline (at most the sends at 0, 100 and
// 200 ms), never an early ErrTimeout.
func TestClientTimeoutBetweenRetransmits(t *testing.T) {
	var sent atomic.Int64
	addr := fakeDaemon(t, func(*net.UDPConn, netip.AddrPort, []byte) { sent.Add(1) })
	const timeout, every = 250 * time.Millisecond, 100 * time.Millisecond
	c := dial(t, addr, WithTimeout(timeout), WithRetransmit(every))
	start := time.Now()
	_, err := c.Do(context.Background(), Dict{"command": "offer"})
	el := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do = %v, want ErrTimeout", err)
	}
	if el < timeout {
		t.Errorf("timed out after %v, before the timeout of %v", el, timeout)
	}
	// the datagrams are on loopback: give the daemon time to count them
	time.Sleep(50 * time.Millisecond)
	if n := sent.Load(); n < 1 || n > 3 {
		t.Errorf("sent %d datagrams in %v at %v intervals, want 1 to 3", n, timeout, every)
	}
}

func TestClientNobodyListening(t *testing.T) {
	// Find a free port, then free it.
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.LocalAddr().String()
	l.Close()
	c := dial(t, addr, WithTimeout(150*time.Millisecond), WithRetransmit(20*time.Millisecond))
	if _, err := c.Do(context.Background(), Dict{"command": "ping"}); !errors.Is(err, ErrTimeout) {
		t.Errorf("Do = %v, want ErrTimeout", err)
	}
}

func TestClientContext(t *testing.T) {
	addr := fakeDaemon(t, func(*net.UDPConn, netip.AddrPort, []byte) {})
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Do(ctx, Dict{"command": "ping"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do = %v, want context.DeadlineExceeded", err)
	}
}

func TestClientReplyError(t *testing.T) {
	srv := startServer(t, HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		r := ErrorReply("Unknown call-ID")
		r["extra"] = "kept"
		return r
	}))
	c := dial(t, srv.String())
	reply, err := c.Do(context.Background(), Dict{"command": "answer", "call-id": "nope"})
	var re *ReplyError
	if !errors.As(err, &re) || re.Reason != "Unknown call-ID" {
		t.Fatalf("Do error = %v, want *ReplyError", err)
	}
	if reply.Str("extra") != "kept" {
		t.Errorf("reply returned with the error = %#v", reply)
	}
}

func TestClientIgnoresOtherCookies(t *testing.T) {
	addr := fakeDaemon(t, func(conn *net.UDPConn, from netip.AddrPort, msg []byte) {
		cookie, _, _ := ParseMessage(msg)
		for _, m := range []string{
			"not-yours d6:result2:oke",
			"garbage",
			cookie + "x d6:result2:oke",
			cookie + " d6:result4:pong4:mine1:ye",
		} {
			conn.WriteToUDPAddrPort([]byte(m), from)
		}
	})
	c := dial(t, addr)
	reply, err := c.Do(context.Background(), Dict{"command": "ping"})
	if err != nil || reply.Str("mine") != "y" {
		t.Errorf("Do = %#v, %v", reply, err)
	}
}

func TestClientBadReplies(t *testing.T) {
	tests := []struct {
		body string
		want error
	}{
		{"d6:resultlee", nil}, // result present but not a string: treated as missing
		{"de", ErrNoResult},
		{"d6:result", ErrTruncated},
		{"l2:oke", ErrNotDict},
	}
	for _, tt := range tests {
		addr := fakeDaemon(t, func(conn *net.UDPConn, from netip.AddrPort, msg []byte) {
			cookie, _, _ := ParseMessage(msg)
			conn.WriteToUDPAddrPort([]byte(cookie+" "+tt.body), from)
		})
		c := dial(t, addr, WithTimeout(time.Second))
		_, err := c.Do(context.Background(), Dict{"command": "ping"})
		want := tt.want
		if want == nil {
			want = ErrNoResult
		}
		if !errors.Is(err, want) {
			t.Errorf("reply %q: Do = %v, want %v", tt.body, err, want)
		}
	}
}

func TestClientConcurrent(t *testing.T) {
	var calls atomic.Int64
	c := dial(t, startServer(t, echoHandler(&calls)).String())
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			id := fmt.Sprint("call-", i)
			reply, err := c.Do(context.Background(), Dict{"command": "query", "call-id": id})
			if err != nil {
				t.Error(err)
				return
			}
			if got := reply.Str("call-id"); got != id {
				t.Errorf("request %s got the reply for %s", id, got)
			}
		})
	}
	wg.Wait()
}

func TestClientClose(t *testing.T) {
	addr := fakeDaemon(t, func(*net.UDPConn, netip.AddrPort, []byte) {})
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), Dict{"command": "ping"})
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Do in progress = %v, want ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Do did not return after Close")
	}
	if _, err := c.Do(context.Background(), Dict{"command": "ping"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
	c.Close() // idempotent
}

func TestClientRejectsUnencodable(t *testing.T) {
	c := dial(t, fakeDaemon(t, func(*net.UDPConn, netip.AddrPort, []byte) {}))
	if _, err := c.Do(context.Background(), Dict{"command": "offer", "bad": true}); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("Do = %v, want ErrUnsupportedType", err)
	}
	big := Dict{"sdp": strings.Repeat("x", 70000)}
	if _, err := c.Do(context.Background(), big); !errors.Is(err, ErrTooLarge) {
		t.Error("Do sent a request too large for a datagram")
	}
}

// Error replies are classified by their wording: stock rtpengine's
// reasons and xtrunk's relay's.
func TestClassOf(t *testing.T) {
	for reason, want := range map[string]Class{
		"Ran out of ports":                       ClassNoCapacity,
		"ran out of ports: 30000-30003 on ::1":   ClassNoCapacity,
		"Parallel session limit reached":         ClassNoCapacity,
		"Load limit exceeded":                    ClassNoCapacity,
		"CPU usage limit exceeded":               ClassNoCapacity,
		"Bandwidth limit exceeded":               ClassNoCapacity,
		"Failed to parse SDP":                    ClassBadSDP,
		"Failed to parse SDP: sdp: no v= line":   ClassBadSDP,
		"Incomplete SDP specification":           ClassBadSDP,
		"too many media streams: 40 m= lines":    ClassBadSDP,
		"no acceptable SRTP crypto suite":        ClassBadSDP,
		"SRTP MKI is not supported":              ClassBadSDP,
		"Unknown call-id":                        ClassUnknownCall,
		"Unknown call-ID":                        ClassUnknownCall,
		"Call-ID not found or tags didn't match": ClassUnknownCall,
		"Unknown tag":                            ClassUnknownCall,
		"Unrecognized command":                   ClassInternal,
		"unknown interface: carrier":             ClassInternal,
		"internal error":                         ClassInternal,
		"":                                       ClassInternal,
	} {
		if got := ClassOf(reason); got != want {
			t.Errorf("ClassOf(%q) = %v, want %v", reason, got, want)
		}
	}
}

// The client's socket gets the receive buffer asked for (getsockopt
// reads back twice the request), the default without the option.
func TestClientReceiveBuffer(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, tc := range []struct {
		opts []ClientOption
		want int
	}{
		{[]ClientOption{WithReceiveBuffer(1 << 20)}, 1 << 20},
		{nil, sockbuf.DefaultReceive},
	} {
		c, err := Dial(srv.LocalAddr().String(), tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sockbuf.Receive(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r := c.ReceiveBuffer(); got != 2*tc.want || r.Granted != got || r.Requested != tc.want {
			t.Errorf("asked %d: getsockopt %d, %+v; want %d", tc.want, got, r, 2*tc.want)
		}
	}
}
