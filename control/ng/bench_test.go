package ng

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"
)

func BenchmarkDecodeOffer(b *testing.B) {
	msg := offerMessage()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeOffer(b *testing.B) {
	d := offerDict()
	buf, err := AppendMessage(nil, "2187_3931468_1", d)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = AppendMessage(buf[:0], "2187_3931468_1", d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerRoundTrip is one client request answered by the server,
// both over loopback UDP; the handler rewrites the SDP as an offer would.
func BenchmarkServerRoundTrip(b *testing.B) {
	srv := startServer(b, HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		return Dict{"sdp": req.Str("sdp")}
	}))
	c, err := Dial(srv.String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := offerDict()
	msg, _ := AppendMessage(nil, "2187_3931468_1", req)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		reply, err := c.Do(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		if len(reply.Str("sdp")) != len(offerSDP) {
			b.Fatal("bad reply")
		}
	}
}

func BenchmarkServerRetransmit(b *testing.B) {
	srv := startServer(b, HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		return Dict{"sdp": req.Str("sdp")}
	}))
	p := newPeer(b, srv)
	msg := offerMessage()
	want := p.roundTrip(string(msg))
	p.conn.SetReadDeadline(time.Time{})
	buf := make([]byte, MaxDatagram)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		p.conn.Write(msg)
		n, err := p.conn.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			b.Fatal("bad cached reply", err)
		}
	}
}
