package bpf

import (
	"net/netip"
	"testing"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// Forged sources of the relay's host, arriving on a device (XDP runs
// before the kernel's martian checks): a learning session (ActionPass)
// drops loopback (IPv4 127/8, IPv4-mapped, ::1) and the relay's own
// addresses as drop_spoofed, and hands everything else up; a forwarding
// session whose expected source is flagged LocalSource drops even the
// expected source, and forwards it without the flag. On lo itself
// (ifindex 1) such sources are genuine.
func TestXDPSpoofedSources(t *testing.T) {
	labtest.RequirePrivileged(t)
	l := newLab(t, testbed.WithStaticNeighbors())
	tri := l.tri
	loop := ap(netip.MustParseAddr("127.0.0.1"), 40000)
	learn, learn6 := ap(l.relayA, 30020), ap(tri.RelayCallerIP6, 30020)
	local, flagless := ap(l.relayA, 30070), ap(l.relayA, 30080)
	sessions := map[netip.AddrPort]Session{
		learn:    {Action: ActionPass},
		learn6:   {Action: ActionPass},
		local:    {Action: ActionForward, Expect: loop, OutSrc: ap(l.relayB, 30072), OutDst: ap(tri.CalleeIP, 40000), LocalSource: true},
		flagless: {Action: ActionForward, Expect: loop, OutSrc: ap(l.relayB, 30082), OutDst: ap(tri.CalleeIP, 40000)},
	}
	for k, s := range sessions {
		if err := l.dp.SetSession(k, s); err != nil {
			t.Fatal(err)
		}
		if got, err := l.dp.Session(k); err != nil || got != s {
			t.Fatalf("session %v round trip: %+v, %v (want %+v)", k, got, err, s)
		}
	}
	in := func(src, dst netip.AddrPort) []byte {
		return frame{srcMAC: l.callerEnd.MAC, dstMAC: l.inIf.MAC, src: src, dst: dst, payload: rtp(0, 1)}.bytes()
	}
	for _, tc := range []struct {
		name     string
		ifindex  int
		src, dst netip.AddrPort
		ret      uint32
		reason   Reason
	}{
		{"learning, 127.0.0.1", l.inIf.Index, loop, learn, xdpDrop, ReasonDropSpoofed},
		{"learning, 127.1.2.3", l.inIf.Index, ap(netip.MustParseAddr("127.1.2.3"), 1), learn, xdpDrop, ReasonDropSpoofed},
		{"learning, relay address", l.inIf.Index, ap(l.relayB, 40000), learn, xdpDrop, ReasonDropSpoofed},
		{"learning, ::1", l.inIf.Index, ap(netip.IPv6Loopback(), 40000), learn6, xdpDrop, ReasonDropSpoofed},
		{"learning, ::ffff:127.0.0.1", l.inIf.Index, ap(netip.MustParseAddr("::ffff:127.0.0.1"), 40000), learn6, xdpDrop, ReasonDropSpoofed},
		{"learning, relay IPv6 address", l.inIf.Index, ap(tri.RelayCalleeIP6, 40000), learn6, xdpDrop, ReasonDropSpoofed},
		{"learning, the caller", l.inIf.Index, ap(tri.CallerIP, 20000), learn, xdpPass, ReasonPassUserspace},
		{"learning, 127.0.0.1 on lo", 1, loop, learn, xdpPass, ReasonPassUserspace},
		{"local party, its address forged", l.inIf.Index, loop, local, xdpDrop, ReasonDropSpoofed},
		{"local party, another source", l.inIf.Index, ap(tri.CallerIP, 20000), local, xdpDrop, ReasonDropForeignSource},
		{"unflagged session forwards it", l.inIf.Index, loop, flagless, xdpRedirect, ReasonForwardRedirect},
	} {
		before, err := l.dp.Reasons()
		if err != nil {
			t.Fatal(err)
		}
		ret, _ := l.run(t, tc.ifindex, in(tc.src, tc.dst))
		after, _ := l.dp.Reasons()
		d := after.Sub(before)
		if ret != tc.ret || d[tc.reason] != 1 {
			t.Errorf("%s: action %d, reasons %v; want action %d and one %s", tc.name, ret, nonZero(d), tc.ret, tc.reason)
		}
	}
}

func nonZero(r Reasons) map[string]uint64 {
	m := map[string]uint64{}
	for i, v := range r {
		if v != 0 {
			m[Reason(i).String()] = v
		}
	}
	return m
}
