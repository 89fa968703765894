package relay

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/xtrunk/xtrunk/bpf"
)

// jitterModel is the fast path's jitter estimator (quality and
// jitter_update in bpf/quality.h) in floating point, for arrivals
// given as transit times (arrival - RTP timestamp, RTP clock units) in
// arrival order of a stream with the given SSRC. sample 1 is RFC 3550 A.8
// as written: every consecutive pair, J += (|D| - J)/16. sample N (a
// power of two) takes one pair of consecutive arrivals per block of N,
// starting at bpf.JitterPairAt, the first 16 as a running mean.
func jitterModel(transits []float64, sample int, ssrc uint32) float64 {
	mask := uint32(sample - 1)
	var j, stored float64
	var at uint32
	for i, tr := range transits {
		c := uint32(i) // the leg's received count before this packet
		if mask == 0 {
			if i > 0 {
				j += (math.Abs(tr-stored) - j) / 16
			}
			stored = tr
			continue
		}
		o := c & mask
		second := i > 0 && o == (at+1)&mask // at is still the previous block's at o == 0
		if o == 0 {
			at = bpf.JitterPairAt(c, ssrc, mask)
		}
		if second {
			d := math.Abs(tr - stored)
			if k := (c - 1) / uint32(sample); k < 15 {
				j += (d - j) / float64(k+1)
			} else {
				j += (d - j) / 16
			}
		}
		if o == at {
			stored = tr
		}
	}
	return j
}

// impairedTransits is the quality lab's generator (qualityRun): n packets
// of 20 ms G.711, 5 % dropped, each delayed uniformly by 0–40 ms, in
// arrival order; and the mean |D| over all consecutive arrivals, the
// quantity both estimators estimate.
func impairedTransits(rng *rand.Rand, n int) (transits []float64, meanD float64) {
	type arr struct{ at, ts float64 }
	var as []arr
	for i := 0; i < n; i++ {
		if i > 0 && i < n-1 && rng.Float64() < 0.05 {
			continue
		}
		delay := 0.0
		if i > 0 {
			delay = rng.Float64() * 40
		}
		as = append(as, arr{float64(i)*20 + delay, float64(i) * 160})
	}
	sort.Slice(as, func(a, b int) bool { return as[a].at < as[b].at })
	var sum float64
	for i, a := range as {
		transits = append(transits, a.at*8-a.ts)
		if i > 0 {
			sum += math.Abs(transits[i] - transits[i-1])
		}
	}
	return transits, sum / float64(len(as)-1)
}

// TestSampledJitterAccuracy states how good the sampled estimate is on
// the quality lab's impairments: over 400 calls of 6 s (300 packets) and
// of 30 s, the ratio of each estimate to the stream's mean |D| (the
// generator's known jitter) must have its median within 5 % of 1 and its
// 5th–95th percentiles within 0.70–1.35, and the sampled estimate's
// spread must not be more than 0.06 wider than RFC 3550's per-packet one
// (which is itself an EWMA of about 16 samples: its own spread is
// 0.76–1.25 here). Measured (N = 8): 300 packets 0.81–1.20, median 0.99;
// 1,500 packets 0.81–1.22. TestLossAndJitter shows the fast path
// computes this model.
func TestSampledJitterAccuracy(t *testing.T) {
	for _, n := range []int{300, 1500} {
		for _, sample := range []int{1, 4, 8, 16} {
			rng := rand.New(rand.NewPCG(7, uint64(n)))
			var rfc, got []float64
			for range 400 {
				tr, meanD := impairedTransits(rng, n)
				rfc = append(rfc, jitterModel(tr, 1, 0)/meanD)
				got = append(got, jitterModel(tr, sample, rng.Uint32())/meanD)
			}
			sort.Float64s(rfc)
			sort.Float64s(got)
			p := func(x []float64, q float64) float64 { return x[int(q*float64(len(x)-1))] }
			t.Logf("%d packets, sample %2d: estimate/mean|D| median %.3f, p5 %.3f, p95 %.3f (per packet: p5 %.3f, p95 %.3f)",
				n, sample, p(got, 0.5), p(got, 0.05), p(got, 0.95), p(rfc, 0.05), p(rfc, 0.95))
			if m := p(got, 0.5); math.Abs(m-1) > 0.05 {
				t.Errorf("%d packets, sample %d: median ratio %.3f, want within 5%% of 1", n, sample, m)
			}
			lo, hi := p(got, 0.05), p(got, 0.95)
			if lo < 0.70 || hi > 1.35 {
				t.Errorf("%d packets, sample %d: p5–p95 %.3f–%.3f, want within 0.70–1.35", n, sample, lo, hi)
			}
			if w, wr := hi-lo, p(rfc, 0.95)-p(rfc, 0.05); w > wr+0.06 {
				t.Errorf("%d packets, sample %d: spread %.3f, per packet %.3f: more than 0.06 wider", n, sample, w, wr)
			}
		}
	}
}

// TestUserspaceJitterTimestampWrap: the RTP timestamp wrapping past 2^32
// between two packets is a transit difference like any other (RFC 3550
// A.8 computes it in 32 bits), not 2^32 of jitter.
func TestUserspaceJitterTimestampWrap(t *testing.T) {
	var q rtpQuality
	pkt := func(seq uint16, ts uint32) []byte {
		p := make([]byte, 12)
		p[0], p[2], p[3] = 0x80, byte(seq>>8), byte(seq)
		p[4], p[5], p[6], p[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
		return p
	}
	const ms = int64(1e6)
	start := uint32(1<<32 - 320) // two packets before the wrap
	for i := range 10 {
		q.update(pkt(uint16(i), start+uint32(i)*160), int64(i)*20*ms, 8000)
	}
	s, ok := q.snapshot()
	if !ok {
		t.Fatal("no statistics")
	}
	if s.Jitter != 0 {
		t.Errorf("jitter %d RTP units across a timestamp wrap, want 0 (packets on time)", s.Jitter)
	}
}

// TestSampledJitterBursts: a sender whose packets leave in bursts (two,
// four or eight 20 ms packets at once every 40, 80 or 160 ms) has a
// transit pattern that repeats every 2, 4 or 8 packets. Pairs at a fixed
// offset of each block of N aliased with it: at N = 8 bursts of 4 read
// 160 or 480 RTP units, by the phase the stream starts at, where their
// mean |D| is 240 (and a sender could pick the phase). Spread by
// bpf.JitterPairAt, the median over 100 streams (SSRCs) of the estimate
// over the stream's mean |D| must be within 10 % of 1 at every phase.
func TestSampledJitterBursts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, burst := range []int{2, 4, 8} {
		for phase := range burst {
			var tr []float64
			for i := range 1500 + phase {
				send := float64(i/burst*burst) * 20 // ms: the burst leaves together
				tr = append(tr, send*8-float64(i)*160)
			}
			tr = tr[phase:]
			var sum float64
			for i := 1; i < len(tr); i++ {
				sum += math.Abs(tr[i] - tr[i-1])
			}
			meanD := sum / float64(len(tr)-1)
			for _, sample := range []int{4, 8, 16} {
				var ratios []float64
				for range 100 {
					ratios = append(ratios, jitterModel(tr, sample, rng.Uint32())/meanD)
				}
				sort.Float64s(ratios)
				if m := ratios[len(ratios)/2]; math.Abs(m-1) > 0.1 {
					t.Errorf("bursts of %d from phase %d, sample %d: median estimate/mean|D| %.2f (mean |D| %.0f), want within 10 %% of 1",
						burst, phase, sample, m, meanD)
				}
			}
		}
	}
}
