package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

// rawNG is an NG peer that sends datagrams exactly as given, which the
// client cannot (it always encodes well-formed messages).
type rawNG struct {
	t    *testing.T
	conn *net.UDPConn
	buf  []byte
}

func dialRawNG(t *testing.T, lr *labRelay) *rawNG {
	t.Helper()
	conn, err := lr.tri.Caller.DialUDP(lr.ngAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawNG{t: t, conn: conn, buf: make([]byte, ng.MaxDatagram)}
}

// exchange sends msg and returns the reply with the given cookie (any
// reply, for cookie ""), or nil if none came within wait.
func (p *rawNG) exchange(msg []byte, cookie string, wait time.Duration) ng.Dict {
	p.t.Helper()
	if _, err := p.conn.Write(msg); err != nil {
		p.t.Fatalf("send %q: %v", msg, err)
	}
	deadline := time.Now().Add(wait)
	for {
		_ = p.conn.SetReadDeadline(deadline)
		n, err := p.conn.Read(p.buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			p.t.Fatalf("read reply to %q: %v", msg, err)
		}
		ck, d, err := ng.ParseMessage(p.buf[:n])
		if err != nil {
			p.t.Fatalf("reply to %q does not parse: %v: %q", msg, err, p.buf[:n])
		}
		if cookie == "" || ck == cookie {
			return d
		}
	}
}

func (p *rawNG) send(cookie string, req ng.Dict) ng.Dict {
	p.t.Helper()
	msg, err := ng.AppendMessage(nil, cookie, req)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.exchange(msg, cookie, 2*time.Second)
}

const badInputSDP = "v=0\r\no=- 1 1 IN IP4 198.18.1.2\r\ns=-\r\nc=IN IP4 198.18.1.2\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

// Bad input over the wire (Done-when 8): malformed datagrams, unknown
// commands, missing keys and broken SDP each get an error reply that says
// what is wrong, leave no call behind, and the relay goes on serving.
func TestBadInput(t *testing.T) {
	for _, mode := range labModes {
		t.Run(mode, func(t *testing.T) { testBadInput(t, mode) })
	}
}

func testBadInput(t *testing.T, mode string) {
	tri := labtest.NewTriangle(t)
	lr := startLabRelay(t, tri, labConfig(t, tri, mode))
	p := dialRawNG(t, lr)

	offer := func(kv ...any) ng.Dict {
		d := ng.Dict{"command": "offer", "call-id": "bad", "from-tag": "caller", "sdp": badInputSDP}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(d, kv[i].(string))
			} else {
				d[kv[i].(string)] = kv[i+1]
			}
		}
		return d
	}
	noConn := strings.Replace(badInputSDP, "c=IN IP4 198.18.1.2\r\n", "", 1)
	cases := []struct {
		name string
		raw  string  // sent as is, with cookie "c<index> "
		req  ng.Dict // or encoded
		// every one of these must appear in the error-reason
		want []string
	}{
		{name: "truncated bencode", raw: "d7:command4:ping", want: []string{"malformed", "truncated"}},
		{name: "string length past the end", raw: "d7:command99:pinge", want: []string{"malformed", "truncated"}},
		{name: "trailing garbage", raw: "d7:command4:pingeXYZ", want: []string{"malformed", "trailing"}},
		{name: "not bencode at all", raw: "GET / HTTP/1.0", want: []string{"malformed"}},
		{name: "empty body", raw: "", want: []string{"malformed", "truncated"}},
		{name: "integer, not a dictionary", raw: "i42e", want: []string{"not a dictionary"}},
		{name: "list, not a dictionary", raw: "l7:command4:pinge", want: []string{"not a dictionary"}},
		{name: "non-canonical integer", raw: "d7:command4:ping1:xi007ee", want: []string{"malformed", "integer"}},
		{name: "nested too deeply", raw: "d1:x" + strings.Repeat("l", 100) + strings.Repeat("e", 100) + "e", want: []string{"malformed", "deep"}},
		{name: "no command", req: ng.Dict{"call-id": "bad"}, want: []string{"No command"}},
		{name: "command not a string", req: ng.Dict{"command": []any{"ping"}}, want: []string{"No command"}},
		{name: "unknown command", req: ng.Dict{"command": "dance"}, want: []string{"Unrecognized command"}},
		{name: "offer without call-id", req: offer("call-id", nil), want: []string{"missing", "call-id"}},
		{name: "offer without from-tag", req: offer("from-tag", nil), want: []string{"missing", "from-tag"}},
		{name: "offer without sdp", req: offer("sdp", nil), want: []string{"missing", "sdp"}},
		{name: "offer with sdp not a string", req: offer("sdp", ng.Dict{"v": "0"}), want: []string{"missing", "sdp"}},
		{name: "answer without to-tag", req: ng.Dict{"command": "answer", "call-id": "bad", "from-tag": "caller", "sdp": badInputSDP}, want: []string{"missing", "to-tag"}},
		{name: "answer for an unknown call-id", req: ng.Dict{"command": "answer", "call-id": "nobody", "from-tag": "caller", "to-tag": "callee", "sdp": badInputSDP}, want: []string{"Unknown call-id"}},
		{name: "delete of an unknown call-id", req: ng.Dict{"command": "delete", "call-id": "nobody"}, want: []string{"Unknown call-id"}},
		{name: "query without call-id", req: ng.Dict{"command": "query"}, want: []string{"missing", "call-id"}},
		{name: "offer with garbage sdp", req: offer("sdp", "hello, world"), want: []string{"Failed to parse SDP", "v=0"}},
		{name: "offer with binary sdp", req: offer("sdp", "v=0\r\n\x00\x01\x02"), want: []string{"Failed to parse SDP", "NUL"}},
		{name: "offer with no o= line", req: offer("sdp", strings.Replace(badInputSDP, "o=- 1 1 IN IP4 198.18.1.2\r\n", "", 1)), want: []string{"Failed to parse SDP", "o="}},
		{name: "offer with media but no connection", req: offer("sdp", noConn), want: []string{"Failed to parse SDP", "connection"}},
		{name: "offer with a bad c= address", req: offer("sdp", strings.Replace(badInputSDP, "c=IN IP4 198.18.1.2", "c=IN IP4 198.18.1.999", 1)), want: []string{"Failed to parse SDP", "c="}},
		{name: "offer with port 70000", req: offer("sdp", strings.Replace(badInputSDP, "m=audio 20000", "m=audio 70000", 1)), want: []string{"Failed to parse SDP", "m=", "port"}},
		{name: "offer with an m= line missing fields", req: offer("sdp", strings.Replace(badInputSDP, "m=audio 20000 RTP/AVP 0", "m=audio 20000", 1)), want: []string{"Failed to parse SDP", "m="}},
		{name: "offer on an unknown interface", req: offer("direction", []any{"nowhere", "carrier"}), want: []string{"unknown interface", "nowhere"}},
	}
	for i, tc := range cases {
		cookie := fmt.Sprintf("c%d", i)
		var reply ng.Dict
		if tc.req != nil {
			reply = p.send(cookie, tc.req)
		} else {
			reply = p.exchange([]byte(cookie+" "+tc.raw), cookie, 2*time.Second)
		}
		switch {
		case reply == nil:
			t.Errorf("%s: no reply", tc.name)
		case reply.Str("result") != "error":
			t.Errorf("%s: reply %v, want an error", tc.name, reply)
		default:
			reason := reply.Str("error-reason")
			for _, w := range tc.want {
				if !strings.Contains(strings.ToLower(reason), strings.ToLower(w)) {
					t.Errorf("%s: error-reason %q does not mention %q", tc.name, reason, w)
				}
			}
		}
	}

	// Without a cookie there is nothing to address a reply with (rtpengine
	// drops these too): no reply, and no harm.
	for _, raw := range []string{"d7:command4:pinge", " d7:command4:pinge", ""} {
		if reply := p.exchange([]byte(raw), "", 300*time.Millisecond); reply != nil {
			t.Errorf("datagram without cookie %q answered %v", raw, reply)
		}
	}

	// Nothing refused left a call behind.
	list := p.send("list-1", ng.Dict{"command": "list"})
	if calls := list.List("calls"); len(calls) != 0 {
		t.Errorf("calls left after refused commands: %v", calls)
	}
	if n := lr.r.ports.inUse(); n != 0 {
		t.Errorf("%d port pairs held after refused commands", n)
	}

	// A broken re-offer of a live call is refused and the call lives on.
	c := lr.ngClient(t)
	do(t, c, offer("call-id", "good"))
	if r := p.send("reoffer", offer("call-id", "good", "sdp", "v=0\r\nm=audio")); r.Str("result") != "error" {
		t.Errorf("re-offer with broken SDP: %v", r)
	}
	if q := do(t, c, ng.Dict{"command": "query", "call-id": "good"}); q.Str("result") != "ok" {
		t.Errorf("query after a refused re-offer: %v", q)
	}

	// The relay still serves: ping, a full offer/answer/delete.
	if r := p.send("ping-1", ng.Dict{"command": "ping"}); r.Str("result") != "pong" {
		t.Errorf("ping after bad input: %v", r)
	}
	off := do(t, c, ng.Dict{"command": "offer", "call-id": "after", "from-tag": "caller",
		"sdp": g711SDP(tri.CallerIP, 20000), "direction": []any{"customer", "carrier"}})
	if m := mediaOf(t, off.Str("sdp")); m.Addr() != tri.RelayCalleeIP {
		t.Errorf("offer after bad input names %v", m)
	}
	ans := do(t, c, ng.Dict{"command": "answer", "call-id": "after", "from-tag": "caller", "to-tag": "callee",
		"sdp": g711SDP(tri.CalleeIP, 40000)})
	if m := mediaOf(t, ans.Str("sdp")); m.Addr() != tri.RelayCallerIP {
		t.Errorf("answer after bad input names %v", m)
	}
	for _, id := range []string{"after", "good"} {
		if d := do(t, c, ng.Dict{"command": "delete", "call-id": id}); d.Dict("totals") == nil {
			t.Errorf("delete %s: %v", id, d)
		}
	}
	if n := lr.r.ports.inUse(); n != 0 {
		t.Errorf("%d port pairs held after deleting every call", n)
	}
}

