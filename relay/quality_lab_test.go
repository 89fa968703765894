package relay

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
)

// The generator drops 5 % of the packets and delays each by 0–40 ms; the
// relay's loss must be within one point and its jitter within 20 % of what
// its estimator (jitterModel: RFC 3550 A.8, sampled on the fast path per
// --jitter-sample) gives for the packets as actually sent, and within 60 %
// of RFC 3550 on every packet: a guard against gross errors (a factor of
// N), not a statement of accuracy — one call's two estimates scatter
// ±20 % each around the truth (the xdp mode's seeded delays put the
// sampled one at 1.04-1.14 times the per-packet one over three runs, 1.35
// with the pairs at a fixed offset of their block); TestSampledJitterAccuracy
// states how close the sampled estimate is. xdp-sample=1 times every
// packet on the fast path, as RFC 3550 has it.
func TestLossAndJitter(t *testing.T) {
	for _, mode := range labModes {
		t.Run(mode, func(t *testing.T) { testQuality(t, mode, DefaultJitterSample) })
	}
	t.Run(DataplaneXDP+"-sample=1", func(t *testing.T) { testQuality(t, DataplaneXDP, 1) })
}

// labSSRC is the generator's stream (the fast path's sampled pairs
// depend on it: bpf.JitterPairAt).
const labSSRC = 0x7777

type sent struct {
	seq uint16
	at  time.Time
}

func testQuality(t *testing.T, mode string, jitterSample int) {
	tri := labtest.NewTriangle(t)
	cfg := labConfig(t, tri, mode)
	cfg.JitterSample = jitterSample
	lr := startLabRelay(t, tri, cfg)
	if !isXDP(mode) {
		jitterSample = 1 // userspace times every packet
	}
	c := lr.ngClient(t)
	// The truth is taken from userspace send times: on a loaded 2-vCPU
	// box (the suite runs packages in parallel) a send can reach the relay
	// late, which is jitter the relay rightly sees. Such a run is measured
	// again, a fresh call each time; every attempt must get the loss right.
	const attempts = 3
	for i := 1; ; i++ {
		off := qualityRun(t, c, tri, mode, jitterSample, fmt.Sprintf("q%d", i))
		if off == "" {
			return
		}
		if i == attempts {
			t.Errorf("%s (in each of %d calls)", off, attempts)
			return
		}
		t.Logf("attempt %d: %s; measuring again", i, off)
	}
}

// qualityRun places one call with the generator's loss and delay and
// checks the relay's figures, returning the jitter mismatch if any.
func qualityRun(t *testing.T, c *ng.Client, tri *testbed.Triangle, mode string, jitterSample int, callID string) (jitterOff string) {
	do(t, c, ng.Dict{"command": "offer", "call-id": callID, "from-tag": "caller", "sdp": g711SDP(tri.CallerIP, 20000), "direction": []any{"customer", "carrier"}})
	ans := do(t, c, ng.Dict{"command": "answer", "call-id": callID, "from-tag": "caller", "to-tag": "callee", "sdp": g711SDP(tri.CalleeIP, 40000)})
	to := mediaOf(t, ans.Str("sdp"))
	conn, err := tri.Caller.ListenUDP(netip.AddrPortFrom(tri.CallerIP, 20000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	const n = 300 // 6 s of 20 ms packets
	rng := rand.New(rand.NewPCG(42, uint64(len(mode))))
	type plan struct {
		seq uint16
		at  time.Duration
	}
	var plans []plan
	dropped := 0
	for i := 0; i < n; i++ {
		// keep the first packet so the relay latches on it
		if i > 0 && i < n-1 && rng.Float64() < 0.05 {
			dropped++
			continue
		}
		delay := time.Duration(rng.Int64N(int64(40 * time.Millisecond)))
		if i == 0 {
			delay = 0 // the stream starts with its first packet (RFC 3550's base)
		}
		plans = append(plans, plan{uint16(i), time.Duration(i)*20*time.Millisecond + delay})
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].at < plans[j].at })
	buf := make([]byte, 172)
	start := time.Now()
	var log []sent
	for _, p := range plans {
		time.Sleep(time.Until(start.Add(p.at)))
		at := time.Now()
		if _, err := conn.WriteToUDPAddrPort(rtpgen.Packet(buf, labSSRC, p.seq), to); err != nil {
			t.Fatal(err)
		}
		log = append(log, sent{p.seq, at})
	}

	// RFC 3550 A.8 on the packets in the order and at the times they left
	transits := make([]float64, len(log))
	for i, s := range log {
		transits[i] = s.at.Sub(start).Seconds()*8000 - float64(uint32(s.seq)*160)
	}
	rfcJitterMs := jitterModel(transits, 1, labSSRC) / 8
	trueLossPct := 100 * float64(dropped) / n

	// the last packets may still be on their way (a fixed 100 ms raced a
	// loaded machine): query until the relay has seen the stream's end
	q := queryUntil(t, c, callID, func(q ng.Dict) bool { return statInt(streamStats(t, q, "caller"), "expected") >= n })
	st := streamStats(t, q, "caller")
	expected, lost := statInt(st, "expected"), statInt(st, "lost")
	jitterUs := statInt(st, "jitter us")
	// the estimator as the relay runs it: the fast path's count starts
	// with its first packet, after those userspace forwarded (latching)
	trueJitterMs := rfcJitterMs
	if user := int(statInt(st, "userspace")); jitterSample > 1 && user < len(transits) {
		trueJitterMs = jitterModel(transits[user:], jitterSample, labSSRC) / 8
	}
	if expected != n {
		t.Errorf("expected %d packets, relay says %d", n, expected)
	}
	lossPct := 100 * float64(lost) / float64(expected)
	gotJitterMs := float64(jitterUs) / 1000
	t.Logf("%s, sample %d: loss %.2f%% (truth %.2f%%), jitter %.2f ms (truth %.2f ms, RFC 3550 per packet %.2f ms); fast path %d, userspace %d",
		mode, jitterSample, lossPct, trueLossPct, gotJitterMs, trueJitterMs, rfcJitterMs, statInt(st, "fast path"), statInt(st, "userspace"))
	if math.Abs(lossPct-trueLossPct) > 1 {
		t.Errorf("loss %.2f%%, truth %.2f%%: more than one point off", lossPct, trueLossPct)
	}
	if isXDP(mode) && statInt(st, "fast path") < int64(len(log))-5 {
		t.Errorf("only %d packets on the fast path: XDP statistics not exercised", statInt(st, "fast path"))
	}
	if math.Abs(gotJitterMs-trueJitterMs) > 0.2*trueJitterMs {
		return fmt.Sprintf("jitter %.2f ms, truth %.2f ms: more than 20%% off", gotJitterMs, trueJitterMs)
	}
	if math.Abs(gotJitterMs-rfcJitterMs) > 0.6*rfcJitterMs {
		return fmt.Sprintf("jitter %.2f ms, RFC 3550 per packet %.2f ms: more than 60%% off", gotJitterMs, rfcJitterMs)
	}
	return ""
}
