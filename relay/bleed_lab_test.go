package relay

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
)

// The attacker's side of the bleed lab: 198.18.3.2 <-> 198.18.3.1 (relay).
var (
	bleedAttackerIP  = netip.MustParseAddr("198.18.3.2")
	bleedRelayPeerIP = netip.MustParseAddr("198.18.3.1")
)

const bleedSSRC = 0xbadbad00

// addAttacker joins an attacker namespace to the triangle's relay. The
// attacker reaches both of the relay's call-facing addresses through its
// own link, as a host elsewhere on the Internet reaches a relay's public
// addresses. Its end carries an XDP_PASS program so that anything the
// relay's XDP program redirected to it would arrive and be counted.
func addAttacker(t *testing.T, tri *testbed.Triangle) *testbed.NS {
	t.Helper()
	atk, err := tri.Lab.AddNS("attacker")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tri.Lab.Link(atk, tri.Relay, testbed.LinkOptions{
		AAddrs:        []netip.Prefix{netip.PrefixFrom(bleedAttackerIP, 24)},
		BAddrs:        []netip.Prefix{netip.PrefixFrom(bleedRelayPeerIP, 24)},
		XDPPassA:      true,
		TxChecksumOff: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"198.18.1.0/24", "198.18.2.0/24"} {
		if err := atk.AddRoute(netip.MustParsePrefix(p), bleedRelayPeerIP); err != nil {
			t.Fatal(err)
		}
	}
	return atk
}

// bleedConfig is the lab relay with a small port range (so a sweep of all
// of it is quick) and a short learning window (so the attack runs before,
// inside and after it). The relay also listens on the attacker-facing
// address: in xdp mode the program is then on the device the attack
// arrives on, as it is on a real relay's public NIC.
func bleedConfig(t *testing.T, tri *testbed.Triangle, mode string) Config {
	cfg := labConfig(t, tri, mode)
	cfg.PortMin, cfg.PortMax = 30000, 30199
	cfg.LearnWindow = time.Second
	cfg.Interfaces = append(cfg.Interfaces, Interface{Name: "peering", Addr: bleedRelayPeerIP, Advertised: bleedRelayPeerIP})
	return cfg
}

// sprayer sends valid-looking RTP (v2, PT 0, its own SSRC) to every port of
// the relay's range on each target address, sweep after sweep, and RTCP
// sender reports to every odd port, until stopped. It counts what it sent
// to each address:port and everything it receives.
type sprayer struct {
	conn    *net.UDPConn
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	sent    map[netip.AddrPort]int
	sweeps  int
	got     int
	gotFrom map[netip.AddrPort]int
	rdone   chan struct{}
}

func startSprayer(t *testing.T, ns *testbed.NS, targets []netip.Addr, pmin, pmax int) *sprayer {
	t.Helper()
	conn, err := ns.ListenUDP(netip.AddrPortFrom(bleedAttackerIP, 6666).String())
	if err != nil {
		t.Fatal(err)
	}
	s := &sprayer{conn: conn, stop: make(chan struct{}), done: make(chan struct{}), rdone: make(chan struct{}),
		sent: map[netip.AddrPort]int{}, gotFrom: map[netip.AddrPort]int{}}
	go func() {
		defer close(s.rdone)
		buf := make([]byte, 2048)
		for {
			_, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.got++
			s.gotFrom[from]++
			s.mu.Unlock()
		}
	}()
	go func() {
		defer close(s.done)
		rtp := make([]byte, 172)
		rtcp := make([]byte, 28)
		rtcp[0], rtcp[1] = 0x80, 200 // SR, no report blocks
		binary.BigEndian.PutUint16(rtcp[2:], 6)
		binary.BigEndian.PutUint32(rtcp[4:], bleedSSRC)
		var seq uint16
		for {
			n := 0
			for _, a := range targets {
				for port := pmin; port <= pmax; port++ {
					dst := netip.AddrPortFrom(a, uint16(port))
					pkts := [][]byte{rtpPacket(rtp, 0, bleedSSRC, seq)}
					if port%2 == 1 {
						pkts = append(pkts, rtcp)
					}
					for _, p := range pkts {
						if _, err := conn.WriteToUDPAddrPort(p, dst); err == nil {
							s.mu.Lock()
							s.sent[dst]++
							s.mu.Unlock()
						}
						// pace the sweep: a veth with XDP on its peer queues
						// only 256 frames, and overflow is silently dropped
						if n++; n%32 == 0 {
							time.Sleep(time.Millisecond)
						}
					}
				}
			}
			seq++
			s.mu.Lock()
			s.sweeps++
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { s.halt(); conn.Close(); <-s.rdone })
	return s
}

// halt stops the sweeps (idempotent) and waits for the current one.
func (s *sprayer) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *sprayer) sentTo(dsts ...netip.AddrPort) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range dsts {
		n += s.sent[d]
	}
	return n
}