// checkAnchored fails unless every live stream of the rewritten SDP points
// at the relay (127.0.0.1, a port of its range, RTCP on the next port): an
// SDP that let the party's own address through would take media past the
// relay.
func checkAnchored(t *testing.T, body string, got *sdp.Session) {
	t.Helper()
	in, err := sdp.Parse([]byte(body))
	if err != nil {
		t.Fatalf("the relay accepted SDP its parser refuses (%v):\n%q", err, body)
	}
	if len(got.Media) != len(in.Media) {
		t.Fatalf("%d m= lines in, %d out:\n%q", len(in.Media), len(got.Media), body)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	for i, m := range got.Media {
		if (m.Port == 0) != (in.Media[i].Port == 0) {
			t.Fatalf("media %d: port %d in, %d out:\n%q", i, in.Media[i].Port, m.Port, body)
		}
		if m.Port == 0 {
			continue
		}
		if m.Port < 43000 || m.Port > 43099 || m.Conn != lo || m.RTCPPort != m.Port+1 || m.RTCPAddr != lo {
			t.Fatalf("media %d not anchored at the relay: %v:%d rtcp %v:%d\n%q", i, m.Conn, m.Port, m.RTCPAddr, m.RTCPPort, body)
		}
	}
}

// fuzzRelay is a userspace relay on 127.0.0.1 in the current namespace. The
// fuzz target calls its handler directly: no packet is ever sent.
func fuzzRelay(f *testing.F) *Relay {
	f.Helper()
	cfg := DefaultConfig()
	cfg.Dataplane = DataplaneUserspace
	cfg.PortMin, cfg.PortMax = 43000, 43099
	lo := netip.MustParseAddr("127.0.0.1")
	cfg.Interfaces = []Interface{{Name: "default", Addr: lo, Advertised: lo}}
	r, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close() })
	return r
}

