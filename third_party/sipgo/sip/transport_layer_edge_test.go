package sip

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func countingResolver(n *atomic.Int64) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		n.Add(1)
		return nil, errors.New("no DNS here")
	}}
}

func TestResponseToSourceReliableGone(t *testing.T) {
	var lookups atomic.Int64
	var dropped []*Request
	tl := NewTransportLayer(countingResolver(&lookups), NewParser(), nil,
		WithTransportLayerResponseToSource(func(r *Request) { dropped = append(dropped, r) }))
	defer tl.Close()
	raw := "OPTIONS sip:edge.example.net SIP/2.0\r\nVia: SIP/2.0/TCP needs-dns.example.invalid:5099;branch=z9hG4bK1\r\n" +
		"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	msg, err := NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*Request)
	req.SetTransport("TCP")
	req.SetSource("127.0.0.1:40000")
	if _, err := tl.serverRequestConnection(context.Background(), req); !errors.Is(err, ErrResponseConnectionGone) {
		t.Fatalf("got %v, want ErrResponseConnectionGone", err)
	}
	if len(dropped) != 1 || lookups.Load() != 0 {
		t.Fatalf("dropped %d, DNS lookups %d", len(dropped), lookups.Load())
	}
}

func TestUDPMaxSources(t *testing.T) {
	tl := NewTransportLayer(net.DefaultResolver, NewParser(), nil, WithTransportLayerUDPMaxSources(10))
	defer tl.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = tl.ServeUDP(pc) }()
	defer pc.Close()
	for i := 0; i < 50; i++ {
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("\r\n\r\n"))
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	if n := tl.Pool("udp").Size(); n > 11 {
		t.Fatalf("UDP pool has %d entries, want at most 10 sources + the listener", n)
	}
}

func TestCloseConnectionsFrom(t *testing.T) {
	tl := NewTransportLayer(net.DefaultResolver, NewParser(), nil)
	defer tl.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = tl.ServeTCP(ln) }()
	defer ln.Close()
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(tl.Pool("tcp").connectionsFrom(netip.MustParseAddr("127.0.0.1"))) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := tl.CloseConnectionsFrom(netip.MustParseAddr("127.0.0.2")); n != 0 {
		t.Fatalf("closed %d connections of another address", n)
	}
	if n := tl.CloseConnectionsFrom(netip.MustParseAddr("127.0.0.1")); n != 3 {
		t.Fatalf("closed %d connections, want 3", n)
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 8))
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("connection %d still open (%v)", i, err)
		}
	}
}
