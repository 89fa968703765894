package relay

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
)

// compatSubject is one NG speaker under test, in its own Triangle, with
// the port range it hands out.
type compatSubject struct {
	name             string
	tri              *testbed.Triangle
	c                *ng.Client
	portMin, portMax int
}

// compatReplies are the replies to the compatibility sequence.
type compatReplies struct {
	offer, answer, query, del ng.Dict
}

// The same NG sequence (offer with direction, replace origin and flags;
// answer; query; delete) sent by xtrunk's ng.Client to xtrunk's relay and to
// Debian's rtpengine (userspace, -t -1) gives equivalent results: both
// forward media both ways without loss, both put their own address and a
// port of their own range in the SDPs, and their replies carry the same
// keys where rtpengine's shape is what NG clients read.
func TestRtpengineCompat(t *testing.T) {
	var subjects []compatSubject

	xt := labtest.NewTriangle(t)
	lr := startLabRelay(t, xt, labConfig(t, xt, DataplaneXDP))
	def := DefaultConfig()
	subjects = append(subjects, compatSubject{name: "xtrunk", tri: xt, c: lr.ngClient(t), portMin: def.PortMin, portMax: def.PortMax})

	rt := labtest.NewTriangle(t)
	addr := labtest.StartRtpengine(t, rt)
	var rc *ng.Client
	if err := rt.Caller.Do(func() error {
		var err error
		rc, err = ng.Dial(addr, ng.WithTimeout(3*time.Second))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	subjects = append(subjects, compatSubject{name: "rtpengine", tri: rt, c: rc, portMin: testbed.RtpenginePortMin, portMax: testbed.RtpenginePortMax})

	got := map[string]compatReplies{}
	for _, s := range subjects {
		t.Run(s.name, func(t *testing.T) { got[s.name] = runCompatSequence(t, s) })
	}
	if t.Failed() {
		return
	}

	x, r := got["xtrunk"], got["rtpengine"]
	for _, cmd := range []struct {
		name   string
		xr, rr ng.Dict
		must   []string
	}{
		{"offer", x.offer, r.offer, []string{"result", "sdp"}},
		{"answer", x.answer, r.answer, []string{"result", "sdp"}},
		{"query", x.query, r.query, statsKeys},
		{"delete", x.del, r.del, statsKeys},
	} {
		xk, rk := keyPaths(cmd.xr), keyPaths(cmd.rr)
		onlyX, onlyR := setDiff(xk, rk), setDiff(rk, xk)
		t.Logf("%s reply keys: %d shared; only xtrunk %v; only rtpengine %v", cmd.name, len(xk)-len(onlyX), onlyX, onlyR)
		for _, k := range cmd.must {
			if !rk[k] {
				t.Errorf("%s: rtpengine's reply has no %q (this test's idea of its shape is wrong)", cmd.name, k)
			}
			if !xk[k] {
				t.Errorf("%s: xtrunk's reply has no %q, which rtpengine's has", cmd.name, k)
			}
		}
	}
}

// statsKeys are the query/delete keys both relays must have: rtpengine's
// stats shape down to each stream's counters (the tags are the test's).
var statsKeys = func() []string {
	keys := []string{"result", "created", "tags", "totals"}
	for _, proto := range []string{"RTP", "RTCP"} {
		for _, k := range []string{"packets", "bytes", "errors"} {
			keys = append(keys, "totals."+proto+"."+k)
		}
	}
	for _, tag := range []string{"caller", "callee"} {
		st := "tags." + tag + ".medias[].streams[]"
		keys = append(keys, "tags."+tag+".tag", "tags."+tag+".subscriptions[].tag", "tags."+tag+".medias", st, st+".stats",
			st+".stats.packets", st+".stats.bytes", st+".stats.errors", st+".last packet",
			st+".local port", st+".family", st+".endpoint.address")
	}
	return keys
}()

// runCompatSequence places a call through s, streams G.711 both ways and
// returns the replies.
func runCompatSequence(t *testing.T, s compatSubject) compatReplies {
	tri := s.tri
	callerConn, err := tri.Caller.ListenUDP(netip.AddrPortFrom(tri.CallerIP, 20000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer callerConn.Close()
	calleeConn, err := tri.Callee.ListenUDP(netip.AddrPortFrom(tri.CalleeIP, 40000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer calleeConn.Close()

	var out compatReplies
	// the typed messages, as signalling sends them: both relays read them
	opts := ng.Params{CallID: "compat-1", FromTag: "caller", Replace: ng.Replace{Origin: true},
		Flags: ng.Flags{TrustAddress: true, Symmetric: true}}
	offer := ng.Offer{Params: opts}
	offer.SDP, offer.Direction = g711SDP(tri.CallerIP, 20000), []string{"customer", "carrier"}
	out.offer = do(t, s.c, offer.Dict())
	toCallee := checkOwnAddress(t, s, "offer", out.offer.Str("sdp"), tri.RelayCalleeIP)
	answer := ng.Answer{Params: opts}
	answer.ToTag, answer.SDP = "callee", g711SDP(tri.CalleeIP, 40000)
	out.answer = do(t, s.c, answer.Dict())
	toCaller := checkOwnAddress(t, s, "answer", out.answer.Str("sdp"), tri.RelayCallerIP)

	const n, pps = 100, 50
	atCallee := newSink(calleeConn, 0x1111)
	atCaller := newSink(callerConn, 0x2222)
	errs := make(chan error, 2)
	go func() { errs <- send(callerConn, toCaller, 0x1111, n, pps) }()
	go func() { errs <- send(calleeConn, toCallee, 0x2222, n, pps) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		who  string
		s    *sink
		from netip.AddrPort
	}{
		{"callee", atCallee, netip.AddrPortFrom(tri.RelayCalleeIP, toCallee.Port())},
		{"caller", atCaller, netip.AddrPortFrom(tri.RelayCallerIP, toCaller.Port())},
	} {
		good, bad := c.s.Drain(n, drainWait)
		if good != n || bad != 0 {
			t.Errorf("%s: %s received %d/%d intact packets, %d bad", s.name, c.who, good, n, bad)
		}
		for src := range c.s.Sources() {
			if src != c.from {
				t.Errorf("%s: %s got media from %v, want %v (the port its SDP named)", s.name, c.who, src, c.from)
			}
		}
	}

	out.query = do(t, s.c, ng.Query{CallID: "compat-1"}.Dict())
	checkReceived(t, s.name, "query", out.query, n)
	// A delete whose from-tag (or to-tag) names no party of the call --
	// another dialog reusing the Call-ID -- leaves the call alone: a
	// warning, or with "fatal" an error, in rtpengine's words, both relays.
	for _, bad := range []ng.Delete{
		{CallID: "compat-1", FromTag: "intruder"},
		{CallID: "compat-1", FromTag: "caller", ToTag: "intruder"},
	} {
		if r := do(t, s.c, bad.Dict()); r.Str("warning") != "Call-ID not found or tags didn't match" || r.Dict("tags") != nil {
			t.Errorf("%s: delete with a stranger's tag answered %v, want only a warning", s.name, r)
		}
	}
	bad := ng.Delete{CallID: "compat-1", FromTag: "intruder", Fatal: true}.Dict()
	var re *ng.ReplyError
	if _, err := s.c.Do(t.Context(), bad); !errors.As(err, &re) || re.Reason != "Call-ID not found or tags didn't match" || re.Class != ng.ClassUnknownCall {
		t.Errorf("%s: fatal delete with a stranger's tag: %v", s.name, err)
	}
	out.del = do(t, s.c, ng.Delete{CallID: "compat-1", FromTag: "caller"}.Dict())
	checkReceived(t, s.name, "delete", out.del, n)
	if r, err := s.c.Do(t.Context(), ng.Query{CallID: "compat-1"}.Dict()); err == nil {
		t.Errorf("%s: query after delete answered %v", s.name, r)
	}
	return out
}

// checkOwnAddress checks that an SDP reply sends its receiver to the
// subject itself: origin, connection and a port from the subject's range.
func checkOwnAddress(t *testing.T, s compatSubject, cmd, sdpText string, want netip.Addr) netip.AddrPort {
	t.Helper()
	media := mediaOf(t, sdpText)
	if media.Addr() != want {
		t.Errorf("%s: %s SDP has c=%v, want the subject's own %v", s.name, cmd, media.Addr(), want)
	}
	if p := int(media.Port()); p < s.portMin || p > s.portMax {
		t.Errorf("%s: %s SDP has m= port %d, outside its range %d-%d", s.name, cmd, p, s.portMin, s.portMax)
	}
	for _, l := range splitLines(sdpText) {
		if rest, ok := strings.CutPrefix(l, "o="); ok {
			f := strings.Fields(rest)
			if len(f) != 6 || f[5] != want.String() {
				t.Errorf("%s: %s SDP origin %q, want address %v (replace origin)", s.name, cmd, l, want)
			}
		}
	}
	t.Logf("%s: %s SDP sends media to %v", s.name, cmd, media)
	return media
}

// checkReceived checks that each party's RTP stream counted the n packets
// it sent, and the totals all 2n: both relays count what they received
// from a party under that party's tag.
func checkReceived(t *testing.T, name, cmd string, reply ng.Dict, n int64) {
	t.Helper()
	q := ng.DecodeQueryReply(reply) // the typed reply, as signalling reads it
	for _, tag := range []string{"caller", "callee"} {
		medias := q.Tags[tag].Medias
		if len(medias) == 0 {
			t.Errorf("%s: %s: no medias for %q", name, cmd, tag)
			continue
		}
		streams := medias[0].Streams
		if len(streams) == 0 {
			t.Errorf("%s: %s: no streams for %q", name, cmd, tag)
			continue
		}
		if p := streams[0].Stats.Packets; p != n || streams[0].IsRTCP() {
			t.Errorf("%s: %s: %q RTP stream counted %d packets (flags %v), want %d", name, cmd, tag, p, streams[0].Flags, n)
		}
		if streams[0].LastPacket == 0 {
			t.Errorf("%s: %s: %q RTP stream has no last packet", name, cmd, tag)
		}
	}
	if p := q.Totals.RTP.Packets; p != 2*n {
		t.Errorf("%s: %s: totals RTP packets %d, want %d", name, cmd, p, 2*n)
	}
}

// keyPaths lists every key of a reply as a dotted path. The elements of a
// list are merged under "[]", keeping only the keys every element has: a
// stream without "last packet" shows even if its sibling has one.
func keyPaths(d ng.Dict) map[string]bool {
	out := map[string]bool{}
	for k := range subPaths(d) {
		out[strings.TrimPrefix(k, ".")] = true
	}
	return out
}

// subPaths returns v's paths relative to v: ".key" for a dictionary's
// keys, "[]" for the elements of a non-empty list.
func subPaths(v any) map[string]bool {
	out := map[string]bool{}
	switch v := v.(type) {
	case ng.Dict:
		for k, e := range v {
			out["."+k] = true
			for sub := range subPaths(e) {
				out["."+k+sub] = true
			}
		}
	case []any:
		var common map[string]bool
		for i, e := range v {
			m := subPaths(e)
			if i == 0 {
				common = m
			}
			for k := range common {
				if !m[k] {
					delete(common, k)
				}
			}
		}
		if len(v) > 0 {
			out["[]"] = true
		}
		for k := range common {
			out["[]"+k] = true
		}
	}
	return out
}

func setDiff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
