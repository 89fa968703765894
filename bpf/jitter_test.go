package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
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

// TestJitterSampledPairs checks which packets the fast path times. Two
// blocks of eight packets of one stream, forwarded through
// BPF_PROG_TEST_RUN a few microseconds apart, with an SSRC whose pairs
// (JitterPairAt, the Go mirror of jitter_pair_at) start at offsets a and
// b below 7: packet a is on time, a+1 carries an RTP timestamp 80,000
// units early (a transit difference of 80,000; the timestamp wraps below
// 0 on the way, which must not count as 2^32), 8+b and 9+b are on time,
// and every other packet's timestamp is a million units off. Sampled at
// 8, the first pair sets the estimate to 80,000 (a stream's first 16
// pairs are a running mean), the second (difference ~0) halves it, and
// the wild timestamps are never seen. Timing every packet, they are.
func TestJitterSampledPairs(t *testing.T) {
	labtest.RequirePrivileged(t)
	ssrc := uint32(1)
	for JitterPairAt(0, ssrc, 7) >= 6 || JitterPairAt(8, ssrc, 7) >= 6 {
		ssrc++
	}
	a, b := int(JitterPairAt(0, ssrc, 7)), 8+int(JitterPairAt(8, ssrc, 7))
	for _, sample := range []int{8, 1} {
		t.Run(fmt.Sprintf("sample=%d", sample), func(t *testing.T) {
			jitters := sampledJitters(t, sample, ssrc, func(i int) uint32 {
				ts := uint32(i) * 160
				switch i {
				case a, b, b + 1:
				case a + 1:
					ts -= 80000
				default:
					ts += 1000000
				}
				return ts
			})
			t.Logf("SSRC %#x, pairs at %d and %d; jitter after each packet (RTP units): %v", ssrc, a, b, jitters)
			// the runs are microseconds apart: a few units (125 µs each) of
			// real arrival difference at most
			near := func(got, want uint64) bool { return got+500 >= want && got <= want+500 }
			if sample == 1 {
				if slices.Max(jitters) < 50000 {
					t.Errorf("every packet timed, but the transit differences of a million did not show: %v", jitters)
				}
				return
			}
			for i, j := range jitters {
				switch {
				case i <= a && j != 0:
					t.Errorf("packet %d (before the first pair's second) set jitter %d", i, j)
				case i > a+1 && i <= b && j != jitters[a+1]:
					t.Errorf("packet %d (not sampled) changed the jitter: %v", i, jitters)
				}
			}
			if !near(jitters[a+1], 80000) {
				t.Errorf("after the first pair: jitter %d, want ~80000", jitters[a+1])
			}
			if !near(jitters[b+1], 40000) {
				t.Errorf("after the second pair: jitter %d, want ~40000 (the mean of 80000 and ~0)", jitters[b+1])
			}
		})
	}
}

// sampledJitters forwards 16 RTP packets of one stream (SSRC ssrc, RTP
// timestamp ts(i)) through a program sampling jitter at sample and
// returns the leg's jitter after each.
func sampledJitters(t *testing.T, sample int, ssrc uint32, ts func(int) uint32) []uint64 {
	t.Helper()
	l := newLabSampled(t, sample, testbed.WithStaticNeighbors())
	self := ap(l.tri.CalleeIP, 40000)
	if err := l.dp.SetSession(self, Session{Action: ActionForward, OutSrc: ap(l.relayB, 30002), OutDst: self, ClockRate: 8000}); err != nil {
		t.Fatal(err)
	}
	var jitters []uint64
	err := l.tri.Relay.Do(func() error {
		for i := range 16 {
			p := rtp(0, uint16(i))
			binary.BigEndian.PutUint32(p[4:], ts(i))
			binary.BigEndian.PutUint32(p[8:], ssrc)
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
	return jitters
}
