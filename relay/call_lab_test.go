package relay

import (
	"net/netip"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
)

// streamStats digs a tag's RTP stream stats out of a query reply.
func streamStats(t *testing.T, reply ng.Dict, tag string) ng.Dict {
	t.Helper()
	td := reply.Dict("tags").Dict(tag)
	medias := td.List("medias")
	if len(medias) == 0 {
		t.Fatalf("no medias for tag %q in %v", tag, reply)
	}
	streams := medias[0].(ng.Dict).List("streams")
	return streams[0].(ng.Dict).Dict("stats")
}

func statInt(d ng.Dict, k string) int64 { v, _ := d.Int(k); return v }

// queryUntil queries callID until done holds for the reply, or for
// drainWait at most, and returns the last reply: counters move as the
// relay reads packets, which on a loaded machine is later than a fixed
// pause after sending them.
func queryUntil(t *testing.T, c *ng.Client, callID string, done func(ng.Dict) bool) ng.Dict {
	t.Helper()
	deadline := time.Now().Add(drainWait)
	for {
		q := do(t, c, ng.Dict{"command": "query", "call-id": callID})
		if done(q) || time.Now().After(deadline) {
			return q
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A call through the relay: NG offer/answer over UDP, G.711 at 50 pps both
// ways for 5 s. Nothing is lost, payloads arrive intact, and in xdp mode the
// relay's userspace handled only what XDP passed up (the first packet of
// each direction, before latching): the rest never left the driver.
func TestCallThroughRelay(t *testing.T) {
	for _, mode := range labModes {
		t.Run(mode, func(t *testing.T) { testCall(t, mode) })
	}
}

func testCall(t *testing.T, mode string) {
	tri := labtest.NewTriangle(t)
	lr := startLabRelay(t, tri, labConfig(t, tri, mode))
	c := lr.ngClient(t)

	callerAddr := netip.AddrPortFrom(tri.CallerIP, 20000)
	calleeAddr := netip.AddrPortFrom(tri.CalleeIP, 40000)
	callerConn, err := tri.Caller.ListenUDP(callerAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer callerConn.Close()
	calleeConn, err := tri.Callee.ListenUDP(calleeAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer calleeConn.Close()

	var before bpf.Reasons
	if isXDP(mode) {
		before, _ = lr.r.Reasons()
	}
	offer := do(t, c, ng.Dict{"command": "offer", "call-id": "call-1", "from-tag": "caller",
		"sdp": g711SDP(tri.CallerIP, 20000), "direction": []any{"customer", "carrier"}, "replace": []any{"origin"}})
	toCallee := mediaOf(t, offer.Str("sdp"))
	if toCallee.Addr() != tri.RelayCalleeIP {
		t.Fatalf("offer SDP for the callee names %v, want the relay's carrier address %v", toCallee, tri.RelayCalleeIP)
	}
	answer := do(t, c, ng.Dict{"command": "answer", "call-id": "call-1", "from-tag": "caller", "to-tag": "callee",
		"sdp": g711SDP(tri.CalleeIP, 40000)})
	toCaller := mediaOf(t, answer.Str("sdp"))
	if toCaller.Addr() != tri.RelayCallerIP {
		t.Fatalf("answer SDP for the caller names %v, want the relay's customer address %v", toCaller, tri.RelayCallerIP)
	}

	const n, pps = 250, 50
	atCallee := newSink(calleeConn, 0x1111)
	atCaller := newSink(callerConn, 0x2222)
	errs := make(chan error, 2)
	go func() { errs <- send(callerConn, toCaller, 0x1111, n, pps) }()
	go func() { errs <- send(calleeConn, toCallee, 0x2222, n, pps) }()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range map[string]*sink{"callee": atCallee, "caller": atCaller} {
		good, bad := s.Drain(n, drainWait)
		if good != n || bad != 0 {
			t.Errorf("%s received %d/%d intact packets, %d bad", name, good, n, bad)
		}
		for src := range s.Sources() {
			if src != netip.AddrPortFrom(tri.RelayCallerIP, toCaller.Port()) && src != netip.AddrPortFrom(tri.RelayCalleeIP, toCallee.Port()) {
				t.Errorf("%s got media from %v, not from the relay port it was given", name, src)
			}
		}
	}

	q := do(t, c, ng.Dict{"command": "query", "call-id": "call-1"})
	var fast, user int64
	for _, tag := range []string{"caller", "callee"} {
		st := streamStats(t, q, tag)
		if p := statInt(st, "packets"); p != n {
			t.Errorf("%s: relay counted %d packets received, want %d", tag, p, n)
		}
		fast += statInt(st, "fast path")
		user += statInt(st, "userspace")
	}
	t.Logf("%s: fast path %d, userspace %d packets", mode, fast, user)
	switch {
	case isXDP(mode):
		after, _ := lr.r.Reasons()
		d := after.Sub(before)
		passedUp := int64(d[bpf.ReasonPassUserspace] + d[bpf.ReasonPassNoNeigh])
		if user != passedUp {
			t.Errorf("userspace handled %d packets but XDP passed up %d: userspace saw fast-path packets", user, passedUp)
		}
		if fast < 2*n-10 {
			t.Errorf("only %d of %d packets took the fast path", fast, 2*n)
		}
		if int64(d[bpf.ReasonForwardRedirect]) != fast {
			t.Errorf("XDP redirect counter %d != per-leg fast path %d", d[bpf.ReasonForwardRedirect], fast)
		}
		if mode == dataplaneXDPSocketless {
			checkSocketless(t, lr.r, passedUp)
		}
	case mode == DataplaneUserspace:
		if fast != 0 || user != 2*n {
			t.Errorf("userspace mode: fast %d user %d, want 0 and %d", fast, user, 2*n)
		}
	}
	del := do(t, c, ng.Dict{"command": "delete", "call-id": "call-1"})
	if del.Dict("totals").Dict("RTP") == nil {
		t.Errorf("delete reply without totals: %v", del)
	}
	if r, err := c.Do(t.Context(), ng.Dict{"command": "query", "call-id": "call-1"}); err == nil {
		t.Errorf("query after delete answered %v", r)
	}
}