func (s *sprayer) totals() (sent, sweeps, got int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.sent {
		sent += n
	}
	return sent, s.sweeps, s.got
}

// countAll counts every datagram arriving on conn (a port nobody should
// send to).
func countAll(conn *net.UDPConn) func() int {
	var mu sync.Mutex
	n := 0
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		}
	}()
	return func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// streamDrops sums the "drops" of every stream of every tag in a query
// reply, and returns the latched (or advertised) RTP endpoint per tag.
func streamDrops(t *testing.T, reply ng.Dict) (drops int64, rtpEndpoint map[string]netip.AddrPort) {
	t.Helper()
	rtpEndpoint = map[string]netip.AddrPort{}
	for tag, v := range reply.Dict("tags") {
		td, _ := v.(ng.Dict)
		for _, m := range td.List("medias") {
			md, _ := m.(ng.Dict)
			for _, s := range md.List("streams") {
				sd, _ := s.(ng.Dict)
				drops += statInt(sd.Dict("stats"), "drops")
				if sd.Has("flags", "RTP") {
					ep := sd.Dict("endpoint")
					a, _ := netip.ParseAddr(ep.Str("address"))
					p, _ := ep.Int("port")
					rtpEndpoint[tag] = netip.AddrPortFrom(a, uint16(p))
				}
			}
		}
	}
	return drops, rtpEndpoint
}

// RTP Bleed and RTP Inject (REQUIREMENTS §5): an attacker sprays RTP and
// RTCP at every port of the relay's range on every relay address, from
// right after the offer (before the callee is even known), through the
// learning window and the start of media, until after the window closed.
// The attacker gets nothing back, nothing of its gets into the call, the
// call loses nothing, and the relay counts what it dropped.
func TestRTPBleed(t *testing.T) {
	for _, mode := range labModes {
		t.Run(mode, func(t *testing.T) { testBleed(t, mode) })
	}
}

