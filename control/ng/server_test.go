package ng

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// startServer serves h on a loopback UDP port until the test ends, and
// checks that Serve then returns nil.
func startServer(t testing.TB, h Handler, opts ...ServerOption) *net.UDPAddr {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(h, opts...).Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
		conn.Close()
	})
	return conn.LocalAddr().(*net.UDPAddr)
}

// peer is a raw UDP socket standing in for Kamailio.
type peer struct {
	t    testing.TB
	conn *net.UDPConn
}

func newPeer(t testing.TB, srv *net.UDPAddr) *peer {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &peer{t: t, conn: conn}
}

func (p *peer) send(msg string) {
	p.t.Helper()
	if _, err := p.conn.Write([]byte(msg)); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next datagram, or nil if none arrives within d.
func (p *peer) recv(d time.Duration) []byte {
	p.t.Helper()
	buf := make([]byte, MaxDatagram)
	p.conn.SetReadDeadline(time.Now().Add(d))
	n, err := p.conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		p.t.Fatal(err)
	}
	return buf[:n]
}

func (p *peer) roundTrip(msg string) []byte {
	p.t.Helper()
	p.send(msg)
	r := p.recv(2 * time.Second)
	if r == nil {
		p.t.Fatalf("no reply to %.60q", msg)
	}
	return r
}

func echoHandler(calls *atomic.Int64) HandlerFunc {
	return func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		n := calls.Add(1)
		return Dict{"command": req.Str("command"), "call-id": req.Str("call-id"), "from": from.String(), "call": n}
	}
}

func TestServerClientRoundTrip(t *testing.T) {
	type request struct {
		from netip.AddrPort
		req  Dict
	}
	seen := make(chan request, 1)
	srv := startServer(t, HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		seen <- request{from, req}
		return Dict{"sdp": strings.Replace(req.Str("sdp"), "198.51.100.23", "203.0.113.1", -1)}
	}))
	c, err := Dial(srv.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply, err := c.Do(context.Background(), offerDict())
	if err != nil {
		t.Fatal(err)
	}
	r := <-seen
	got, gotFrom := r.req, r.from
	if got.Str("command") != "offer" || !got.Has("flags", "trust-address") || got.Str("sdp") != offerSDP {
		t.Errorf("handler got %#v", got)
	}
	if want := c.LocalAddr().(*net.UDPAddr).AddrPort(); gotFrom != want {
		t.Errorf("handler saw request from %v, want %v", gotFrom, want)
	}
	if reply.Str("result") != "ok" {
		t.Errorf("result = %q, want ok added by the server", reply.Str("result"))
	}
	if sdp := reply.Str("sdp"); !strings.Contains(sdp, "c=IN IP4 203.0.113.1\r\n") || strings.Contains(sdp, "198.51.100.23") {
		t.Errorf("reply sdp = %q", sdp)
	}
}

func TestServerRetransmitGetsCachedReply(t *testing.T) {
	var calls atomic.Int64
	srv := startServer(t, echoHandler(&calls))
	p := newPeer(t, srv)
	const req = "k1_1 d7:call-id3:abc7:command5:offere"
	first := p.roundTrip(req)
	second := p.roundTrip(req)
	if !bytes.Equal(first, second) {
		t.Errorf("retransmit got a different reply:\n%q\n%q", first, second)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times for one request and its retransmit", n)
	}
	// A new cookie is a new request.
	p.roundTrip("k1_2 d7:call-id3:abc7:command5:offere")
	// So is the same cookie from another source.
	newPeer(t, srv).roundTrip(req)
	if n := calls.Load(); n != 3 {
		t.Errorf("handler ran %d times, want 3", n)
	}
}

func TestServerRetransmitWhileHandling(t *testing.T) {
	var calls atomic.Int64
	var logs syncBuffer
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := startServer(t, HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		calls.Add(1)
		close(entered)
		<-release
		return Dict{"n": calls.Load()}
	}), WithLogger(zerolog.New(&logs)))
	p := newPeer(t, srv)
	const req = "slow d7:command5:offere"
	p.send(req)
	<-entered
	p.send(req)
	p.send(req)
	// Release the handler only once the server has seen both retransmits.
	for deadline := time.Now().Add(10 * time.Second); strings.Count(logs.String(), "in progress, dropped") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("server did not drop the retransmits; log:\n%s", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	reply := p.recv(2 * time.Second)
	if string(reply) != "slow d1:ni1e6:result2:oke" {
		t.Errorf("reply = %q", reply)
	}
	if extra := p.recv(200 * time.Millisecond); extra != nil {
		t.Errorf("got a second reply %q; retransmits during handling should be dropped", extra)
	}
	if again := p.roundTrip(req); !bytes.Equal(again, reply) {
		t.Errorf("later retransmit got %q, want the cached %q", again, reply)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times", n)
	}
}

