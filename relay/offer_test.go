package relay

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/control/ng"
)

// loopbackRelay is a userspace relay on 127.0.0.1/::1 (no privileges).
func loopbackRelay(t testing.TB) *Relay {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dataplane = DataplaneUserspace
	cfg.PortMin, cfg.PortMax = loopbackPortMin, loopbackPortMax
	cfg.Interfaces = []Interface{
		{Name: "pub", Addr: netip.MustParseAddr("127.0.0.1"), Advertised: netip.MustParseAddr("203.0.113.7")},
		{Name: "priv", Addr: netip.MustParseAddr("127.0.0.1"), Advertised: netip.MustParseAddr("127.0.0.1")},
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// loopbackRelay's media port range: below the kernel's ephemeral range
// (32768–60999), so a party bound to 127.0.0.1:0 never gets a port of it
// (the relay refuses an SDP naming one of its own ports: ErrSelfTarget).
const loopbackPortMin, loopbackPortMax = 22000, 22999

func serve(r *Relay, d ng.Dict) ng.Dict {
	return r.ServeNG(context.Background(), netip.MustParseAddrPort("127.0.0.1:5060"), d)
}

const offerICE = "v=0\r\n" +
	"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n" +
	"s=-\r\n" +
	"c=IN IP4 192.0.2.10\r\n" +
	"t=0 0\r\n" +
	"a=ice-lite\r\n" +
	"m=audio 49170 RTP/AVP 0 8 101\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-16\r\n" +
	"a=x-vendor-thing:keep me\r\n" +
	"a=ice-ufrag:8hhY\r\n" +
	"a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n" +
	"a=candidate:1 1 UDP 2130706431 192.0.2.10 49170 typ host\r\n" +
	"a=rtcp-mux\r\n" +
	"a=sendrecv\r\n"

func TestOfferRewritesOnlyWhatItMust(t *testing.T) {
	r := loopbackRelay(t)
	rep := serve(r, ng.Dict{"command": "offer", "call-id": "c1", "from-tag": "a", "sdp": offerICE,
		"direction": []any{"priv", "pub"}, "replace": []any{"origin"}, "rtcp-mux": []any{"demux"}})
	if rep.Str("result") != "ok" {
		t.Fatalf("offer: %v", rep)
	}
	out := rep.Str("sdp")
	port := mediaPort(t, out)
	want := "v=0\r\n" +
		"o=alice 2890844526 2890844526 IN IP4 203.0.113.7\r\n" +
		"s=-\r\n" +
		"c=IN IP4 203.0.113.7\r\n" +
		"t=0 0\r\n" +
		"m=audio " + itoa(port) + " RTP/AVP 0 8 101\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n" +
		"a=fmtp:101 0-16\r\n" +
		"a=x-vendor-thing:keep me\r\n" +
		"a=sendrecv\r\n" +
		"a=rtcp:" + itoa(port+1) + " IN IP4 203.0.113.7\r\n"
	if out != want {
		t.Errorf("offer SDP:\n%s\nwant:\n%s", out, want)
	}
	if port%2 != 0 || port < loopbackPortMin || port > loopbackPortMax-1 {
		t.Errorf("media port %d not an even port of the range", port)
	}

	// The answer goes back to the offerer with the relay's other
	// interface, and rtcp-mux is accepted because the offer asked to demux.
	ans := "v=0\r\no=bob 1 1 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	rep = serve(r, ng.Dict{"command": "answer", "call-id": "c1", "from-tag": "a", "to-tag": "b", "sdp": ans})
	if rep.Str("result") != "ok" {
		t.Fatalf("answer: %v", rep)
	}
	out = rep.Str("sdp")
	if !strings.Contains(out, "c=IN IP4 127.0.0.1\r\n") || !strings.Contains(out, "a=rtcp-mux\r\n") {
		t.Errorf("answer SDP lacks the priv address or rtcp-mux acceptance:\n%s", out)
	}
	if p := mediaPort(t, out); p == port {
		t.Errorf("answer reuses the offer's port %d", p)
	}
}

func TestOfferAnswerErrors(t *testing.T) {
	r := loopbackRelay(t)
	sdp := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	cases := []struct {
		name   string
		req    ng.Dict
		reason string
	}{
		{"no command", ng.Dict{"call-id": "x"}, "No command"},
		{"unknown command", ng.Dict{"command": "frobnicate"}, "Unrecognized command"},
		{"offer without call-id", ng.Dict{"command": "offer", "from-tag": "a", "sdp": sdp}, "call-id"},
		{"offer without from-tag", ng.Dict{"command": "offer", "call-id": "x", "sdp": sdp}, "from-tag"},
		{"offer without sdp", ng.Dict{"command": "offer", "call-id": "x", "from-tag": "a"}, "sdp"},
		{"offer with garbage sdp", ng.Dict{"command": "offer", "call-id": "x", "from-tag": "a", "sdp": "hello"}, "Failed to parse SDP"},
		{"offer with port 70000", ng.Dict{"command": "offer", "call-id": "x", "from-tag": "a", "sdp": strings.Replace(sdp, "4000", "70000", 1)}, "Failed to parse SDP"},
		{"offer on an unknown interface", ng.Dict{"command": "offer", "call-id": "x", "from-tag": "a", "sdp": sdp, "direction": []any{"nope", "pub"}}, "unknown interface"},
		{"answer for an unknown call", ng.Dict{"command": "answer", "call-id": "nope", "from-tag": "a", "to-tag": "b", "sdp": sdp}, "Unknown call-id"},
		{"delete of an unknown call", ng.Dict{"command": "delete", "call-id": "nope"}, "Unknown call-id"},
		{"query of an unknown call", ng.Dict{"command": "query", "call-id": "nope"}, "Unknown call-id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := serve(r, c.req)
			if rep.Str("result") != "error" || !strings.Contains(rep.Str("error-reason"), c.reason) {
				t.Errorf("reply %v, want an error naming %q", rep, c.reason)
			}
		})
	}
	// A refused offer leaves no call and no ports behind.
	if got := serve(r, ng.Dict{"command": "list"}).List("calls"); len(got) != 0 {
		t.Errorf("calls left after refused offers: %v", got)
	}
	if n := r.ports.inUse(); n != 0 {
		t.Errorf("%d port pairs still held after refused offers", n)
	}
	if rep := serve(r, ng.Dict{"command": "ping"}); rep.Str("result") != "pong" {
		t.Errorf("ping: %v", rep)
	}
}

func TestDeleteReleasesPorts(t *testing.T) {
	r := loopbackRelay(t)
	sdp := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 96\r\n"
	rep := serve(r, ng.Dict{"command": "offer", "call-id": "c", "from-tag": "a", "sdp": sdp})
	if rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	if n := r.ports.inUse(); n != 4 {
		t.Errorf("two streams, two parties: %d port pairs held, want 4", n)
	}
	if rep := serve(r, ng.Dict{"command": "delete", "call-id": "c"}); rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	if n := r.ports.inUse(); n != 0 {
		t.Errorf("%d port pairs held after delete", n)
	}
}

func TestParseInterface(t *testing.T) {
	cases := []struct {
		in   string
		want Interface
		err  bool
	}{
		{"pub/203.0.113.1", Interface{Name: "pub", Addr: netip.MustParseAddr("203.0.113.1"), Advertised: netip.MustParseAddr("203.0.113.1")}, false},
		{"priv/10.0.0.5!198.51.100.9", Interface{Name: "priv", Addr: netip.MustParseAddr("10.0.0.5"), Advertised: netip.MustParseAddr("198.51.100.9")}, false},
		{"192.0.2.4", Interface{Name: "default", Addr: netip.MustParseAddr("192.0.2.4"), Advertised: netip.MustParseAddr("192.0.2.4")}, false},
		{"v6/2001:db8::1", Interface{Name: "v6", Addr: netip.MustParseAddr("2001:db8::1"), Advertised: netip.MustParseAddr("2001:db8::1")}, false},
		{"/1.2.3.4", Interface{}, true},
		{"x/not-an-ip", Interface{}, true},
		{"x/1.2.3.4!nope", Interface{}, true},
	}
	for _, c := range cases {
		got, err := ParseInterface(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseInterface(%q) = %+v, %v", c.in, got, err)
		}
	}
}

func mediaPort(t *testing.T, sdp string) int {
	t.Helper()
	for _, l := range splitLines(sdp) {
		if strings.HasPrefix(l, "m=audio ") {
			f := strings.Fields(l)
			n := 0
			for _, ch := range f[1] {
				n = n*10 + int(ch-'0')
			}
			return n
		}
	}
	t.Fatalf("no m=audio in\n%s", sdp)
	return 0
}

func itoa(n int) string { return strconv.Itoa(n) }

// A refused offer for a new call racing list must not deadlock (the
// failing offer used to take r.mu while holding the call's lock).
func TestRefusedOfferRacingList(t *testing.T) {
	r := loopbackRelay(t)
	mki := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^20|1:4\r\n"
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			serve(r, ng.Dict{"command": "list"})
		}
	}()
	for i := 0; i < 2000; i++ {
		rep := serve(r, ng.Dict{"command": "offer", "call-id": "mki" + strconv.Itoa(i), "from-tag": "a", "sdp": mki, "transport-protocol": "RTP/AVP"})
		if rep.Str("result") != "error" {
			t.Fatalf("MKI offer accepted: %v", rep)
		}
	}
	<-done
	if n := len(serve(r, ng.Dict{"command": "list"}).List("calls")); n != 0 {
		t.Errorf("%d refused calls left behind", n)
	}
}

// An empty datagram to a latched port must not crash the relay.
func TestEmptyDatagram(t *testing.T) {
	b := newBatch()
	b.queue(nil, nil, netip.MustParseAddrPort("127.0.0.1:9"))
	if b.nout != 0 {
		t.Fatal("empty datagram queued")
	}
}
