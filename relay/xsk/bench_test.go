package xsk

import (
	"net/netip"
	"testing"
	"time"
)

// The lab benchmarks measure frames per second through the rings of a
// copy-mode socket on a veth, generator and socket on the same machine:
// the figures are the rings plus the kernel's copy path, not a NIC.

// generator blasts identical UDP datagrams to the receiving socket from an
// AF_XDP socket of its own on the sending end (a UDP socket could not
// keep up), until stop is closed.
func generator(b *testing.B, l *xskLab, stop <-chan struct{}) <-chan struct{} {
	b.Helper()
	var g *Socket
	err := l.snd.Do(func() error {
		var err error
		g, err = Open(Config{Ifindex: l.link.A.Index, Frames: 4096, RingSize: 2048})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer g.Close()
		payload := make([]byte, 172) // a G.711 20 ms RTP packet
		src := netip.AddrPortFrom(sndAddr.Addr(), 4000)
		dst := netip.AddrPortFrom(rcvAddr.Addr(), xskPort)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for range 64 {
				addr, buf, ok := g.NextTx()
				if !ok {
					break
				}
				g.SubmitTx(addr, buildUDP4(buf, l.link.A.MAC, l.link.B.MAC, src, dst, payload))
			}
			if g.FlushTx() != nil {
				return
			}
		}
	}()
	return done
}

// BenchmarkRxRelease receives and refills as fast as an AF_XDP generator
// on the peer sends. "spin" busy-polls the RX ring, as a dedicated core
// would; "wait" polls the socket when the ring is empty, giving the CPU
// to the kernel's receive path (on a box with fewer cores than busy
// threads, spinning takes the time the copy into the UMEM needs).
func BenchmarkRxRelease(b *testing.B) {
	for _, spin := range []bool{true, false} {
		name := map[bool]string{true: "spin", false: "wait"}[spin]
		b.Run(name, func(b *testing.B) { benchRx(b, spin) })
	}
}

func benchRx(b *testing.B, spin bool) {
	l := newXSKLab(b)
	s := l.open(b, Config{})
	stop := make(chan struct{})
	done := generator(b, l, stop)
	defer func() { close(stop); <-done }()
	out := make([]Desc, 64)
	// Wait for the first frame before timing.
	for s.Receive(out[:1]) == 0 {
		s.Wait(10 * time.Millisecond)
	}
	s.Release(out[:1])
	st0, _ := s.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for got := 0; got < b.N; {
		k := s.Receive(out[:min(len(out), b.N-got)])
		if k == 0 {
			if !spin {
				s.Wait(time.Millisecond)
			}
			continue
		}
		s.Release(out[:k])
		got += k
	}
	b.StopTimer()
	st, _ := s.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	lost := st.RxDropped - st0.RxDropped + st.RxRingFull - st0.RxRingFull
	b.ReportMetric(float64(lost)/float64(b.N), "dropped/frame")
	b.ReportMetric(float64(st.FillWakeups-st0.FillWakeups), "wakeups")
}

func BenchmarkTx(b *testing.B) {
	l := newXSKLab(b)
	s := l.open(b, Config{})
	payload := make([]byte, 172)
	src := netip.AddrPortFrom(rcvAddr.Addr(), xskPort)
	// An address on the peer's subnet that is not the peer's: its stack
	// drops the frames without answering.
	dst := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.9"), 4000)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		addr, buf, ok := s.NextTx()
		if !ok {
			if err := s.FlushTx(); err != nil {
				b.Fatal(err)
			}
			s.Reap()
			continue
		}
		s.SubmitTx(addr, buildUDP4(buf, l.link.B.MAC, l.link.A.MAC, src, dst, payload))
		sent++
		if sent%64 == 0 {
			if err := s.FlushTx(); err != nil {
				b.Fatal(err)
			}
		}
	}
	drainTx(b, s)
	b.StopTimer()
	st, _ := s.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(st.Kicks)/float64(b.N), "kicks/frame")
}
