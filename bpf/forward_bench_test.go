package bpf

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// BenchmarkForward measures the fast path's cost per forwarded packet:
// plain RTP (PCMU, quality tracked) of latched sessions through the relay
// program with BPF_PROG_TEST_RUN, every packet redirected. prog-ns/op is
// the kernel's own figure (BPF run-time statistics: run_time_ns /
// run_cnt), free of the system call around the runs.
//
// warm: one session, the kernel repeating the run on the same frame (the
// session forwards to itself, so the rewritten frame matches it again):
// everything the program touches stays in the cache, and the figure is
// its compute. sessions=4000: a frame per session, round robin, one
// system call per packet: the session's and the leg's entries are mostly
// cache misses, as with many calls (the
// system call in between also leaves the branch predictors and caches
// cold, so this figure is higher than the same work costs in a NAPI poll).
//
//	XTRUNK_REQUIRE_PRIVILEGED=1 go test -run '^$' -bench Forward ./bpf/
//
// warm-noquality is warm with a session without quality tracking (clock
// rate 0): the program reads the coarse clock instead of the precise one.
// sample=N: jitter timed on two arrivals in N (Options.JitterSample, the
// relay's default 8); the others time every packet.
func BenchmarkForward(b *testing.B) {
	b.Run("warm", func(b *testing.B) { benchForwardWarm(b, 8000, 1) })
	b.Run("warm-sample=8", func(b *testing.B) { benchForwardWarm(b, 8000, 8) })
	b.Run("warm-sample=16", func(b *testing.B) { benchForwardWarm(b, 8000, 16) })
	b.Run("warm-noquality", func(b *testing.B) { benchForwardWarm(b, 0, 1) })
	b.Run("sessions=4000", func(b *testing.B) { benchForward(b, 4000, 1) })
	b.Run("sessions=4000-sample=8", func(b *testing.B) { benchForward(b, 4000, 8) })
}

// benchForwardWarm: the callee-side session forwards to the callee's own
// address and port, which is itself, so the kernel's repeats of one run
// take the forward path every time.
func benchForwardWarm(b *testing.B, rate uint32, jitterSample int) {
	labtest.RequirePrivileged(b)
	l := newLabSampled(b, jitterSample, testbed.WithStaticNeighbors())
	self := ap(l.tri.CalleeIP, 40000)
	if err := l.dp.SetSession(self, Session{Action: ActionForward, OutSrc: ap(l.relayB, 30002), OutDst: self, ClockRate: rate}); err != nil {
		b.Fatal(err)
	}
	f := frame{srcMAC: l.callerEnd.MAC, dstMAC: l.inIf.MAC, src: ap(l.tri.CallerIP, 20000), dst: self, payload: rtp(0, 1)}.bytes()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	prog := l.dp.Program()
	out := make([]byte, 2048)
	err = l.tri.Relay.Do(func() error {
		run := func(repeat int) error {
			ret, err := prog.Run(&ebpf.RunOptions{Data: f, DataOut: out, Repeat: uint32(repeat),
				Context: xdpMd{DataEnd: uint32(len(f)), IngressIfindex: uint32(l.inIf.Index)}})
			if err == nil && ret != xdpRedirect {
				err = fmt.Errorf("action %d, want redirect", ret)
			}
			return err
		}
		if err := run(2); err != nil { // the next hop, looked up once and cached
			return err
		}
		s0, err := prog.Stats()
		if err != nil {
			return err
		}
		b.ResetTimer()
		if err := run(b.N); err != nil {
			return err
		}
		b.StopTimer()
		return reportProgNs(b, prog, s0)
	})
	if err != nil {
		b.Fatal(err)
	}
}

func reportProgNs(b *testing.B, prog *ebpf.Program, s0 *ebpf.ProgramStats) error {
	s1, err := prog.Stats()
	if err != nil {
		return err
	}
	if runs := s1.RunCount - s0.RunCount; runs > 0 {
		b.ReportMetric(float64(s1.Runtime-s0.Runtime)/float64(runs), "prog-ns/op")
	}
	return nil
}

func benchForward(b *testing.B, n, jitterSample int) {
	labtest.RequirePrivileged(b)
	l := newLabSampled(b, jitterSample, testbed.WithStaticNeighbors())
	frames := make([][]byte, n)
	for i := range n {
		key := ap(l.relayA, uint16(30000+2*i))
		caller := ap(l.tri.CallerIP, uint16(20000+2*i))
		sess := Session{Action: ActionForward, Expect: caller, OutSrc: ap(l.relayB, uint16(30000+2*i)),
			OutDst: ap(l.tri.CalleeIP, uint16(40000+2*i)), ClockRate: 8000}
		if err := l.dp.SetSession(key, sess); err != nil {
			b.Fatal(err)
		}
		frames[i] = frame{srcMAC: l.callerEnd.MAC, dstMAC: l.inIf.MAC, src: caller, dst: key, payload: rtp(0, uint16(i))}.bytes()
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	prog := l.dp.Program()
	out := make([]byte, 2048)
	run := func(f []byte) error {
		ret, err := prog.Run(&ebpf.RunOptions{Data: f, DataOut: out,
			Context: xdpMd{DataEnd: uint32(len(f)), IngressIfindex: uint32(l.inIf.Index)}})
		if err == nil && ret != xdpRedirect {
			err = fmt.Errorf("action %d, want redirect", ret)
		}
		return err
	}
	err = l.tri.Relay.Do(func() error {
		for range 2 { // the next hops, looked up once and cached
			for _, f := range frames {
				if err := run(f); err != nil {
					return err
				}
			}
		}
		s0, err := prog.Stats()
		if err != nil {
			return err
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := run(frames[i%n]); err != nil {
				return err
			}
		}
		b.StopTimer()
		return reportProgNs(b, prog, s0)
	})
	if err != nil {
		b.Fatal(err)
	}
}
