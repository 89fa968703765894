package sip

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

// TestRequestDialCheck: a request's dial check sees the address it is
// about to be sent to — a literal one, or what a name resolved to — and
// its error fails the send before any connection is made; clones keep
// the check; a check that passes lets the request through. (Fork.)
func TestRequestDialCheck(t *testing.T) {
	refused := errors.New("refused by the check")
	tp := NewTransportLayer(net.DefaultResolver, NewParser(), nil)
	defer tp.Close()
	for _, host := range []string{"127.0.0.1", "localhost"} {
		var seen []netip.Addr
		req := NewRequest(OPTIONS, Uri{Host: host, Port: 5066})
		req.AppendHeader(&ViaHeader{Host: "127.0.0.1", Port: 0})
		req.SetDialCheck(func(a netip.Addr) error {
			seen = append(seen, a)
			return refused
		})
		for _, r := range []*Request{req, req.Clone(), req.CloneOwnTo()} {
			conn, err := tp.ClientRequestConnection(context.Background(), r)
			if !errors.Is(err, refused) || conn != nil {
				t.Errorf("%s: connection %v, error %v; want the check's error and no connection", host, conn, err)
			}
		}
		if len(seen) != 3 {
			t.Fatalf("%s: check called %d times, want 3 (request and two clones)", host, len(seen))
		}
		for _, a := range seen {
			if !a.IsLoopback() || a.Is4In6() {
				t.Errorf("%s: check saw %v, want the unmapped loopback address dialled", host, a)
			}
		}
	}
	req := NewRequest(OPTIONS, Uri{Host: "127.0.0.1", Port: 5066})
	req.AppendHeader(&ViaHeader{Host: "127.0.0.1", Port: 0})
	req.SetDialCheck(func(netip.Addr) error { return nil })
	conn, err := tp.ClientRequestConnection(context.Background(), req)
	if err != nil || conn == nil {
		t.Fatalf("a passing check: connection %v, error %v", conn, err)
	}
}
