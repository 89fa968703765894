package relay

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

// multiSDP is an SDP with one m= line per port (0 = a rejected stream).
func multiSDP(addr string, ports ...int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\n", addr)
	for _, p := range ports {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:%d\r\n", p, p+1)
	}
	return b.String()
}

func seqPorts(n, from int) []int {
	ps := make([]int, n)
	for i := range ps {
		ps[i] = from + 2*i
	}
	return ps
}

// One SDP cannot take the port range: more than maxStreams m= lines are
// refused with a reason signalling answers 488 with, and nothing is held.
func TestTooManyStreams(t *testing.T) {
	r := loopbackRelay(t)
	for _, n := range []int{maxStreams + 1, 2000} {
		rep := serve(r, ng.Dict{"command": "offer", "call-id": fmt.Sprint("many", n), "from-tag": "a", "sdp": multiSDP("192.0.2.1", seqPorts(n, 4000)...)})
		if rep.Str("result") != "error" || !strings.Contains(rep.Str("error-reason"), ErrTooManyStreams.Error()) {
			t.Errorf("offer with %d m= lines: %v, want an error naming %q", n, rep, ErrTooManyStreams)
		}
		if held := r.ports.inUse(); held != 0 {
			t.Fatalf("offer with %d m= lines refused but %d port pairs held", n, held)
		}
	}
	if calls := serve(r, ng.Dict{"command": "list"}).List("calls"); len(calls) != 0 {
		t.Errorf("refused offers left calls: %v", calls)
	}
	rep := serve(r, ng.Dict{"command": "offer", "call-id": "max", "from-tag": "a", "sdp": multiSDP("192.0.2.1", seqPorts(maxStreams, 4000)...)})
	if rep.Str("result") != "ok" {
		t.Fatalf("offer with %d m= lines: %v", maxStreams, rep)
	}
	if held := r.ports.inUse(); held != 2*maxStreams {
		t.Errorf("%d streams hold %d port pairs, want %d", maxStreams, held, 2*maxStreams)
	}
}

// A rejected stream (port 0) takes no ports and stays rejected in the
// rewritten SDP, with nothing of the party's leaking through; an answer
// with more m= lines than the offer is refused and changes nothing.
func TestRejectedStreamsAndAnswerCount(t *testing.T) {
	r := loopbackRelay(t)
	key := base64.StdEncoding.EncodeToString(testKey(5))
	offer := multiSDP("192.0.2.1", 4000, 0) + "m=video 0 RTP/SAVP 96\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "\r\na=rtcp:4009\r\n"
	rep := serve(r, ng.Dict{"command": "offer", "call-id": "rej", "from-tag": "a", "sdp": offer})
	if rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	if held := r.ports.inUse(); held != 2 {
		t.Errorf("one live stream and two rejected hold %d port pairs, want 2", held)
	}
	out, err := sdp.Parse([]byte(rep.Str("sdp")))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Media) != 3 || out.Media[0].Port == 0 || out.Media[1].Port != 0 || out.Media[2].Port != 0 {
		t.Fatalf("rewritten ports: %s", rep.Str("sdp"))
	}
	if body := strings.Replace(rep.Str("sdp"), "o=- 1 1 IN IP4 192.0.2.1", "", 1); strings.Contains(body, key) || strings.Contains(body, "4009") || strings.Contains(body, "4001") || strings.Contains(body, "192.0.2.1") {
		t.Errorf("the party's key or addresses leak through a rejected stream:\n%s", body)
	}

	before := serve(r, ng.Dict{"command": "query", "call-id": "rej"})
	rep = serve(r, ng.Dict{"command": "answer", "call-id": "rej", "from-tag": "a", "to-tag": "b", "sdp": multiSDP("198.51.100.2", 5000, 0, 0, 5006)})
	if rep.Str("result") != "error" || !strings.Contains(rep.Str("error-reason"), ErrAnswerStreams.Error()) {
		t.Errorf("answer with 4 m= lines to an offer of 3: %v", rep)
	}
	if held := r.ports.inUse(); held != 2 {
		t.Errorf("refused answer: %d port pairs held, want 2", held)
	}
	if after := serve(r, ng.Dict{"command": "query", "call-id": "rej"}); len(after.Dict("tags")) != len(before.Dict("tags")) {
		t.Errorf("refused answer changed the call's parties: %v -> %v", before.Dict("tags"), after.Dict("tags"))
	}

	// the answerer may not revive a stream the offer rejected
	rep = serve(r, ng.Dict{"command": "answer", "call-id": "rej", "from-tag": "a", "to-tag": "b", "sdp": multiSDP("198.51.100.2", 5000, 5002, 5004)})
	if rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	out, _ = sdp.Parse([]byte(rep.Str("sdp")))
	if out.Media[0].Port == 0 || out.Media[1].Port != 0 || out.Media[2].Port != 0 {
		t.Errorf("answer rewritten with ports %d %d %d, want live, 0, 0", out.Media[0].Port, out.Media[1].Port, out.Media[2].Port)
	}
	if held := r.ports.inUse(); held != 2 {
		t.Errorf("after the answer %d port pairs held, want 2", held)
	}
}

