package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// xdpMd mirrors struct xdp_md for BPF_PROG_TEST_RUN contexts.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

func TestReasonLabelsMatchC(t *testing.T) {
	spec, err := loadRelay()
	if err != nil {
		t.Fatal(err)
	}
	var e *btf.Enum
	if err := spec.Types.TypeByName("xtr_reason", &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Values) != int(ReasonMax)+1 {
		t.Fatalf("C enum has %d values, Go has %d reasons (+ _MAX)", len(e.Values), ReasonMax)
	}
	for _, v := range e.Values {
		name := strings.ToLower(strings.TrimPrefix(v.Name, "XTR_"))
		if name == "reason_max" {
			if v.Value != uint64(ReasonMax) {
				t.Errorf("XTR_REASON_MAX = %d, Go ReasonMax = %d", v.Value, ReasonMax)
			}
			continue
		}
		if v.Value >= uint64(ReasonMax) {
			t.Errorf("%s = %d is beyond Go's ReasonMax", v.Name, v.Value)
			continue
		}
		if got := Reason(v.Value).String(); got != name {
			t.Errorf("reason %d: C says %q, Go label %q", v.Value, name, got)
		}
	}
}

type lab struct {
	tri            *testbed.Triangle
	dp             *Dataplane
	inIf, outIf    *testbed.End // relay's caller-side and callee-side devices
	callerEnd      *testbed.End
	calleeEnd      *testbed.End
	relayA, relayB netip.Addr // relay's caller- and callee-side addresses
}

func relayEnd(l *testbed.Link, ns *testbed.NS) (relay, peer *testbed.End) {
	if l.A.NS == ns {
		return l.A, l.B
	}
	return l.B, l.A
}

func newLab(t testing.TB, opts ...testbed.Option) *lab {
	t.Helper()
	return newLabSampled(t, 1, opts...)
}