func TestServerCacheTTL(t *testing.T) {
	var calls atomic.Int64
	srv := startServer(t, echoHandler(&calls), WithReplyCacheTTL(50*time.Millisecond))
	p := newPeer(t, srv)
	p.roundTrip("ttl d7:command4:pinge")
	time.Sleep(100 * time.Millisecond)
	p.roundTrip("ttl d7:command4:pinge")
	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2: the reply should have expired", n)
	}
}

func TestServerMalformed(t *testing.T) {
	var calls atomic.Int64
	srv := startServer(t, echoHandler(&calls))
	p := newPeer(t, srv)
	tests := []struct {
		in, cookie, reason string
	}{
		{"m1 d7:commande", "m1", "invalid bencode type byte"},
		{"m2 l7:commande", "m2", "not a dictionary"},
		{"m3 ", "m3", "truncated"},
		{"m4 d7:command4:pingex", "m4", "trailing data"},
		{"m5 i-0e", "m5", "invalid bencode integer"},
	}
	for _, tt := range tests {
		cookie, d, err := ParseMessage(p.roundTrip(tt.in))
		if err != nil {
			t.Fatalf("reply to %q: %v", tt.in, err)
		}
		if cookie != tt.cookie || d.Str("result") != "error" || !strings.Contains(d.Str("error-reason"), tt.reason) {
			t.Errorf("reply to %q = %q %#v; want error mentioning %q", tt.in, cookie, d, tt.reason)
		}
	}
	// Without a cookie there is no way to reply.
	for _, in := range []string{"d7:command4:pinge", " d7:command4:pinge", ""} {
		p.send(in)
		if r := p.recv(100 * time.Millisecond); r != nil {
			t.Errorf("reply to cookieless %q: %q", in, r)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler ran %d times for malformed requests", n)
	}
	p.roundTrip("ok d7:command4:pinge")
}

func TestServerHandlerPanic(t *testing.T) {
	var logs syncBuffer
	srv := startServer(t, HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		if req.Str("command") == "boom" {
			panic(errors.New("handler bug"))
		}
		return Dict{"result": "pong"}
	}), WithLogger(zerolog.New(&logs)), WithWorkers(1))
	p := newPeer(t, srv)
	for i, cookie := range []string{"p1", "p2"} { // twice: the one worker must survive
		if got := string(p.roundTrip(cookie + " d7:command4:boome")); got != cookie+" d12:error-reason14:internal error6:result5:errore" {
			t.Errorf("panic %d: reply = %q", i, got)
		}
	}
	if got := string(p.roundTrip("p3 d7:command4:pinge")); got != "p3 d6:result4:ponge" {
		t.Errorf("after panics: reply = %q", got)
	}
	if l := logs.String(); !strings.Contains(l, "panic") || !strings.Contains(l, "handler bug") || !strings.Contains(l, "stack") {
		t.Errorf("panic not logged with its stack: %s", l)
	}
}

func TestServerReplyResult(t *testing.T) {
	shared := Dict{"x": "y"}
	srv := startServer(t, HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		switch req.Str("command") {
		case "nil":
			return nil
		case "shared":
			return shared
		case "unencodable":
			return Dict{"ok": true}
		case "huge":
			return Dict{"blob": strings.Repeat("x", 70000)}
		}
		return ErrorReply("unknown command")
	}))
	p := newPeer(t, srv)
	tests := []struct{ cmd, want string }{
		{"nil", "nil d6:result2:oke"},
		{"shared", "shared d6:result2:ok1:x1:ye"},
		{"other", "other d12:error-reason15:unknown command6:result5:errore"},
		{"unencodable", "unencodable d12:error-reason14:internal error6:result5:errore"},
		{"huge", "huge d12:error-reason15:reply too large6:result5:errore"},
	}
	for _, tt := range tests {
		req, _ := AppendMessage(nil, tt.cmd, Dict{"command": tt.cmd})
		if got := string(p.roundTrip(string(req))); got != tt.want {
			t.Errorf("%s: reply = %q, want %q", tt.cmd, got, tt.want)
		}
	}
	if len(shared) != 1 {
		t.Errorf("server modified the handler's reply: %#v", shared)
	}
}