// A refused re-offer leaves the call exactly as it was: no stream moved,
// no port taken, no interface or key changed.
func TestRefusedReofferChangesNothing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dataplane = DataplaneUserspace
	cfg.PortMin, cfg.PortMax = 42100, 42109 // five port pairs
	lo := netip.MustParseAddr("127.0.0.1")
	cfg.Interfaces = []Interface{{Name: "pub", Addr: lo, Advertised: netip.MustParseAddr("203.0.113.7")}, {Name: "priv", Addr: lo, Advertised: lo}}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	key := base64.StdEncoding.EncodeToString(testKey(1))
	offer := savpSDP(netip.MustParseAddrPort("192.0.2.1:4000"), "1 AES_CM_128_HMAC_SHA1_80 inline:"+key)
	if rep := serve(r, ng.Dict{"command": "offer", "call-id": "c", "from-tag": "a", "sdp": offer}); rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	if rep := serve(r, ng.Dict{"command": "answer", "call-id": "c", "from-tag": "a", "to-tag": "b", "sdp": multiSDP("198.51.100.2", 5000)}); rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	type snap struct {
		sdp, sdpB netip.AddrPort
		keyIn     string
		enc, dec  *cryptoCtx
		ifaceA    string
		streams   int
		held      int
	}
	take := func() snap {
		r.mu.Lock()
		c := r.calls["c"]
		r.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		e := c.streams[0].ep[0]
		return snap{e.sdp, c.streams[0].ep[1].sdp, string(e.keyIn.Key), e.enc, e.dec, c.sides[0].Iface, len(c.streams), r.ports.inUse()}
	}
	want := take()

	mki := "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(testKey(2)) + "|2^20|1:4"
	moved := savpSDP(netip.MustParseAddrPort("192.0.2.99:6000"), "1 AES_CM_128_HMAC_SHA1_80 inline:"+base64.StdEncoding.EncodeToString(testKey(3)))
	cases := []struct {
		name, sdp string
		extra     ng.Dict
		reason    string
	}{
		// stream 1 moves and re-keys, stream 2 refuses: nothing may move
		{"second stream refused", moved + "m=audio 6002 RTP/SAVP 0\r\na=crypto:" + mki + "\r\n", ng.Dict{"direction": []any{"priv", "pub"}}, "MKI"},
		// stream 1 moves, streams 2 to 4 need six pairs, three are free
		{"out of ports", moved + "m=audio 6002 RTP/AVP 0\r\nm=audio 6004 RTP/AVP 0\r\nm=audio 6006 RTP/AVP 0\r\n", nil, ErrNoPorts.Error()},
		{"unknown interface", moved, ng.Dict{"direction": []any{"nowhere", "pub"}}, "unknown interface"},
		{"too many streams", moved + strings.Repeat("m=audio 6002 RTP/AVP 0\r\n", maxStreams), nil, ErrTooManyStreams.Error()},
		{"bad recording options", moved, ng.Dict{"record call": "yes", "recording-channels": "quad"}, "channels"},
	}
	for _, tc := range cases {
		req := ng.Dict{"command": "offer", "call-id": "c", "from-tag": "a", "sdp": tc.sdp}
		for k, v := range tc.extra {
			req[k] = v
		}
		rep := serve(r, req)
		if rep.Str("result") != "error" || !strings.Contains(rep.Str("error-reason"), tc.reason) {
			t.Errorf("%s: reply %v, want an error naming %q", tc.name, rep, tc.reason)
			continue
		}
		if got := take(); got != want {
			t.Errorf("%s: the refused re-offer changed the call:\n got %+v\nwant %+v", tc.name, got, want)
		}
	}
}

// A list of more calls than one datagram holds answers with as many as
// fit, not with an error (a benchmark asked for every call of a relay
// holding hundreds and got "reply too large").
func TestListFitsOneDatagram(t *testing.T) {
	r := loopbackRelay(t)
	const calls = 150
	for i := range calls {
		id := fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 500))
		rep := serve(r, ng.Dict{"command": "offer", "call-id": id, "from-tag": "a", "sdp": multiSDP("192.0.2.1", 4000)})
		if rep.Str("result") != "ok" {
			t.Fatalf("offer %d: %v", i, rep)
		}
	}
	rep := serve(r, ng.Dict{"command": "list", "limit": int64(1 << 20)})
	if rep.Str("result") != "ok" {
		t.Fatalf("list of %d calls of 504-byte IDs: %v", calls, rep)
	}
	got := rep.List("calls")
	if len(got) == 0 || len(got) >= calls {
		t.Errorf("list gave %d of %d calls, want some but not all (75 KB of IDs)", len(got), calls)
	}
	enc, err := ng.AppendMessage(nil, "cookie", rep)
	if err != nil || len(enc) > 65507 {
		t.Errorf("encoded reply: %d bytes, %v; want one datagram", len(enc), err)
	}
}
