package media

import (
	"net/netip"
	"testing"
	"time"
)

// TestLayoutMatchesC: the Go side's sizes agree with types.h.
func TestLayoutMatchesC(t *testing.T) {
	spec, err := loadXm()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps["sink_hist"].MaxEntries; got != histBuckets {
		t.Errorf("sink_hist has %d buckets, hist.go %d", got, histBuckets)
	}
	for _, m := range []string{"gen_calls", "sink_calls"} {
		if got := spec.Maps[m].MaxEntries; got < maxCalls {
			t.Errorf("%s holds %d calls, maxCalls is %d", m, got, maxCalls)
		}
	}
	if portBase+2*(maxCalls-1) > 65535 {
		t.Errorf("call ports run past 65535 at %d calls", maxCalls)
	}
	if pairs := (relayPortMax - relayPortMin + 1) / 2; pairs < maxCalls {
		t.Errorf("relay range holds %d pairs, maxCalls is %d", pairs, maxCalls)
	}
}

func TestPercentile(t *testing.T) {
	h := make([]uint64, histBuckets)
	if _, ok := percentile(h, 0.5); ok {
		t.Fatal("empty histogram has a percentile")
	}
	h[9] = 90     // 9-10 µs
	h[1000] = 9   // 1.0-1.1 ms
	h[1990+5] = 1 // 150-160 ms
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 10 * time.Microsecond},
		{0.9, 10 * time.Microsecond},
		{0.95, 1100 * time.Microsecond},
		{0.99, 1100 * time.Microsecond},
		{1, 160 * time.Millisecond},
	} {
		if got, _ := percentile(h, tc.q); got != tc.want {
			t.Errorf("p%g = %v, want %v", tc.q*100, got, tc.want)
		}
	}
	for i, want := range map[int]time.Duration{0: time.Microsecond, 999: time.Millisecond, 1989: 100 * time.Millisecond, 2979: 10 * time.Second, 2980: 10 * time.Second} {
		if got := bucketUpper(i); got != want {
			t.Errorf("bucket %d upper edge %v, want %v", i, got, want)
		}
	}
}

func TestSDPMedia(t *testing.T) {
	// rtpengine puts c= at session level and adds attributes; xtrunk
	// rewrites in place.
	for _, tc := range []struct {
		sdp  string
		want string
	}{
		{"v=0\r\no=- 1 1 IN IP4 198.18.2.1\r\ns=-\r\nc=IN IP4 198.18.2.1\r\nt=0 0\r\nm=audio 30002 RTP/AVP 0\r\na=rtcp:30003\r\n", "198.18.2.1:30002"},
		{"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\nc=IN IP4 198.18.1.1\r\nm=audio 50000 RTP/AVP 0\r\n", "198.18.1.1:40000"},
	} {
		got, err := sdpMedia(tc.sdp)
		if err != nil || got != netip.MustParseAddrPort(tc.want) {
			t.Errorf("sdpMedia = %v, %v; want %s", got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "v=0\r\nm=audio 1 RTP/AVP 0\r\n", "c=IN IP4 198.18.1.1\r\nm=video 5 RTP/AVP 96\r\n"} {
		if _, err := sdpMedia(bad); err == nil {
			t.Errorf("sdpMedia(%q) found an address", bad)
		}
	}
}

func TestParseXDPReasons(t *testing.T) {
	body := `# HELP xtrunk_relay_xdp_packets_total Packets seen by the XDP program.
# TYPE xtrunk_relay_xdp_packets_total counter
xtrunk_relay_xdp_packets_total{reason="forward_redirect",verdict="forward"} 1.234567e+06
xtrunk_relay_xdp_packets_total{reason="pass_userspace",verdict="pass"} 40
xtrunk_relay_xdp_packets_total{reason="drop_no_session",verdict="drop"} 0
xtrunk_relay_calls 20
`
	got := parseXDPReasons(body)
	if got["forward_redirect"] != 1234567 || got["pass_userspace"] != 40 || got["drop_no_session"] != 0 || len(got) != 3 {
		t.Errorf("parsed %v", got)
	}
}

func TestFinish(t *testing.T) {
	r := &Results{Modes: []ModeResult{
		{Mode: ModeXDP, Steps: []Step{
			{Calls: 1000, Status: StatusOK, DeliveredPPS: 100e3, OfferedPPS: 100e3, SentPPS: 100e3},
			{Calls: 10000, Status: StatusOK, DeliveredPPS: 1e6, OfferedPPS: 1e6, SentPPS: 1e6, LossPct: 0.001, LatencyP99us: 40, Delivered: 1},
			{Calls: 20000, Status: StatusShort, DeliveredPPS: 1.5e6, OfferedPPS: 2e6, SentPPS: 1.5e6},
		}},
		{Mode: ModeRTPEngine, Steps: []Step{
			{Calls: 1000, Status: StatusOK, DeliveredPPS: 100e3},
			{Calls: 2000, Status: StatusLoss, DeliveredPPS: 150e3, LossPct: 5},
		}},
		{Mode: ModeCeiling, Steps: []Step{
			{Calls: 10000, Status: StatusOK, DeliveredPPS: 1e6, LatencyP99us: 25, Delivered: 1},
			{Calls: 20000, Status: StatusShort, DeliveredPPS: 2e6},
		}},
	}}
	r.finish()
	x := r.mode(ModeXDP)
	if x.MaxCleanCalls != 10000 || x.MaxCleanPPS != 1e6 || x.PeakPPS != 1.5e6 {
		t.Errorf("xdp: %+v", x)
	}
	if re := r.mode(ModeRTPEngine); re.MaxCleanCalls != 1000 || re.PeakPPS != 100e3 {
		t.Errorf("rtpengine: %+v", re)
	}
	s := r.Summary
	if s.XDPOverCeiling != 0.75 || s.XDPOverRTPEngine != 10 || !s.Held10k || s.AddedP99us == nil || *s.AddedP99us != 15 {
		t.Errorf("summary: %+v", s)
	}
}