// FuzzOfferSDP feeds arbitrary SDP to offer and answer. The relay must
// never panic; each reply is either ok with an SDP that parses, or an
// error with a reason; and a refused offer holds no ports.
func FuzzOfferSDP(f *testing.F) {
	files, _ := filepath.Glob("sdp/testdata/*.sdp")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	lo := netip.MustParseAddr("127.0.0.1")
	for _, s := range []string{
		g711SDP(lo, 20000),
		g711SDP(netip.MustParseAddr("2001:db8::1"), 20000),
		badInputSDP,
		"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\nm=video 0 RTP/AVP 96\r\nm=audio 4002 RTP/SAVP 8\r\na=rtcp:4009 IN IP4 192.0.2.9\r\n",
		"v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\nc=IN IP4 0.0.0.0\n",
		"v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 65535 RTP/AVP 127\r\n",
		"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n",
		"v=0\r\nm=audio",
		"",
	} {
		f.Add(s)
	}
	r := fuzzRelay(f)
	from := netip.MustParseAddrPort("127.0.0.1:5060")
	f.Fuzz(func(t *testing.T, body string) {
		ctx := context.Background()
		check := func(cmd string, rep ng.Dict) bool {
			switch rep.Str("result") {
			case "ok":
				out := rep.Str("sdp")
				got, err := sdp.Parse([]byte(out))
				if err != nil {
					t.Fatalf("%s accepted\n%q\nbut replied with SDP that does not parse: %v\n%q", cmd, body, err, out)
				}
				checkAnchored(t, body, got)
				return true
			case "error":
				if rep.Str("error-reason") == "" {
					t.Fatalf("%s of %q: error without a reason: %v", cmd, body, rep)
				}
				return false
			}
			t.Fatalf("%s of %q: reply %v", cmd, body, rep)
			return false
		}
		rep := r.ServeNG(ctx, from, ng.Dict{"command": "offer", "call-id": "fuzz", "from-tag": "a", "sdp": body})
		if check("offer", rep) {
			rep = r.ServeNG(ctx, from, ng.Dict{"command": "answer", "call-id": "fuzz", "from-tag": "a", "to-tag": "b", "sdp": body})
			check("answer", rep)
			if q := r.ServeNG(ctx, from, ng.Dict{"command": "query", "call-id": "fuzz"}); q.Str("result") != "ok" {
				t.Fatalf("query after offer of %q: %v", body, q)
			}
			if d := r.ServeNG(ctx, from, ng.Dict{"command": "delete", "call-id": "fuzz"}); d.Str("result") != "ok" {
				t.Fatalf("delete after offer of %q: %v", body, d)
			}
		} else if q := r.ServeNG(ctx, from, ng.Dict{"command": "query", "call-id": "fuzz"}); q.Str("result") != "error" {
			t.Fatalf("refused offer of %q left a call: %v", body, q)
		}
		if n := r.ports.inUse(); n != 0 {
			t.Fatalf("%d port pairs held after the call of %q ended", n, body)
		}
	})
}