func TestServerLargeDatagram(t *testing.T) {
	srv := startServer(t, HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		return Dict{"len": len(req.Str("sdp"))}
	}))
	p := newPeer(t, srv)
	sdp := strings.Repeat("a=x\r\n", 12000) // 60000 bytes
	msg, _ := AppendMessage(nil, "big", Dict{"command": "offer", "sdp": sdp})
	if got := string(p.roundTrip(string(msg))); got != "big d3:leni60000e6:result2:oke" {
		t.Errorf("reply = %q", got)
	}
}

func TestServerWorkersBound(t *testing.T) {
	var cur, peak atomic.Int64
	srv := startServer(t, HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		cur.Add(-1)
		return nil
	}), WithWorkers(3))
	c, err := Dial(srv.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			if _, err := c.Do(context.Background(), Dict{"command": "ping"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d, want 3 (WithWorkers(3), 12 requests)", p)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	entered := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- NewServer(HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
			close(entered)
			<-ctx.Done() // handlers see the server's cancellation
			return ErrorReply("shutting down")
		})).Serve(ctx, conn)
	}()
	p := newPeer(t, conn.LocalAddr().(*net.UDPAddr))
	p.send("s d7:command5:offere")
	<-entered
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	// The request in progress was still answered before Serve returned.
	if r := p.recv(time.Second); !bytes.Contains(r, []byte("shutting down")) {
		t.Errorf("in-flight request got %q", r)
	}
}

func TestServeReturnsErrorWhenConnCloses(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- NewServer(HandlerFunc(nil)).Serve(context.Background(), conn) }()
	time.Sleep(20 * time.Millisecond)
	conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve = %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after conn closed")
	}
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WithAllow: a command from outside the list gets no reply at all and is
// reported; one from inside is answered.
func TestServerAllow(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var refused atomic.Int32
	srv := NewServer(HandlerFunc(func(context.Context, netip.AddrPort, Dict) Dict { return Dict{"result": "pong"} }),
		WithAllow([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, func(netip.AddrPort) { refused.Add(1) }))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, pc) }()
	for _, tc := range []struct {
		src  string
		want bool
	}{{"127.0.0.1:0", true}, {"127.0.0.99:0", false}} {
		timeout := 700 * time.Millisecond // the refused source waits it out
		if tc.want {
			timeout = 10 * time.Second // the answered one: a wait, generous for a loaded machine
		}
		c, err := Dial(pc.LocalAddr().String(), WithLocalAddr(tc.src), WithTimeout(timeout), WithRetransmit(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Do(context.Background(), Dict{"command": "ping"})
		c.Close()
		if (err == nil) != tc.want {
			t.Errorf("ping from %s: %v, want answered %v", tc.src, err, tc.want)
		}
	}
	if refused.Load() < 1 {
		t.Error("the refused datagrams were not reported")
	}
}

// TestServerInline: requests WithInline accepts are answered by the
// reading goroutine itself, the others by workers, so an inline request is
// answered while every worker is stuck; a malformed one is answered
// inline too.
func TestServerInline(t *testing.T) {
	release := make(chan struct{})
	var inWorker, inline atomic.Int64
	srv := startServer(t, HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		switch req.Str("command") {
		case "slow":
			inWorker.Add(1)
			<-release
			return Dict{"result": "slow"}
		default:
			inline.Add(1)
			return Dict{"result": "pong"}
		}
	}), WithWorkers(1), WithInline(func(req Dict) bool { return req.Str("command") != "slow" }))
	defer close(release)
	p := newPeer(t, srv)
	p.send("s1 d7:command4:slowe")
	deadline := time.Now().Add(5 * time.Second)
	for inWorker.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if inWorker.Load() != 1 {
		t.Fatal("the slow request never reached a worker")
	}
	// the one worker is stuck: only the reader can answer these
	if got := string(p.roundTrip("p1 d7:command4:pinge")); got != "p1 d6:result4:ponge" {
		t.Errorf("inline ping while the worker is busy: %q", got)
	}
	if got := string(p.roundTrip("m1 d7:command")); !strings.HasPrefix(got, "m1 d12:error-reason") {
		t.Errorf("malformed request while the worker is busy: %q", got)
	}
	if inline.Load() != 1 {
		t.Errorf("handler ran %d times inline, want 1 (the ping)", inline.Load())
	}
}
