package relay

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
)

// A party on the relay's own host (here: a socket in the relay's
// namespace, the callee's SDP pointing at it). What the relay sends it
// leaves through the kernel in both xdp modes. What it sends the relay
// goes over loopback, past no XDP program: the bound-socket relay
// receives it on the call's socket; the socketless relay, which holds no
// socket there, does not (README, Socketless: --socketless=false for
// co-located parties). The test pins both so that a change shows.
func TestLocalPartyBySocketMode(t *testing.T) {
	for _, mode := range xdpModes {
		t.Run(mode, func(t *testing.T) {
			tri := labtest.NewTriangle(t)
			lr := startLabRelay(t, tri, labConfig(t, tri, mode))
			c := lr.ngClient(t)
			local, err := tri.Relay.ListenUDP(netip.AddrPortFrom(tri.RelayCalleeIP, 40000).String())
			if err != nil {
				t.Fatal(err)
			}
			defer local.Close()
			caller, err := tri.Caller.ListenUDP(netip.AddrPortFrom(tri.CallerIP, 20000).String())
			if err != nil {
				t.Fatal(err)
			}
			defer caller.Close()
			o := do(t, c, ng.Dict{"command": "offer", "call-id": "local", "from-tag": "caller", "sdp": g711SDP(tri.CallerIP, 20000),
				"direction": []any{"customer", "carrier"}})
			a := do(t, c, ng.Dict{"command": "answer", "call-id": "local", "from-tag": "caller", "to-tag": "callee",
				"sdp": g711SDP(tri.RelayCalleeIP, 40000)})
			toCaller, toCallee := mediaOf(t, a.Str("sdp")), mediaOf(t, o.Str("sdp"))
			if got := relayed(t, caller, local, toCaller, 0x1111, 10); got == 0 {
				t.Errorf("caller → local callee: nothing arrived")
			}
			got := relayed(t, local, caller, toCallee, 0x2222, 10)
			socketless := mode == dataplaneXDPSocketless || labSocketless
			t.Logf("%s: local callee → caller: %d of 10", mode, got)
			if !socketless && got == 0 {
				t.Error("bound sockets: the local party's media was not relayed")
			}
			if socketless && got != 0 {
				t.Errorf("socketless: %d packets of a local party relayed; README says none are (update it)", got)
			}
		})
	}
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
