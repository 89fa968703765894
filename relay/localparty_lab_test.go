package relay

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
)

// A party on the relay's own host — a socket in the relay's namespace,
// on one of its interface addresses or on loopback, its SDP naming it —
// gets two-way media in both xdp modes. Its packets to the relay come
// over loopback, past every XDP program: the bound-socket relay reads
// them on the call's socket; the socketless one binds that leg's two
// ports as kernel sockets (localparty.go), and only that leg's
// (xtrunk_relay_local_legs), until the call ends.
func TestLocalPartyBySocketMode(t *testing.T) {
	loop := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		name           string
		caller, callee func(*testbed.Triangle) netip.Addr // nil: in its own namespace
		localLegs      int
	}{
		{"callee-on-interface", nil, func(tri *testbed.Triangle) netip.Addr { return tri.RelayCalleeIP }, 1},
		{"callee-on-loopback", nil, func(*testbed.Triangle) netip.Addr { return loop }, 1},
		{"caller-on-loopback", func(*testbed.Triangle) netip.Addr { return loop }, nil, 1},
		{"both-local", func(*testbed.Triangle) netip.Addr { return loop }, func(tri *testbed.Triangle) netip.Addr { return tri.RelayCalleeIP }, 2},
	} {
		for _, mode := range xdpModes {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				tri := labtest.NewTriangle(t)
				lr := startLabRelay(t, tri, labConfig(t, tri, mode))
				c := lr.ngClient(t)
				caller, callerAddr := labParty(t, tri, tri.Caller, tri.CallerIP, 20000, tc.caller)
				callee, calleeAddr := labParty(t, tri, tri.Callee, tri.CalleeIP, 40000, tc.callee)
				o := do(t, c, ng.Dict{"command": "offer", "call-id": "local", "from-tag": "caller", "sdp": g711SDP(callerAddr.Addr(), int(callerAddr.Port())),
					"direction": []any{"customer", "carrier"}})
				a := do(t, c, ng.Dict{"command": "answer", "call-id": "local", "from-tag": "caller", "to-tag": "callee",
					"sdp": g711SDP(calleeAddr.Addr(), int(calleeAddr.Port()))})
				toCaller, toCallee := mediaOf(t, a.Str("sdp")), mediaOf(t, o.Str("sdp"))
				const n = 20
				for i, d := range []struct {
					name     string
					src, dst *net.UDPConn
					to       netip.AddrPort
				}{
					{"caller → callee", caller, callee, toCaller},
					{"callee → caller", callee, caller, toCallee},
					{"caller → callee, both latched", caller, callee, toCaller},
				} {
					got := relayed(t, d.src, d.dst, d.to, uint32(0x1111*(i+1)), n)
					t.Logf("%s: %d of %d", d.name, got, n)
					if got < n-1 { // all, give or take one lost on a loaded machine
						t.Errorf("%s: %d of %d packets relayed", d.name, got, n)
					}
				}
				socketless := mode == dataplaneXDPSocketless || labSocketless
				if socketless {
					if got := testutil.ToFloat64(lr.r.xp.m.localLegs); got != float64(tc.localLegs) {
						t.Errorf("xtrunk_relay_local_legs = %v during the call, want %d", got, tc.localLegs)
					}
				}
				do(t, c, ng.Dict{"command": "delete", "call-id": "local"})
				if socketless {
					if got := testutil.ToFloat64(lr.r.xp.m.localLegs); got != 0 {
						t.Errorf("xtrunk_relay_local_legs = %v after the call, want 0", got)
					}
				}
			})
		}
	}
}

// labParty opens a media party's socket: in ns at addr:port, or, when
// local names an address, in the relay's namespace there (on the relay's
// host). It returns the socket and the address its SDP names.
func labParty(t *testing.T, tri *testbed.Triangle, ns *testbed.NS, addr netip.Addr, port uint16, local func(*testbed.Triangle) netip.Addr) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	if local != nil {
		ns, addr = tri.Relay, local(tri)
	}
	ap := netip.AddrPortFrom(addr, port)
	conn, err := ns.ListenUDP(ap.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, ap
}

// relayed sends n PCMU packets of ssrc from src to the relay port to and
// counts what dst receives within a second of the last.
func relayed(t *testing.T, src, dst *net.UDPConn, to netip.AddrPort, ssrc uint32, n int) int {
	t.Helper()
	buf := make([]byte, 12+160)
	for i := range n {
		if _, err := src.WriteToUDPAddrPort(rtpPacket(buf, 0, ssrc, uint16(i)), to); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := 0
	buf = make([]byte, 2048)
	for {
		_ = dst.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := dst.ReadFromUDPAddrPort(buf); err != nil {
			return got
		}
		got++
	}
}

// A socketless relay restarted on the same pins re-adopts a call with a
// party on its host and binds that leg's ports again: media flows both
// ways after the restart, as before it.
func TestLocalPartySocketlessRestart(t *testing.T) {
	tri := labtest.NewTriangle(t)
	cfg := labConfig(t, tri, dataplaneXDPSocketless)
	cfg.RemoveOnExit = false
	first := startLabRelay(t, tri, cfg)
	c := first.ngClient(t)
	caller, _ := labParty(t, tri, tri.Caller, tri.CallerIP, 20000, nil)
	callee, calleeAddr := labParty(t, tri, tri.Relay, netip.MustParseAddr("127.0.0.1"), 40000, nil)
	o := do(t, c, ng.Dict{"command": "offer", "call-id": "local", "from-tag": "caller", "sdp": g711SDP(tri.CallerIP, 20000),
		"direction": []any{"customer", "carrier"}})
	a := do(t, c, ng.Dict{"command": "answer", "call-id": "local", "from-tag": "caller", "to-tag": "callee",
		"sdp": g711SDP(calleeAddr.Addr(), int(calleeAddr.Port()))})
	toCaller, toCallee := mediaOf(t, a.Str("sdp")), mediaOf(t, o.Str("sdp"))
	const n = 20
	check := func(when string) {
		t.Helper()
		for i, d := range []struct {
			name     string
			src, dst *net.UDPConn
			to       netip.AddrPort
		}{{"caller → callee", caller, callee, toCaller}, {"callee → caller", callee, caller, toCallee}} {
			if got := relayed(t, d.src, d.dst, d.to, uint32(0x1111*(i+1)), n); got < n-1 {
				t.Errorf("%s, %s: %d of %d packets relayed", when, d.name, got, n)
			}
		}
	}
	check("before the restart")
	first.stop()
	cfg.RemoveOnExit = true
	lr := startLabRelay(t, tri, cfg)
	if got := testutil.ToFloat64(lr.r.xp.m.localLegs); got != 1 {
		t.Errorf("xtrunk_relay_local_legs = %v after re-adopting the call, want 1", got)
	}
	check("after the restart")
}
