package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

func TestOpenRefusesJitterSample(t *testing.T) {
	for _, n := range []int{3, 12, 2 * MaxJitterSample} {
		if _, err := Open(Options{PinDir: t.TempDir(), JitterSample: n}); !errors.Is(err, ErrJitterSample) {
			t.Errorf("JitterSample %d: %v, want ErrJitterSample", n, err)
		}
	}
}

// TestJitterSampledPairs checks which packets the fast path times. Ten
// packets of one stream, forwarded through BPF_PROG_TEST_RUN a few
// microseconds apart: the second's RTP timestamp is 80,000 units early
// (a transit difference of 80,000 against the first; the timestamp wraps
// below 0 on the way, which must not count as 2^32), the third to
// eighth carry timestamps a million units off. Sampled at 8, only the
// pairs at counts 1,2 and 9,10 are timed: the first pair sets the
// estimate to 80,000 (a stream's first 16 pairs are a running mean), the
// second (difference ~0) halves it, and the wild timestamps between
// them are never seen. Timing every packet, they are.
func TestJitterSampledPairs(t *testing.T) {
	labtest.RequirePrivileged(t)
	for _, sample := range []int{8, 1} {
		t.Run(fmt.Sprintf("sample=%d", sample), func(t *testing.T) {
			l := newLabSampled(t, sample, testbed.WithStaticNeighbors())
			self := ap(l.tri.CalleeIP, 40000)
			if err := l.dp.SetSession(self, Session{Action: ActionForward, OutSrc: ap(l.relayB, 30002), OutDst: self, ClockRate: 8000}); err != nil {
				t.Fatal(err)
			}
			var jitters []uint64
			err := l.tri.Relay.Do(func() error {
				for i := range 10 {
					p := rtp(0, uint16(i))
					ts := uint32(i) * 160
					switch {
					case i == 1:
						ts -= 80000
					case i >= 2 && i <= 7:
						ts += 1000000
					}
					binary.BigEndian.PutUint32(p[4:], ts)
					f := frame{srcMAC: l.callerEnd.MAC, dstMAC: l.inIf.MAC, src: ap(l.tri.CallerIP, 20000), dst: self, payload: p}.bytes()
					ret, err := l.dp.Program().Run(&ebpf.RunOptions{Data: f, DataOut: make([]byte, 2048),
						Context: xdpMd{DataEnd: uint32(len(f)), IngressIfindex: uint32(l.inIf.Index)}})
					if err != nil {
						return err
					}
					if ret != xdpRedirect {
						return fmt.Errorf("packet %d: action %d, want redirect", i, ret)
					}
					q, ok, err := l.dp.Quality(self)
					if err != nil || !ok {
						return fmt.Errorf("packet %d: quality %v, %v", i, ok, err)
					}
					jitters = append(jitters, q.Jitter)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("jitter after each packet (RTP units): %v", jitters)
			// the runs are microseconds apart: a few units (125 µs each) of
			// real arrival difference at most
			near := func(got, want uint64) bool { return got+500 >= want && got <= want+500 }
			if sample == 1 {
				if jitters[2] < 50000 {
					t.Errorf("every packet timed, but the third's transit difference of a million did not show: %v", jitters)
				}
				return
			}
			if !near(jitters[1], 80000) {
				t.Errorf("after the first pair: jitter %d, want ~80000", jitters[1])
			}
			for i := 2; i < 8; i++ {
				if jitters[i] != jitters[1] {
					t.Errorf("packet %d (not sampled) changed the jitter: %v", i, jitters)
				}
			}
			if !near(jitters[9], 40000) {
				t.Errorf("after the second pair: jitter %d, want ~40000 (the mean of 80000 and ~0)", jitters[9])
			}
		})
	}
}
