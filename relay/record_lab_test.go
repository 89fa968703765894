package relay

import (
	"encoding/binary"
	"math"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/record"
)

// toneSender sends 20 ms PCMU packets of a tone, starting at seq.
type toneSender struct {
	conn *net.UDPConn
	to   netip.AddrPort
	freq float64
	ssrc uint32
	seq  uint16
	// when the first packet left: the recording places a stream's first
	// packet by its arrival, the rest by their RTP timestamps
	first time.Time
}

func (s *toneSender) send(t *testing.T, n int) {
	t.Helper()
	p := make([]byte, 172)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		p[0], p[1] = 0x80, 0
		binary.BigEndian.PutUint16(p[2:], s.seq)
		binary.BigEndian.PutUint32(p[4:], uint32(s.seq)*160)
		binary.BigEndian.PutUint32(p[8:], s.ssrc)
		for j := 0; j < 160; j++ {
			x := float64(int(s.seq)*160 + j)
			p[12+j] = record.EncodeULaw(int16(8000 * math.Sin(2*math.Pi*s.freq*x/8000)))
		}
		if _, err := s.conn.WriteToUDPAddrPort(p, s.to); err != nil {
			t.Fatal(err)
		}
		if s.first.IsZero() {
			s.first = time.Now()
		}
		s.seq++
	}
}

func goertzel(x []float64, freq float64) float64 {
	c := 2 * math.Cos(2*math.Pi*freq/8000)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = v+c*s1-s2, s1
	}
	return s1*s1 + s2*s2 - c*s1*s2
}

func wavChannels(t *testing.T, name string) [][]float64 {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.LittleEndian.Uint16(b[22:]))
	out := make([][]float64, n)
	for i := 44; i+2*n <= len(b); i += 2 * n {
		for c := 0; c < n; c++ {
			out[c] = append(out[c], float64(int16(binary.LittleEndian.Uint16(b[i+2*c:]))))
		}
	}
	return out
}

// A call with 440 Hz one way and 1 kHz the other, recorded from ringing
// (183 early media from the callee, then answer) and from answer, on the
// XDP fast path: the dual file has one tone per channel, the mono file
// both, the length matches the media, and only from-ringing holds the
// early media.
func TestRecording(t *testing.T) {
	for _, mode := range []string{"ringing", "answer"} {
		for _, dp := range xdpModes {
			t.Run(mode+"/"+dp, func(t *testing.T) { testRecording(t, mode, dp) })
		}
	}
}

