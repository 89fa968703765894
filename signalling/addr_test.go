package signalling

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/route"
)

// serveIn runs a Server whose sockets are bound in ns until the test
// ends.
func serveIn(t *testing.T, ns *testbed.NS, cfg Config, st *store.Store) *Server {
	t.Helper()
	var s *Server
	err := ns.Do(func() error {
		var err error
		s, err = New(cfg, st, WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return run(t, s)
}

// TestSelfHost: in the edge (relay) namespace of a Triangle, a wildcard
// listener names the edge toward each peer by the route's source address
// (Contact, Via and the relay interface agree), never 0.0.0.0 or loopback
// toward a peer that is not loopback; a specific listen address and
// --advertise name every leg the same.
func TestSelfHost(t *testing.T) {
	tri := labtest.NewTriangle(t, testbed.WithoutIPv6())
	p := provision(t)
	cfg := testConfig(t)
	cfg.ListenUDP = "0.0.0.0:0"
	wild := serveIn(t, tri.Relay, cfg, p.st)
	cfg.ListenUDP = netip.AddrPortFrom(tri.RelayCallerIP, 0).String()
	specific := serveIn(t, tri.Relay, cfg, p.st)
	cfg.ListenUDP, cfg.Advertise = "0.0.0.0:0", "edge.example.net"
	advertised := serveIn(t, tri.Relay, cfg, p.st)

	noRoute := netip.MustParseAddr("198.18.9.9") // the lab has no default route
	loopback := netip.MustParseAddr("127.0.0.1")
	type want struct {
		s    *Server
		peer netip.Addr
		host string
	}
	udpPort := strconv.Itoa(int(wild.Addr("UDP").Port()))
	tcpPort := strconv.Itoa(int(wild.Addr("TCP").Port()))
	var got []string
	err := tri.Relay.Do(func() error {
		for _, w := range []want{
			{wild, tri.CallerIP, tri.RelayCallerIP.String()},
			{wild, tri.CalleeIP, tri.RelayCalleeIP.String()},
			{wild, tri.RelayCalleeIP, tri.RelayCalleeIP.String()}, // a local address: itself, not loopback
			{wild, loopback, "127.0.0.1"},
			{specific, tri.CalleeIP, tri.RelayCallerIP.String()},
			{advertised, tri.CallerIP, "edge.example.net"},
			{advertised, tri.CalleeIP, "edge.example.net"},
		} {
			if h := w.s.selfHost("UDP", w.peer); h != w.host {
				got = append(got, "toward "+w.peer.String()+": "+h+", want "+w.host)
			}
		}
		// No route: an address of the edge all the same, never 0.0.0.0
		// or loopback.
		h := wild.selfHost("UDP", noRoute)
		if a, err := netip.ParseAddr(h); err != nil || a.IsLoopback() || a.IsUnspecified() {
			got = append(got, "toward "+noRoute.String()+" (no route): "+h)
		}
		ua := wild.legUA("udp", tri.CalleeIP)
		if c := ua.ContactHDR.Address.String(); c != "sip:"+tri.RelayCalleeIP.String()+":"+udpPort {
			got = append(got, "UDP Contact toward the carrier: "+c)
		}
		if v := ua.Client.Hostname(); v != tri.RelayCalleeIP.String() {
			got = append(got, "UDP Via host toward the carrier: "+v)
		}
		tcp := wild.legUA("TCP", tri.CallerIP).ContactHDR.Address.String()
		if tcp != "sip:"+tri.RelayCallerIP.String()+":"+tcpPort+";transport=tcp" {
			got = append(got, "TCP Contact toward the PBX: "+tcp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range got {
		t.Error(g)
	}

	t.Run("relay interface by address", func(t *testing.T) {
		wild.relayIfaces = map[string]string{tri.RelayCallerIP.String(): "net-a", tri.RelayCalleeIP.String(): "net-b"}
		defer func() { wild.relayIfaces = nil }()
		var term, orig, roles []string
		_ = tri.Relay.Do(func() error {
			ctx := context.Background()
			toCallee := []route.Target[dest]{{Value: dest{host: tri.CalleeIP.String(), transport: "UDP"}}}
			toCaller := []route.Target[dest]{{Value: dest{host: tri.CallerIP.String(), transport: "UDP"}}}
			c := &call{p: &plan{dir: store.DirectionTerminating}, aUA: wild.legUA("UDP", tri.CallerIP)}
			term = wild.interfaces(ctx, c, toCallee)
			c = &call{p: &plan{dir: store.DirectionOriginating}, aUA: wild.legUA("UDP", tri.CalleeIP)}
			orig = wild.interfaces(ctx, c, toCaller)
			wild.relayIfaces = nil
			roles = wild.interfaces(ctx, c, toCaller)
			return nil
		})
		if term[0] != "net-a" || term[1] != "net-b" {
			t.Errorf("termination: %v, want [net-a net-b]", term)
		}
		if orig[0] != "net-b" || orig[1] != "net-a" {
			t.Errorf("origination: %v, want [net-b net-a]", orig)
		}
		if roles[0] != "carrier" || roles[1] != "customer" {
			t.Errorf("without --relay-interface, origination: %v, want [carrier customer]", roles)
		}
	})

	// On the wire: requests toward the carrier leave from the listening
	// socket (its port) on the carrier-side address, whether the client
	// builds them (OPTIONS) or they come built (an in-dialog request,
	// sent with options).
	t.Run("UDP requests leave from the listener", func(t *testing.T) {
		peer, err := tri.Callee.ListenUDP(netip.AddrPortFrom(tri.CalleeIP, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		pa := peer.LocalAddr().(*net.UDPAddr).AddrPort()
		var client *sipgo.Client
		_ = tri.Relay.Do(func() error { client = wild.legUA("UDP", tri.CalleeIP).Client; return nil })
		target := sip.Uri{Scheme: "sip", Host: pa.Addr().String(), Port: int(pa.Port())}

		// Ended by the subtest's end (defer): a 300 ms context could expire
		// before a goroutine delayed on a loaded machine sent anything.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// sipgo takes the listener as its serving goroutine starts: a
		// request before that got a socket of its own, which from a
		// goroutine outside the namespace went out of the host's own
		// interface. Wait for it, and send from inside the namespace.
		waitUDPRegistered(wild.srv.TransportLayer().Pool("udp"), wild.lis.udp.LocalAddr().String())
		go func() {
			_ = tri.Relay.Do(func() error { _, _ = client.Do(ctx, sip.NewRequest(sip.OPTIONS, target)); return nil })
		}()
		checkFromListener(t, peer, wild, tri.RelayCalleeIP, "OPTIONS")

		bye := sip.NewRequest(sip.BYE, target)
		from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", Host: tri.RelayCalleeIP.String()}, Params: sip.NewParams()}
		from.Params.Add("tag", "a")
		bye.AppendHeader(&from)
		bye.AppendHeader(&sip.ToHeader{Address: target})
		cid := sip.CallIDHeader("addr-test")
		bye.AppendHeader(&cid)
		bye.AppendHeader(&sip.CSeqHeader{SeqNo: 2, MethodName: sip.BYE})
		bye.SetBody(nil)
		if err := tri.Relay.Do(func() error { return client.WriteRequest(bye, sipgo.ClientRequestAddVia) }); err != nil {
			t.Fatal(err)
		}
		checkFromListener(t, peer, wild, tri.RelayCalleeIP, "BYE")
	})
}

// checkFromListener reads one request at peer and wants it from s's UDP
// listener port on addr, with Via naming addr and that port.
func checkFromListener(t *testing.T, peer *net.UDPConn, s *Server, addr netip.Addr, method string) {
	t.Helper()
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, src, err := peer.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	msg := string(buf[:n])
	want := netip.AddrPortFrom(addr, s.Addr("UDP").Port())
	if !strings.HasPrefix(msg, method+" ") {
		t.Fatalf("got %q, want a %s", msg, method)
	}
	if got := src.AddrPort(); netip.AddrPortFrom(got.Addr().Unmap(), got.Port()) != want {
		t.Errorf("%s from %s, want from the listener %s", method, got, want)
	}
	if via := string(sipHeaderValue(buf[:n], "Via")); !strings.HasPrefix(via, "SIP/2.0/UDP "+want.String()+";") {
		t.Errorf("%s Via %q, want sent-by %s", method, via, want)
	}
}

// TestRouteCacheBounded: the route cache keeps at most routeCacheSize
// peers and asks the kernel again once an answer is routeCacheTTL old.
func TestRouteCacheBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	lookups := 0
	r := newRouteTable()
	r.now = func() time.Time { return now }
	r.lookup = func(peer netip.Addr) (netip.Addr, error) {
		lookups++
		return routeSource(netip.MustParseAddr("127.0.0.1"))
	}
	for i := range routeCacheSize + 100 {
		b := [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
		if _, err := r.source(netip.AddrFrom4(b)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.entries); n > routeCacheSize {
		t.Fatalf("%d cached, want at most %d", n, routeCacheSize)
	}
	peer := netip.MustParseAddr("10.200.0.1")
	_, _ = r.source(peer)
	before := lookups
	_, _ = r.source(peer)
	if lookups != before {
		t.Error("a fresh answer was looked up again")
	}
	now = now.Add(routeCacheTTL)
	_, _ = r.source(peer)
	if lookups != before+1 {
		t.Error("a stale answer was not looked up again")
	}
}

// TestRouteSourceLoopback: on the host's loopback, the route lookup
// answers loopback for a loopback peer and refuses the unspecified
// address.
func TestRouteSourceLoopback(t *testing.T) {
	src, err := routeSource(netip.MustParseAddr("127.0.0.1"))
	if err != nil || src != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("toward 127.0.0.1: %v %v", src, err)
	}
	for _, bad := range []string{"0.0.0.0", "::", "224.0.0.1"} {
		if a, err := routeSource(netip.MustParseAddr(bad)); err == nil {
			t.Errorf("toward %s: %v, want an error", bad, a)
		}
	}
}

// TestParseRelayInterfaces reads NAME/IP[!ADV].
func TestParseRelayInterfaces(t *testing.T) {
	m, err := parseRelayInterfaces([]string{"customer/198.18.1.1", "carrier/198.18.2.1!203.0.113.9", "v6/2001:db8::1"})
	if err != nil || m["198.18.1.1"] != "customer" || m["198.18.2.1"] != "carrier" || m["2001:db8::1"] != "v6" {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"customer", "/198.18.1.1", "x/nope", "x/0.0.0.0"} {
		if _, err := parseRelayInterfaces([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
