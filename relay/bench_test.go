package relay

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
)

// benchCall is a call through a userspace relay on the loopback of a
// namespace of its own: caller and callee are sockets on 127.0.0.1 there.
type benchCall struct {
	r                  *Relay
	caller, callee     *net.UDPConn
	callerAddr         netip.AddrPort
	toCaller, toCallee netip.AddrPort // relay ports each party sends to
	in                 *sock          // the relay socket receiving the caller's RTP
	received           atomic.Int64   // datagrams the callee got
	want               atomic.Int64   // received count that signals arrived
	arrived            chan struct{}
}

func newBenchCall(b *testing.B) *benchCall {
	b.Helper()
	ns, err := labtest.NewLab(b).AddNS("bench")
	if err != nil {
		b.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	cfg := DefaultConfig()
	cfg.Dataplane = DataplaneUserspace
	// Below the netns's ephemeral range (32768–60999), where the parties'
	// ports come from: a party port inside the media range is refused
	// (ErrSelfTarget).
	cfg.PortMin, cfg.PortMax = 20000, 29999
	cfg.Interfaces = []Interface{
		{Name: "customer", Addr: lo, Advertised: lo},
		{Name: "carrier", Addr: lo, Advertised: lo},
	}
	bc := &benchCall{arrived: make(chan struct{}, 1)}
	err = ns.Do(func() error {
		var err error
		if bc.r, err = New(cfg); err != nil {
			return err
		}
		if bc.caller, err = net.ListenUDP("udp", &net.UDPAddr{IP: lo.AsSlice()}); err != nil {
			return err
		}
		bc.callee, err = net.ListenUDP("udp", &net.UDPAddr{IP: lo.AsSlice()})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		bc.caller.Close()
		bc.callee.Close()
		bc.r.Close()
	})
	bc.callerAddr = bc.caller.LocalAddr().(*net.UDPAddr).AddrPort()
	calleeAddr := bc.callee.LocalAddr().(*net.UDPAddr).AddrPort()

	sip := netip.AddrPortFrom(lo, 5060)
	offer := bc.r.ServeNG(context.Background(), sip, ng.Dict{"command": "offer", "call-id": "bench", "from-tag": "caller",
		"sdp": g711SDP(lo, int(bc.callerAddr.Port())), "direction": []any{"customer", "carrier"}})
	if offer.Str("result") != "ok" {
		b.Fatalf("offer: %v", offer)
	}
	answer := bc.r.ServeNG(context.Background(), sip, ng.Dict{"command": "answer", "call-id": "bench", "from-tag": "caller", "to-tag": "callee",
		"sdp": g711SDP(lo, int(calleeAddr.Port()))})
	if answer.Str("result") != "ok" {
		b.Fatalf("answer: %v", answer)
	}

	bc.r.mu.Lock()
	c := bc.r.calls["bench"]
	bc.r.mu.Unlock()
	c.mu.Lock()
	st := c.streams[0]
	bc.in, bc.toCaller, bc.toCallee = st.ep[0].rtp, st.ep[0].local, st.ep[1].local
	c.mu.Unlock()

	go func() {
		buf := make([]byte, maxPacket)
		for {
			if _, _, err := bc.callee.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			if bc.received.Add(1) >= bc.want.Load() {
				select {
				case bc.arrived <- struct{}{}:
				default:
				}
			}
		}
	}()
	return bc
}

// The userspace packet loop on one received batch of 32 G.711 packets from
// the latched caller, forwarded with one sendmmsg to the callee: no
// allocation per batch.
func BenchmarkUserspaceForward(b *testing.B) {
	bc := newBenchCall(b)
	bt := newBatch()
	for i := range batchSize {
		p := rtpPacket(bt.bufs[i][:], 0, 0x1111, uint16(i))
		bt.hdrs[i].Len = uint32(len(p))
		addrPortToSockaddr(bc.callerAddr, &bt.names[i])
	}
	bt.n = batchSize

	bc.r.handle(bc.in, bt) // the first packet latches the caller
	if rt := bc.in.route.Load(); rt.expect != bc.callerAddr {
		b.Fatalf("caller not latched: route expects %v, want %v", rt.expect, bc.callerAddr)
	}
	before := bc.in.packets.Load()

	b.ReportAllocs()
	b.SetBytes(batchSize * 172)
	for b.Loop() {
		bc.r.handle(bc.in, bt)
	}
	b.StopTimer()
	forwarded := bc.in.packets.Load() - before
	if errs := bc.in.errors.Load(); errs != 0 || forwarded == 0 {
		b.Fatalf("forwarded %d packets, %d send errors", forwarded, errs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(forwarded), "ns/packet")
}

// Real datagrams over loopback through the relay's sockets: the caller
// sends bursts of 64, the relay's packet loop (recvmmsg, handle, sendmmsg)
// forwards them, the callee receives; the next burst goes when the last
// one is through, so no socket buffer overflows. A packet that does not
// arrive within 50 ms is counted as lost, not waited for.
func BenchmarkLoopbackForward(b *testing.B) {
	const burst = 64
	bc := newBenchCall(b)
	pkt := rtpPacket(make([]byte, 172), 0, 0x1111, 0)

	// latch, and wait for the first packet to come out
	if _, err := bc.caller.WriteToUDPAddrPort(pkt, bc.toCaller); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); bc.received.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("first packet never arrived through the relay")
		}
	}

	base := bc.received.Load()
	var sent, lost int64
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	b.ResetTimer()
	for i := 0; i < b.N; i += burst {
		for range min(burst, b.N-i) {
			if _, err := bc.caller.WriteToUDPAddrPort(pkt, bc.toCaller); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		want := base + sent - lost
		bc.want.Store(want)
		timer.Reset(50 * time.Millisecond)
	wait:
		for bc.received.Load() < want {
			select {
			case <-bc.arrived:
			case <-timer.C:
				lost = sent - (bc.received.Load() - base)
				break wait
			}
		}
		timer.Stop()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
	b.ReportMetric(float64(lost), "lost")
}