func testRecording(t *testing.T, mode, dataplane string) {
	tri := labtest.NewTriangle(t)
	cfg := labConfig(t, tri, dataplane)
	cfg.RecordingDir = t.TempDir()
	lr := startLabRelay(t, tri, cfg)
	c := lr.ngClient(t)
	offer := ng.Dict{"command": "offer", "call-id": "rec-" + mode, "from-tag": "caller", "sdp": g711SDP(tri.CallerIP, 20000),
		"direction": []any{"customer", "carrier"}, "recording-channels": "both"}
	if mode == "ringing" {
		offer["record call"] = "yes"
	}
	// the recording starts with the NG command that asks for it: between
	// the command's send and its reply
	recFrom := time.Now()
	o := do(t, c, offer)
	recTo := time.Now()
	// 183 with SDP: an answer without recording
	early := do(t, c, ng.Dict{"command": "answer", "call-id": "rec-" + mode, "from-tag": "caller", "to-tag": "callee", "sdp": g711SDP(tri.CalleeIP, 40000)})
	cc, err := tri.Caller.ListenUDP(netip.AddrPortFrom(tri.CallerIP, 20000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ce, err := tri.Callee.ListenUDP(netip.AddrPortFrom(tri.CalleeIP, 40000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ce.Close()
	callee := &toneSender{conn: ce, to: mediaOf(t, o.Str("sdp")), freq: 1000, ssrc: 2}
	caller := &toneSender{conn: cc, to: mediaOf(t, early.Str("sdp")), freq: 440, ssrc: 1}

	callee.send(t, 50) // 1 s of ringback from the callee only
	ringFirst := callee.first
	callee.first = time.Time{}
	ans := ng.Dict{"command": "answer", "call-id": "rec-" + mode, "from-tag": "caller", "to-tag": "callee", "sdp": g711SDP(tri.CalleeIP, 40000)}
	if mode == "answer" {
		ans["record call"] = "yes"
		ans["recording-channels"] = "both"
	}
	if mode == "answer" {
		recFrom = time.Now()
	}
	do(t, c, ans)
	if mode == "answer" {
		recTo = time.Now()
	}
	done := make(chan struct{})
	go func() { defer close(done); caller.send(t, 100) }()
	callee.send(t, 100) // 2 s of conversation
	<-done
	q := queryUntil(t, c, "rec-"+mode, func(q ng.Dict) bool { return statInt(streamStats(t, q, "callee"), "fast path") >= 145 })
	if f := statInt(streamStats(t, q, "callee"), "fast path"); f < 145 {
		t.Errorf("only %d of the callee's 150 packets took the fast path: recording copies from XDP not exercised", f)
	}
	del := do(t, c, ng.Dict{"command": "delete", "call-id": "rec-" + mode})
	lr.r.finishing.Wait() // the files are written after the reply
	rec := del.Dict("recording")
	files := rec.Strings("files")
	if len(files) != 2 {
		t.Fatalf("delete reply recording %v", rec)
	}
	// The recording places each stream's first packet by its arrival and
	// the rest by RTP timestamp, so it ends where the longer channel
	// does: its first packet's offset from the recording's start plus
	// 20 ms a packet. Wall time spent sending is no measure: a loaded
	// machine delays the sender's ticks but not its timestamps. The
	// recording's start is known to within the NG command's round trip,
	// and a first packet may reach the relay a little after it left (the
	// userspace path before latching, on a loaded machine): the slack.
	calleeFirst, calleePackets := callee.first, 100
	if mode == "ringing" {
		calleeFirst, calleePackets = ringFirst, 150 // the ringback's timestamps run on into the conversation
	}
	span := func(first time.Time, packets int, from time.Time) float64 {
		return first.Sub(from).Seconds() + float64(packets)*0.02
	}
	want := max(span(calleeFirst, calleePackets, recTo), span(caller.first, 100, recTo))
	slack := 0.1 + recTo.Sub(recFrom).Seconds()
	t.Logf("want a recording of %.3f s (-0.04 s, +%.3f s)", want, slack)
	dur, _ := rec.Int("duration ms")
	if d := float64(dur)/1000 - want; d < -0.04 || d > slack {
		t.Errorf("recording lasts %d ms, want %.0f ms (-40 ms, +%.0f ms)", dur, want*1000, slack*1000)
	}
	if lost, _ := rec.Int("copies lost"); lost != 0 {
		t.Errorf("%d fast-path copies lost", lost)
	}
	mono, dual := wavChannels(t, files[0]), wavChannels(t, files[1])
	if len(mono) != 1 || len(dual) != 2 {
		t.Fatalf("mono has %d channels, dual %d", len(mono), len(dual))
	}
	if d := float64(len(mono[0]))/8000 - want; d < -0.04 || d > slack {
		t.Errorf("mono WAV holds %.3f s, want %.3f (-0.04, +%.3f)", float64(len(mono[0]))/8000, want, slack)
	}
	if p440, p1k := goertzel(dual[0], 440), goertzel(dual[0], 1000); p440 < 100*p1k {
		t.Errorf("caller channel is not the 440 Hz tone (%g vs %g)", p440, p1k)
	}
	if p440, p1k := goertzel(dual[1], 440), goertzel(dual[1], 1000); p1k < 100*p440 {
		t.Errorf("callee channel is not the 1 kHz tone (%g vs %g)", p1k, p440)
	}
	if p440, p1k, p700 := goertzel(mono[0], 440), goertzel(mono[0], 1000), goertzel(mono[0], 700); p440 < 100*p700 || p1k < 100*p700 {
		t.Errorf("mono mix lacks a tone: 440 %g 1k %g (700 %g)", p440, p1k, p700)
	}
	// the first second of the callee's channel is early media: present from
	// ringing, absent from answer (the recording starts at the answer)
	firstSec := dual[1][:8000]
	energy := goertzel(firstSec, 1000)
	callerFirst := goertzel(dual[0][:8000], 440)
	if mode == "ringing" && callerFirst > energy/100 {
		t.Errorf("from ringing: the caller channel's first second should be silent (early media only), 440 Hz %g vs 1 kHz %g", callerFirst, energy)
	}
	if mode == "answer" && callerFirst < 1e9 {
		t.Errorf("from answer: the recording should start with the conversation, caller 440 Hz power %g", callerFirst)
	}
}