func testBleed(t *testing.T, mode string) {
	tri := labtest.NewTriangle(t)
	atk := addAttacker(t, tri)
	cfg := bleedConfig(t, tri, mode)
	lr := startLabRelay(t, tri, cfg)
	c := lr.ngClient(t)

	callerAddr := netip.AddrPortFrom(tri.CallerIP, 20000)
	calleeAddr := netip.AddrPortFrom(tri.CalleeIP, 40000)
	listen := func(ns *testbed.NS, a netip.AddrPort) *net.UDPConn {
		conn, err := ns.ListenUDP(a.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	callerConn, calleeConn := listen(tri.Caller, callerAddr), listen(tri.Callee, calleeAddr)
	// the parties send no RTCP: whatever arrives on their RTCP ports was injected
	callerRTCP := countAll(listen(tri.Caller, netip.AddrPortFrom(tri.CallerIP, 20001)))
	calleeRTCP := countAll(listen(tri.Callee, netip.AddrPortFrom(tri.CalleeIP, 40001)))

	var before bpf.Reasons
	if isXDP(mode) {
		before, _ = lr.r.Reasons()
	}
	offer := do(t, c, ng.Dict{"command": "offer", "call-id": "bleed", "from-tag": "caller",
		"sdp": g711SDP(tri.CallerIP, 20000), "direction": []any{"customer", "carrier"}})
	toCallee := mediaOf(t, offer.Str("sdp"))

	targets := []netip.Addr{tri.RelayCallerIP, tri.RelayCalleeIP, bleedRelayPeerIP}
	spray := startSprayer(t, atk, targets, cfg.PortMin, cfg.PortMax)

	// the callee's side is open to learning now, but the callee is not
	// known yet: the classic bleed window
	time.Sleep(300 * time.Millisecond)
	answer := do(t, c, ng.Dict{"command": "answer", "call-id": "bleed", "from-tag": "caller", "to-tag": "callee",
		"sdp": g711SDP(tri.CalleeIP, 40000)})
	toCaller := mediaOf(t, answer.Str("sdp"))
	time.Sleep(200 * time.Millisecond)

	// 3 s of media: it starts inside the 1 s learning window and runs on
	// well past it, under attack the whole time
	const n, pps = 150, 50
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
	time.Sleep(500 * time.Millisecond)
	spray.halt()
	time.Sleep(300 * time.Millisecond)

	sent, sweeps, got := spray.totals()
	t.Logf("%s: attacker sent %d packets in %d sweeps of %d ports on %d addresses", mode, sent, sweeps, cfg.PortMax-cfg.PortMin+1, len(targets))
	if sweeps < 20 {
		t.Errorf("only %d sweeps: the attack did not cover the call", sweeps)
	}
	if got != 0 {
		spray.mu.Lock()
		t.Errorf("attacker received %d packets from %v", got, spray.gotFrom)
		spray.mu.Unlock()
	}
	for name, s := range map[string]*sink{"callee": atCallee, "caller": atCaller} {
		good, bad := s.Drain(n, drainWait)
		if good != n || bad != 0 {
			t.Errorf("%s received %d/%d intact packets and %d others (injected)", name, good, n, bad)
		}
		for src := range s.Sources() {
			if src != netip.AddrPortFrom(tri.RelayCallerIP, toCaller.Port()) && src != netip.AddrPortFrom(tri.RelayCalleeIP, toCallee.Port()) {
				t.Errorf("%s got media from %v, not from its relay port", name, src)
			}
		}
	}
	if a, b := callerRTCP(), calleeRTCP(); a != 0 || b != 0 {
		t.Errorf("RTCP injected into the call: caller got %d, callee got %d", a, b)
	}

	q := do(t, c, ng.Dict{"command": "query", "call-id": "bleed"})
	for _, tag := range []string{"caller", "callee"} {
		if p := statInt(streamStats(t, q, tag), "packets"); p != n {
			t.Errorf("%s: relay counted %d packets received, want %d (attack packets counted as media?)", tag, p, n)
		}
	}
	drops, eps := streamDrops(t, q)
	if eps["caller"] != callerAddr || eps["callee"] != calleeAddr {
		t.Errorf("latched to %v, want caller %v and callee %v", eps, callerAddr, calleeAddr)
	}
	callPorts := []netip.AddrPort{
		toCaller, netip.AddrPortFrom(toCaller.Addr(), toCaller.Port()+1),
		toCallee, netip.AddrPortFrom(toCallee.Addr(), toCallee.Port()+1),
	}
	atCall := spray.sentTo(callPorts...)
	t.Logf("%s: %d attack packets hit the call's ports; the relay counted %d drops", mode, atCall, drops)
	// a veth may lose a few frames of a burst; what arrived must be counted
	if drops < int64(atCall)/2 || drops > int64(atCall) {
		t.Errorf("relay counted %d drops for %d attack packets at the call's ports", drops, atCall)
	}
	if isXDP(mode) {
		after, _ := lr.r.Reasons()
		d := after.Sub(before)
		t.Logf("xdp: drop_foreign_source %d, drop_no_session %d, pass_userspace %d, forward_redirect %d",
			d[bpf.ReasonDropForeignSource], d[bpf.ReasonDropNoSession], d[bpf.ReasonPassUserspace], d[bpf.ReasonForwardRedirect])
		if d[bpf.ReasonDropForeignSource] == 0 {
			t.Errorf("XDP dropped no foreign-source packets at the latched legs")
		}
		other := sent - atCall
		if d[bpf.ReasonDropNoSession] < uint64(other)/2 {
			t.Errorf("XDP counted %d drop_no_session for %d attack packets at ports without a session", d[bpf.ReasonDropNoSession], other)
		}
	}
	do(t, c, ng.Dict{"command": "delete", "call-id": "bleed"})
}

// A caller behind NAT: its SDP says 198.18.1.2:20000 but its media comes
// from 198.18.1.3:21000, and Kamailio passes where its SIP came from in
// "received-from". With "symmetric" the relay learns the real source and
// sends there (two-way audio); with "asymmetric" it sends to the SDP
// address regardless.
func TestSymmetricNAT(t *testing.T) {
	for _, mode := range labModes {
		t.Run(mode, func(t *testing.T) {
			for _, flag := range []string{"symmetric", "asymmetric"} {
				t.Run(flag, func(t *testing.T) { testNAT(t, mode, flag) })
			}
		})
	}
}

func testNAT(t *testing.T, mode, flag string) {
	tri := labtest.NewTriangle(t)
	natIP := netip.MustParseAddr("198.18.1.3")
	if _, err := tri.Caller.IP("addr", "add", netip.PrefixFrom(natIP, 24).String(), "dev", tri.CallerLink.A.Name); err != nil {
		t.Fatal(err)
	}
	lr := startLabRelay(t, tri, labConfig(t, tri, mode))
	c := lr.ngClient(t)

	sdpAddr := netip.AddrPortFrom(tri.CallerIP, 20000)
	natAddr := netip.AddrPortFrom(natIP, 21000)
	calleeAddr := netip.AddrPortFrom(tri.CalleeIP, 40000)
	listen := func(ns *testbed.NS, a netip.AddrPort) *net.UDPConn {
		conn, err := ns.ListenUDP(a.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	natConn := listen(tri.Caller, natAddr)
	sdpConn := listen(tri.Caller, sdpAddr)
	calleeConn := listen(tri.Callee, calleeAddr)

	offer := do(t, c, ng.Dict{"command": "offer", "call-id": "nat", "from-tag": "caller",
		"sdp": g711SDP(tri.CallerIP, 20000), "direction": []any{"customer", "carrier"},
		"flags": []any{flag}, "received-from": []any{"IP4", natIP.String()}})
	toCallee := mediaOf(t, offer.Str("sdp"))
	answer := do(t, c, ng.Dict{"command": "answer", "call-id": "nat", "from-tag": "caller", "to-tag": "callee",
		"sdp": g711SDP(tri.CalleeIP, 40000)})
	toCaller := mediaOf(t, answer.Str("sdp"))

	const n, pps = 50, 50
	atCallee := newSink(calleeConn, 0x1111)
	atNAT := newSink(natConn, 0x2222)
	atSDP := newSink(sdpConn, 0x2222)
	errs := make(chan error, 2)
	go func() { errs <- send(natConn, toCaller, 0x1111, n, pps) }()
	go func() {
		// the callee starts a moment later, as a real one would: the relay
		// has then learnt where the caller really is
		time.Sleep(100 * time.Millisecond)
		errs <- send(calleeConn, toCallee, 0x2222, n, pps)
	}()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if good, bad := atCallee.Drain(n, drainWait); good != n || bad != 0 {
		t.Errorf("callee received %d/%d of the NATed caller's packets, %d bad", good, n, bad)
	}
	want, other := atNAT, atSDP
	wantName, otherName := "the caller's real source "+natAddr.String(), "its SDP address "+sdpAddr.String()
	if flag == "asymmetric" {
		want, other = atSDP, atNAT
		wantName, otherName = otherName, wantName
	}
	if good, bad := want.Drain(n, drainWait); good != n || bad != 0 {
		t.Errorf("%s: %s received %d/%d of the callee's packets, %d bad", flag, wantName, good, n, bad)
	}
	if good, bad := other.Counts(); good != 0 || bad != 0 {
		t.Errorf("%s: %s received %d packets, want none", flag, otherName, good+bad)
	}
	q := do(t, c, ng.Dict{"command": "query", "call-id": "nat"})
	if _, eps := streamDrops(t, q); eps["caller"] != natAddr {
		t.Errorf("%s: caller latched to %v, want its real source %v", flag, eps["caller"], natAddr)
	}
	do(t, c, ng.Dict{"command": "delete", "call-id": "nat"})
}