// newLabSampled is newLab with the program's jitter sample interval
// (Options.JitterSample).
func newLabSampled(t testing.TB, jitterSample int, opts ...testbed.Option) *lab {
	t.Helper()
	tri := labtest.NewTriangle(t, opts...)
	root := labtest.MountBPFFS(t)
	dp, err := Open(Options{PinDir: filepath.Join(root, "relay"), PortMin: 30000, PortMax: 39999, JitterSample: jitterSample})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{tri: tri, dp: dp, relayA: tri.RelayCallerIP, relayB: tri.RelayCalleeIP}
	t.Cleanup(func() { _ = dp.Remove() })
	l.inIf, l.callerEnd = relayEnd(tri.CallerLink, tri.Relay)
	l.outIf, l.calleeEnd = relayEnd(tri.CalleeLink, tri.Relay)
	err = tri.Relay.Do(func() error {
		for _, dev := range []string{l.inIf.Name, l.outIf.Name} {
			if _, err := dp.Attach(dev, ModeNative); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{tri.RelayCallerIP, tri.RelayCalleeIP, tri.RelayCallerIP6, tri.RelayCalleeIP6} {
		if err := dp.AddLocalAddr(a); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l *lab) run(t *testing.T, ifindex int, in []byte) (uint32, []byte) {
	t.Helper()
	var ret uint32
	out := make([]byte, len(in)+512)
	err := l.tri.Relay.Do(func() error {
		var err error
		ret, err = l.dp.Program().Run(&ebpf.RunOptions{
			Data:    in,
			DataOut: out,
			Context: xdpMd{DataEnd: uint32(len(in)), IngressIfindex: uint32(ifindex)},
		})
		if err == nil {
			out = out[:len(in)]
		}
		return err
	})
	if err != nil {
		t.Fatalf("prog run: %v", err)
	}
	return ret, out
}

func ap(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }

func TestXDPPaths(t *testing.T) {
	labtest.RequirePrivileged(t)
	l := newLab(t, testbed.WithStaticNeighbors())
	tri := l.tri

	caller := ap(tri.CallerIP, 20000)
	callee := ap(tri.CalleeIP, 40000)
	caller6 := ap(tri.CallerIP6, 20000)
	callee6 := ap(tri.CalleeIP6, 40000)
	unresolved := ap(netip.MustParseAddr("198.18.2.77"), 40000)
	hairpin := ap(netip.MustParseAddr("198.18.1.2"), 22000) // on the ingress side

	// Sessions: caller-side relay ports 30000 (RTP), 30001 (RTCP), and
	// callee-side 30002/30003, plus special cases.
	sessions := map[netip.AddrPort]Session{
		ap(l.relayA, 30000): {Action: ActionForward, Expect: caller, OutSrc: ap(l.relayB, 30002), OutDst: callee},
		ap(l.relayA, 30001): {Action: ActionForward, Expect: ap(tri.CallerIP, 20001), OutSrc: ap(l.relayB, 30003), OutDst: ap(tri.CalleeIP, 40001)},
		ap(l.relayA, 30010): {Action: ActionForward, Expect: caller, OutSrc: ap(l.relayB, 30012), OutDst: callee,
			RTCPDemux: true, RTCPSrcPort: 30013, RTCPDst: ap(tri.CalleeIP, 40001)},
		ap(l.relayA, 30020):           {Action: ActionPass},
		ap(l.relayA, 30030):           {Action: ActionForward, Expect: caller, OutSrc: ap(l.relayB, 30032), OutDst: unresolved},
		ap(l.relayA, 30040):           {Action: ActionDrop},
		ap(l.relayA, 30050):           {Action: ActionForward, Expect: caller, OutSrc: ap(l.relayA, 30052), OutDst: hairpin},
		ap(l.relayA, 30060):           {Action: ActionForward, OutSrc: ap(l.relayB6(), 30062), OutDst: callee6},
		ap(tri.RelayCallerIP6, 30000): {Action: ActionForward, Expect: caller6, OutSrc: ap(tri.RelayCalleeIP6, 30002), OutDst: callee6},
	}
	for k, s := range sessions {
		if err := l.dp.SetSession(k, s); err != nil {
			t.Fatal(err)
		}
		got, err := l.dp.Session(k)
		if err != nil || got != s {
			t.Fatalf("session %v round trip: %+v, %v (want %+v)", k, got, err, s)
		}
	}

	// host programs' sockets on ports of the relay's range: a client's
	// ephemeral port, a service bound there
	hostPort, hostPort6 := ap(l.relayA, 31236), ap(tri.RelayCallerIP6, 31238)
	for _, a := range []netip.AddrPort{hostPort, hostPort6} {
		c, err := tri.Relay.ListenUDP(a.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}

	inMAC, outMAC := l.inIf.MAC, l.outIf.MAC
	fromCaller := func(src, dst netip.AddrPort, payload []byte) []byte {
		return frame{srcMAC: l.callerEnd.MAC, dstMAC: inMAC, src: src, dst: dst, payload: payload}.bytes()
	}

	type want struct {
		ret      uint32
		reason   Reason
		out      func(in []byte) []byte // expected output frame; nil = unchanged input
		legKey   netip.AddrPort         // leg whose counters must move
		legPkts  uint64
		legDrops uint64
	}
	fwd := func(dst netip.AddrPort, src netip.AddrPort, smac, dmac net.HardwareAddr, payload []byte) func([]byte) []byte {
		return func(in []byte) []byte {
			return frame{srcMAC: smac, dstMAC: dmac, src: src, dst: dst, ttl: 64, payload: payload}.bytes()
		}
	}
	rtpPkt := rtp(0, 1)
	v4udpNoCsum := frame{srcMAC: l.callerEnd.MAC, dstMAC: inMAC, src: caller, dst: ap(l.relayA, 30000), payload: rtpPkt, noUDPCsum: true}.bytes()

	tcp := fromCaller(caller, ap(l.relayA, 30000), rtpPkt)
	tcp[14+9] = 6
	frag := fromCaller(caller, ap(l.relayA, 30000), rtpPkt)
	binary.BigEndian.PutUint16(frag[14+6:], 0x2000) // MF
	longTot := fromCaller(caller, ap(l.relayA, 30000), rtpPkt)
	binary.BigEndian.PutUint16(longTot[14+2:], 1400)
	arp := append(make([]byte, 12), 0x08, 0x06)
	arp = append(arp, make([]byte, 28)...)

	cases := []struct {
		name string
		in   []byte
		want want
	}{
		{"ipv4 rtp forward redirect", fromCaller(caller, ap(l.relayA, 30000), rtpPkt),
			want{xdpRedirect, ReasonForwardRedirect, fwd(callee, ap(l.relayB, 30002), outMAC, l.calleeEnd.MAC, rtpPkt), ap(l.relayA, 30000), 1, 0}},
		{"ipv4 without udp checksum stays without", v4udpNoCsum,
			want{xdpRedirect, ReasonForwardRedirect, func([]byte) []byte {
				return frame{srcMAC: outMAC, dstMAC: l.calleeEnd.MAC, src: ap(l.relayB, 30002), dst: callee, ttl: 64, payload: rtpPkt, noUDPCsum: true}.bytes()
			}, ap(l.relayA, 30000), 1, 0}},
		{"ipv4 rtcp on port+1", fromCaller(ap(tri.CallerIP, 20001), ap(l.relayA, 30001), rtcpSR()),
			want{xdpRedirect, ReasonForwardRedirect, fwd(ap(tri.CalleeIP, 40001), ap(l.relayB, 30003), outMAC, l.calleeEnd.MAC, rtcpSR()), ap(l.relayA, 30001), 1, 0}},
		{"rtcp-mux: rtp stays on the rtp port", fromCaller(caller, ap(l.relayA, 30010), rtpPkt),
			want{xdpRedirect, ReasonForwardRedirect, fwd(callee, ap(l.relayB, 30012), outMAC, l.calleeEnd.MAC, rtpPkt), ap(l.relayA, 30010), 1, 0}},
		{"rtcp-mux: rtcp demuxed to port+1", fromCaller(caller, ap(l.relayA, 30010), rtcpSR()),
			want{xdpRedirect, ReasonForwardRedirect, fwd(ap(tri.CalleeIP, 40001), ap(l.relayB, 30013), outMAC, l.calleeEnd.MAC, rtcpSR()), ap(l.relayA, 30010), 1, 0}},
		{"hairpin goes out the ingress device", fromCaller(caller, ap(l.relayA, 30050), rtpPkt),
			want{xdpTX, ReasonForwardTX, fwd(hairpin, ap(l.relayA, 30052), inMAC, mustNeighMAC(t, l), rtpPkt), ap(l.relayA, 30050), 1, 0}},
		{"ipv6 rtp forward", frame{srcMAC: l.callerEnd.MAC, dstMAC: inMAC, src: caller6, dst: ap(tri.RelayCallerIP6, 30000), payload: rtpPkt}.bytes(),
			want{xdpRedirect, ReasonForwardRedirect, fwd(callee6, ap(tri.RelayCalleeIP6, 30002), outMAC, l.calleeEnd.MAC, rtpPkt), ap(tri.RelayCallerIP6, 30000), 1, 0}},
		{"session wants userspace", fromCaller(caller, ap(l.relayA, 30020), rtpPkt),
			want{xdpPass, ReasonPassUserspace, nil, ap(l.relayA, 30020), 0, 0}},
		{"no neighbour yet passes untouched", fromCaller(caller, ap(l.relayA, 30030), rtpPkt),
			want{xdpPass, ReasonPassNoNeigh, nil, ap(l.relayA, 30030), 0, 0}},
		{"session drop", fromCaller(caller, ap(l.relayA, 30040), rtpPkt),
			want{xdpDrop, ReasonDropSession, nil, ap(l.relayA, 30040), 0, 1}},
		{"foreign source after latch", fromCaller(ap(tri.CallerIP, 20999), ap(l.relayA, 30000), rtpPkt),
			want{xdpDrop, ReasonDropForeignSource, nil, ap(l.relayA, 30000), 0, 1}},
		{"foreign address after latch", fromCaller(ap(netip.MustParseAddr("198.18.1.66"), 20000), ap(l.relayA, 30000), rtpPkt),
			want{xdpDrop, ReasonDropForeignSource, nil, ap(l.relayA, 30000), 0, 1}},
		{"v4 to v6 leg goes to userspace", fromCaller(caller, ap(l.relayA, 30060), rtpPkt),
			want{xdpPass, ReasonPassCrossFamily, nil, netip.AddrPort{}, 0, 0}},
		{"unknown port in range dropped", fromCaller(caller, ap(l.relayA, 31234), rtpPkt),
			want{xdpDrop, ReasonDropNoSession, nil, netip.AddrPort{}, 0, 0}},
		{"unknown port in range of a host socket passes (e.g. a DNS reply)", fromCaller(caller, ap(l.relayA, hostPort.Port()), []byte("dns reply")),
			want{xdpPass, ReasonPassHostSocket, nil, netip.AddrPort{}, 0, 0}},
		{"ipv6: unknown port in range of a host socket passes", frame{srcMAC: l.callerEnd.MAC, dstMAC: inMAC, src: caller6, dst: ap(tri.RelayCallerIP6, hostPort6.Port()), payload: []byte("dns reply")}.bytes(),
			want{xdpPass, ReasonPassHostSocket, nil, netip.AddrPort{}, 0, 0}},
		{"port outside range passes (e.g. SIP)", fromCaller(caller, ap(l.relayA, 5060), []byte("OPTIONS sip:x SIP/2.0\r\n")),
			want{xdpPass, ReasonPassNotRelay, nil, netip.AddrPort{}, 0, 0}},
		{"address not the relay's passes", fromCaller(caller, ap(netip.MustParseAddr("198.18.1.99"), 30000), rtpPkt),
			want{xdpPass, ReasonPassNotRelay, nil, netip.AddrPort{}, 0, 0}},
		{"tcp passes", tcp, want{xdpPass, ReasonPassNotUDP, nil, netip.AddrPort{}, 0, 0}},
		{"fragment passes", frag, want{xdpPass, ReasonPassFragment, nil, netip.AddrPort{}, 0, 0}},
		{"arp passes", arp, want{xdpPass, ReasonPassNotIP, nil, netip.AddrPort{}, 0, 0}},
		{"ip total length beyond frame dropped", longTot, want{xdpDrop, ReasonDropMalformed, nil, netip.AddrPort{}, 0, 0}},
		{"udp header truncated dropped", fromCaller(caller, ap(l.relayA, 30000), nil)[:14+20+4], want{xdpDrop, ReasonDropMalformed, nil, netip.AddrPort{}, 0, 0}},
		{"ip header truncated passes", fromCaller(caller, ap(l.relayA, 30000), nil)[:14+10], want{xdpPass, ReasonPassNotIP, nil, netip.AddrPort{}, 0, 0}},
		{"runt frame passes", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, want{xdpPass, ReasonPassNotIP, nil, netip.AddrPort{}, 0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, err := l.dp.Reasons()
			if err != nil {
				t.Fatal(err)
			}
			xskBefore, err := l.dp.XSKStats()
			if err != nil {
				t.Fatal(err)
			}
			var legBefore LegStats
			if c.want.legKey.IsValid() {
				legBefore, _ = l.dp.LegStats(c.want.legKey)
			}
			in := append([]byte(nil), c.in...)
			ret, out := l.run(t, l.inIf.Index, in)
			if ret != c.want.ret {
				t.Errorf("action %d, want %d", ret, c.want.ret)
			}
			after, _ := l.dp.Reasons()
			delta := after.Sub(before)
			for r := Reason(0); r < ReasonMax; r++ {
				want := uint64(0)
				if r == c.want.reason {
					want = 1
				}
				if delta[r] != want {
					t.Errorf("reason %s moved by %d, want %d", r, delta[r], want)
				}
			}
			// what a session sends to userspace goes to the relay's
			// AF_XDP socket; with none registered, to the kernel
			xskAfter, _ := l.dp.XSKStats()
			wantPassed := uint64(0)
			switch c.want.reason {
			case ReasonPassUserspace, ReasonPassNoNeigh, ReasonPassCrossFamily, ReasonPassFIBFail, ReasonPassNoTXPort, ReasonPassMTU:
				wantPassed = 1
			}
			if d := xskAfter.Passed - xskBefore.Passed; d != wantPassed || xskAfter.Redirected != xskBefore.Redirected {
				t.Errorf("AF_XDP stats: %d passed to the kernel (want %d), %d redirected", d, wantPassed, xskAfter.Redirected-xskBefore.Redirected)
			}
			exp := c.in
			if c.want.out != nil {
				exp = c.want.out(c.in)
			}
			if !bytes.Equal(out, exp) {
				t.Errorf("output frame differs\n got %x\nwant %x", out, exp)
			}
			if c.want.out != nil {
				if ipOK, udpOK := checksumsValid(out); !ipOK || !udpOK {
					t.Errorf("checksums: ip %v udp %v", ipOK, udpOK)
				}
			}
			if c.want.legKey.IsValid() {
				leg, err := l.dp.LegStats(c.want.legKey)
				if err != nil {
					t.Fatal(err)
				}
				if leg.Packets-legBefore.Packets != c.want.legPkts || leg.Drops-legBefore.Drops != c.want.legDrops {
					t.Errorf("leg counters moved packets %d drops %d, want %d %d",
						leg.Packets-legBefore.Packets, leg.Drops-legBefore.Drops, c.want.legPkts, c.want.legDrops)
				}
				if c.want.legPkts > 0 && leg.Bytes-legBefore.Bytes != uint64(len(rtpPayloadOf(c.in))) {
					t.Errorf("leg bytes moved %d, want %d", leg.Bytes-legBefore.Bytes, len(rtpPayloadOf(c.in)))
				}
				switch {
				case c.want.legPkts > 0 && leg.LastNs == 0:
					t.Errorf("forwarded, but the leg's last-seen is not stamped")
				case c.want.legPkts == 0 && leg.LastNs != legBefore.LastNs:
					t.Errorf("not forwarded, yet the leg's last-seen moved: a dropped packet would keep a dead call alive")
				}
			}
		})
	}
}

func rtpPayloadOf(f []byte) []byte {
	if binary.BigEndian.Uint16(f[12:]) == 0x86dd {
		return f[14+40+8:]
	}
	return f[14+20+8:]
}

// relayB6 is the relay's callee-side IPv6 address (for the cross-family case).
func (l *lab) relayB6() netip.Addr { return l.tri.RelayCalleeIP6 }

// mustNeighMAC is the MAC the relay has for the hairpin peer 198.18.1.2 (the caller).
func mustNeighMAC(t *testing.T, l *lab) net.HardwareAddr {
	return l.callerEnd.MAC
}

// TestXDPGarbage feeds random and mutated frames: every one must end with a
// counted reason and nothing may be forwarded that was not a valid session
// packet.
func TestXDPGarbage(t *testing.T) {
	labtest.RequirePrivileged(t)
	l := newLab(t, testbed.WithStaticNeighbors())
	tri := l.tri
	caller := ap(tri.CallerIP, 20000)
	if err := l.dp.SetSession(ap(l.relayA, 30000), Session{Action: ActionForward, Expect: caller, OutSrc: ap(l.relayB, 30002), OutDst: ap(tri.CalleeIP, 40000)}); err != nil {
		t.Fatal(err)
	}
	valid := frame{srcMAC: l.callerEnd.MAC, dstMAC: l.inIf.MAC, src: caller, dst: ap(l.relayA, 30000), payload: rtp(0, 7)}.bytes()
	// The kernel's own frames on the lab's links (ARP, IPv6 MLD) pass the
	// attached program too and now and then land inside the window: a
	// round that counts more than its frames is run again, up to 3 times.
	const n, rounds = 300, 3
	for round := 1; ; round++ {
		total := xdpGarbageRound(t, l, valid, n)
		if total == n {
			return
		}
		if round == rounds {
			t.Errorf("%d frames counted %d reasons, want one each (in each of %d rounds)", n, total, rounds)
			return
		}
		t.Logf("round %d: %d frames counted %d reasons; running again", round, n, total)
	}
}

// xdpGarbageRound runs n garbage frames and returns how many exit reasons
// were counted meanwhile.
func xdpGarbageRound(t *testing.T, l *lab, valid []byte, n int) uint64 {
	r := rand.New(rand.NewPCG(1, 2))
	before, _ := l.dp.Reasons()
	for i := 0; i < n; i++ {
		var in []byte
		switch i % 3 {
		case 0: // random bytes
			in = make([]byte, 14+r.IntN(200))
			for j := range in {
				in[j] = byte(r.UintN(256))
			}
		case 1: // a valid frame with random bytes flipped in its headers
			in = append([]byte(nil), valid...)
			for k := 0; k < 3; k++ {
				in[12+r.IntN(42-12)] ^= byte(1 + r.UintN(255))
			}
		case 2: // a valid frame cut short
			in = append([]byte(nil), valid[:14+r.IntN(len(valid)-14)]...)
		}
		ret, _ := l.run(t, l.inIf.Index, in)
		if ret == xdpAborted {
			t.Fatalf("frame %d aborted: %x", i, in)
		}
	}
	after, _ := l.dp.Reasons()
	var total uint64
	for _, v := range after.Sub(before) {
		total += v
	}
	return total
}

// nextHops is key's next-hop cache, if the leg holds one.
func nextHops(t *testing.T, l *lab, key netip.AddrPort) []relayXtrLeg {
	t.Helper()
	per, err := l.dp.leg(key)
	if err != nil || per == nil {
		t.Fatalf("leg of %v: %v", key, err)
	}
	var cached []relayXtrLeg
	for _, c := range per {
		if c.NhExpires != 0 {
			cached = append(cached, c)
		}
	}
	return cached
}

// The next hop is cached in the leg after the first forwarded packet, and
// a later update of the session from userspace makes the
// cached hop stale: the next packet follows the new entry.
func TestNextHopCache(t *testing.T) {
	labtest.RequirePrivileged(t)
	l := newLab(t, testbed.WithStaticNeighbors())
	tri := l.tri
	caller := ap(tri.CallerIP, 20000)
	key := ap(l.relayA, 30000)
	sess := Session{Action: ActionForward, Expect: caller, OutSrc: ap(l.relayB, 30002), OutDst: ap(tri.CalleeIP, 40000)}
	if err := l.dp.SetSession(key, sess); err != nil {
		t.Fatal(err)
	}
	gen := func() uint32 {
		var r relayXtrSess
		if err := l.dp.objs.XtrSessionsV3.Lookup(l.dp.live[key].idx, &r); err != nil {
			t.Fatal(err)
		}
		return r.Gen
	}
	if c := nextHops(t, l, key); len(c) != 0 {
		t.Fatalf("fresh leg has a cached next hop: %+v", c)
	}
	in := frame{srcMAC: l.callerEnd.MAC, dstMAC: l.inIf.MAC, src: caller, dst: key, payload: rtp(0, 1)}.bytes()
	want := frame{srcMAC: l.outIf.MAC, dstMAC: l.calleeEnd.MAC, src: ap(l.relayB, 30002), dst: ap(tri.CalleeIP, 40000), ttl: 64, payload: rtp(0, 1)}.bytes()
	for i := 0; i < 2; i++ { // lookup, then cache hit: the same bytes out
		ret, out := l.run(t, l.inIf.Index, append([]byte(nil), in...))
		if ret != xdpRedirect || !bytes.Equal(out, want) {
			t.Fatalf("packet %d: action %d, out %x", i, ret, out)
		}
		c := nextHops(t, l, key)
		if len(c) == 0 {
			t.Fatalf("packet %d: no CPU cached the next hop", i)
		}
		for _, h := range c {
			if h.NhIfindex != uint32(l.outIf.Index) || net.HardwareAddr(h.NhDmac[:]).String() != l.calleeEnd.MAC.String() || h.NhGen != gen() || h.NhMtu != 1500 {
				t.Fatalf("packet %d: cache %+v (session gen %d)", i, h, gen())
			}
		}
	}
	// the same leg now hairpins back to the caller's side
	hairpin := Session{Action: ActionForward, Expect: caller, OutSrc: ap(l.relayA, 30052), OutDst: ap(netip.MustParseAddr("198.18.1.2"), 22000)}
	if err := l.dp.SetSession(key, hairpin); err != nil {
		t.Fatal(err)
	}
	for _, h := range nextHops(t, l, key) {
		if h.NhGen == gen() {
			t.Fatal("a session update left a next hop cached for the new entry")
		}
	}
	ret, out := l.run(t, l.inIf.Index, append([]byte(nil), in...))
	wantTX := frame{srcMAC: l.inIf.MAC, dstMAC: l.callerEnd.MAC, src: ap(l.relayA, 30052), dst: hairpin.OutDst, ttl: 64, payload: rtp(0, 1)}.bytes()
	if ret != xdpTX || !bytes.Equal(out, wantTX) {
		t.Fatalf("after the update: action %d, out %x; the stale next hop was used", ret, out)
	}
}

// A packet larger than the egress device's MTU is not redirected (the
// driver would drop it): it goes to the kernel, which fragments it or
// answers ICMP, whether its next hop comes from a lookup or the cache.
func TestMTU(t *testing.T) {
	labtest.RequirePrivileged(t)
	l := newLab(t, testbed.WithStaticNeighbors())
	tri := l.tri
	caller := ap(tri.CallerIP, 20000)
	key := ap(l.relayA, 30000)
	if err := l.dp.SetSession(key, Session{Action: ActionForward, Expect: caller, OutSrc: ap(l.relayB, 30002), OutDst: ap(tri.CalleeIP, 40000)}); err != nil {
		t.Fatal(err)
	}
	if out, err := tri.Relay.IP("link", "set", "dev", l.outIf.Name, "mtu", "1000"); err != nil {
		t.Fatalf("set mtu: %v: %s", err, out)
	}
	pkt := func(n int) []byte {
		return frame{srcMAC: l.callerEnd.MAC, dstMAC: l.inIf.MAC, src: caller, dst: key, payload: append(rtp(0, 1), make([]byte, n)...)}.bytes()
	}
	cases := []struct {
		name   string
		size   int
		ret    uint32
		reason Reason
	}{
		{"too big, lookup", 1200, xdpPass, ReasonPassMTU},
		{"fits, lookup fills the cache", 100, xdpRedirect, ReasonForwardRedirect},
		{"too big, cache hit", 1200, xdpPass, ReasonPassMTU},
		{"exactly the MTU, cache hit", 1000 - 20 - 8 - len(rtp(0, 1)), xdpRedirect, ReasonForwardRedirect},
		{"one byte over, cache hit", 1000 - 20 - 8 - len(rtp(0, 1)) + 1, xdpPass, ReasonPassMTU},
	}
	for _, c := range cases {
		before, _ := l.dp.Reasons()
		ret, _ := l.run(t, l.inIf.Index, pkt(c.size))
		after, _ := l.dp.Reasons()
		if d := after.Sub(before); ret != c.ret || d[c.reason] != 1 {
			t.Errorf("%s: action %d (want %d), %s moved %d", c.name, ret, c.ret, c.reason, d[c.reason])
		}
	}
}

// An upgrade over pins of an older map layout: Open removes them (the
// calls they held cannot be adopted), says which, and loads fresh maps.
func TestOpenRemovesOldLayoutPins(t *testing.T) {
	labtest.RequirePrivileged(t)
	dir := filepath.Join(labtest.MountBPFFS(t), "relay")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// a v1 relay's maps, pinned (the shapes do not matter: they go)
	var old []string
	for _, name := range []string{"xtr_sessions_v1", "xtr_calls_v1", "xtr_legs_v1"} {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "old", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Pin(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		m.Close()
		old = append(old, name)
	}
	dp, err := Open(Options{PinDir: dir, PortMin: 30000, PortMax: 39999})
	if err != nil {
		t.Fatalf("Open over v1 pins: %v", err)
	}
	defer dp.Remove()
	if got := dp.StalePins(); !equalSets(got, old) {
		t.Errorf("StalePins = %v, want %v", got, old)
	}
	for _, name := range old {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("old pin %s still there (%v)", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "xtr_sessions"+layout)); err != nil {
		t.Errorf("new maps not pinned: %v", err)
	}
	if calls, err := dp.Calls(); err != nil || len(calls) != 0 {
		t.Errorf("calls after the upgrade: %v, %v", calls, err)
	}
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	for _, s := range b {
		if !m[s] {
			return false
		}
	}
	return true
}

// Call records longer than one map value span several; a shorter save
// leaves none of a longer one's pieces behind, and delete takes them all.
func TestCallRecords(t *testing.T) {
	labtest.RequirePrivileged(t)
	dp, err := Open(Options{PinDir: filepath.Join(labtest.MountBPFFS(t), "relay")})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Remove()
	big := make([]byte, 3*len(relayXtrCallBlob{}.Data)+17)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, c := range []struct {
		id   uint64
		blob []byte
	}{{1, big}, {2, []byte(`{"id":"small"}`)}, {3, big[:len(relayXtrCallBlob{}.Data)]}, {4, nil}} {
		if err := dp.SaveCall(c.id, c.blob); err != nil {
			t.Fatalf("save %d (%d bytes): %v", c.id, len(c.blob), err)
		}
	}
	got, err := dp.Calls()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || !bytes.Equal(got[1], big) || string(got[2]) != `{"id":"small"}` || !bytes.Equal(got[3], big[:len(relayXtrCallBlob{}.Data)]) || len(got[4]) != 0 {
		t.Fatalf("records read back: %d, sizes %d %d %d %d", len(got), len(got[1]), len(got[2]), len(got[3]), len(got[4]))
	}
	if err := dp.SaveCall(1, []byte("shorter")); err != nil {
		t.Fatal(err)
	}
	if err := dp.DeleteCall(3); err != nil {
		t.Fatal(err)
	}
	got, _ = dp.Calls()
	if string(got[1]) != "shorter" || got[3] != nil || len(got) != 3 {
		t.Errorf("after a shorter save and a delete: %q, %d records", got[1], len(got))
	}
	var k uint64
	var v relayXtrCallBlob
	n := 0
	for it := dp.objs.XtrCallsV3.Iterate(); it.Next(&k, &v); {
		n++
	}
	if n != 3 {
		t.Errorf("%d map entries for 3 one-piece records", n)
	}
	if err := dp.SaveCall(5, make([]byte, MaxCallRecord+1)); !errors.Is(err, ErrBlobTooLarge) {
		t.Errorf("save over the limit: %v", err)
	}

	// once Calls has read the map, saves and deletes touch only the
	// pieces a record has: a record new to this process that grows,
	// shrinks and goes leaves no piece behind
	for _, b := range [][]byte{[]byte("one"), big, []byte("again one")} {
		if err := dp.SaveCall(6, b); err != nil {
			t.Fatal(err)
		}
		got, _ = dp.Calls()
		if !bytes.Equal(got[6], b) {
			t.Errorf("record 6 read back as %d bytes, saved %d", len(got[6]), len(b))
		}
	}
	if err := dp.DeleteCall(6); err != nil {
		t.Fatal(err)
	}
	n = 0
	for it := dp.objs.XtrCallsV3.Iterate(); it.Next(&k, &v); {
		n++
	}
	if got, _ = dp.Calls(); got[6] != nil || n != 3 {
		t.Errorf("after deleting record 6: %d map entries, record %q", n, got[6])
	}
}
