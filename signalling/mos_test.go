package signalling

import (
	"math"
	"testing"
)

// TestMOS: the E-model's known points: a clean G.711 call scores the
// E-model's ceiling for these defaults (R 92.7, MOS 4.4); loss and jitter
// lower it, G.729 scores below G.711, the score stays in 1..4.5.
func TestMOS(t *testing.T) {
	clean := mos(0, 0, "PCMU")
	if math.Abs(clean-4.4) > 0.05 {
		t.Errorf("clean G.711 MOS %.3f, want about 4.4", clean)
	}
	lossy := mos(0.05, 0, "pcmu")
	// Ie,eff = 95*5/(5+25.1) = 15.78; R = 93.2 - 0.48 - 15.78 = 76.94
	if math.Abs(lossy-3.88) > 0.05 {
		t.Errorf("5%% loss G.711 MOS %.3f, want about 3.88", lossy)
	}
	if j := mos(0, 60, "pcmu"); j >= clean {
		t.Errorf("60 ms jitter MOS %.3f not below clean %.3f", j, clean)
	}
	if g := mos(0, 0, "G729"); g >= clean {
		t.Errorf("G.729 MOS %.3f not below G.711 %.3f", g, clean)
	}
	for _, c := range []struct{ loss, jit float64 }{{1, 1000}, {-1, -5}, {math.NaN(), 0}} {
		if m := mos(c.loss, c.jit, "x"); !(m >= 1 && m <= 4.5) && !math.IsNaN(c.loss) {
			t.Errorf("mos(%v, %v) = %v, outside 1..4.5", c.loss, c.jit, m)
		}
	}
}

func TestSDPCodec(t *testing.T) {
	for sdp, want := range map[string]string{
		"v=0\r\nm=audio 4000 RTP/AVP 8 0 101\r\n":                                              "pcma",
		"v=0\r\nm=audio 4000 RTP/AVP 96 0\r\na=rtpmap:96 opus/48000/2\r\n":                     "opus",
		"v=0\r\nm=video 1 RTP/AVP 0\r\nm=audio 4000 RTP/AVP 18\r\n":                            "g729",
		"v=0\r\nm=audio 4000 RTP/AVP 97\r\nm=video 1 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n": "",
		"": "",
	} {
		if got := sdpCodec([]byte(sdp)); got != want {
			t.Errorf("sdpCodec(%q) = %q, want %q", sdp, got, want)
		}
	}
}

func FuzzSDPCodec(f *testing.F) {
	f.Add([]byte("v=0\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n"))
	f.Add([]byte("m=audio"))
	f.Fuzz(func(t *testing.T, sdp []byte) {
		c := sdpCodec(sdp)
		if m := mos(0.01, 10, c); m < 1 || m > 4.5 {
			t.Fatalf("mos %v for codec %q", m, c)
		}
	})
}
