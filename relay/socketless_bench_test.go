package relay

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
)

// BenchmarkUserspacePath measures the relay's userspace packet path in a
// lab: an IPv4 caller and an IPv6 callee, so XDP forwards nothing and
// every packet goes through userspace — sockets (xdp) or AF_XDP
// (xdp-socketless). b.N packets are sent as fast as one sender goroutine
// can; fwd_pps is what the relay forwarded per second, rcvd_pps what the
// callee read, loss% what did not reach it (on a busy 2-vCPU lab most of
// it is the callee's own socket, not the relay).
func BenchmarkUserspacePath(b *testing.B) {
	for _, mode := range xdpModes {
		b.Run(mode, func(b *testing.B) { benchUserspacePath(b, mode) })
	}
}

func benchUserspacePath(b *testing.B, mode string) {
	tri := labtest.NewTriangle(b)
	cfg := DefaultConfig()
	cfg.Dataplane, cfg.Socketless = DataplaneXDP, mode == dataplaneXDPSocketless
	cfg.PinPath = labtest.MountBPFFS(b) + "/relay"
	cfg.RemoveOnExit = true
	cfg.Interfaces = []Interface{
		{Name: "customer", Addr: tri.RelayCallerIP, Advertised: tri.RelayCallerIP},
		{Name: "carrier", Addr: tri.RelayCalleeIP6, Advertised: tri.RelayCalleeIP6},
	}
	var r *Relay
	if err := tri.Relay.Do(func() error {
		var err error
		r, err = New(cfg)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	callerAddr := netip.AddrPortFrom(tri.CallerIP, 20000)
	calleeAddr := netip.AddrPortFrom(tri.CalleeIP6, 40000)
	caller, err := tri.Caller.ListenUDP(callerAddr.String())
	if err != nil {
		b.Fatal(err)
	}
	defer caller.Close()
	callee, err := tri.Callee.ListenUDP(calleeAddr.String())
	if err != nil {
		b.Fatal(err)
	}
	defer callee.Close()
	_ = callee.SetReadBuffer(8 << 20)
	sip := netip.AddrPortFrom(tri.RelayCallerIP, 5060)
	r.ServeNG(b.Context(), sip, ng.Dict{"command": "offer", "call-id": "bench", "from-tag": "caller",
		"sdp": g711SDP(callerAddr.Addr(), 20000), "direction": []any{"customer", "carrier"}})
	ans := r.ServeNG(b.Context(), sip, ng.Dict{"command": "answer", "call-id": "bench", "from-tag": "caller", "to-tag": "callee",
		"sdp": g711SDP(calleeAddr.Addr(), 40000)})
	toCaller := mediaOf(b, ans.Str("sdp"))
	if ans.Str("result") != "ok" {
		b.Fatalf("answer: %v", ans)
	}

	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			_ = callee.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, _, err := callee.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	// the first packet latches the caller; then the measured run
	pkt := make([]byte, 172)
	if _, err := caller.WriteToUDPAddrPort(rtpgen.Packet(pkt, 0x1111, 0), toCaller); err != nil {
		b.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	got.Store(0)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		_, _ = caller.WriteToUDPAddrPort(rtpgen.Packet(pkt, 0x1111, uint16(i+1)), toCaller)
	}
	<-done // 500 ms without a packet
	elapsed := time.Since(start) - 500*time.Millisecond
	b.StopTimer()
	n := got.Load()
	fwd := testutil.ToFloat64(r.m.userPkts)
	b.ReportMetric(fwd/elapsed.Seconds(), "fwd_pps")
	if r.xp != nil {
		for _, p := range r.xp.ports {
			st, _ := p.s.Stats()
			b.Logf("%s queue %d: %+v", p.dev, p.queue, st)
		}
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "rcvd_pps")
	b.ReportMetric(100*float64(int64(b.N)-n)/float64(b.N), "loss%")
}
