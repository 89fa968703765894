package media

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// TestSRTPPrepare: the pre-encrypted frames are round robin over the calls,
// carry correct Ethernet/IPv4/UDP headers toward each call's relay port,
// and decrypt (with the caller's key, replay protection on, as a relay
// would) to the plain RTP the sinks expect, each call's sequence and
// timestamp going on from one prepare to the next.
func TestSRTPPrepare(t *testing.T) {
	end := &testbed.End{MAC: macA, Addrs: []netip.Prefix{netip.PrefixFrom(callerIP, 24)}}
	peer := &testbed.End{MAC: macB}
	s := &srtpSender{end: end, peer: peer, ssrcBase: 0x0a000000, fd: -1}
	var calls []genCall
	for i := range 3 {
		key := make([]byte, srtpKeyLen)
		for j := range key {
			key[j] = byte(i*31 + j)
		}
		calls = append(calls, genCall{SrcPort: uint16(portBase + 2*i), Dst: netip.AddrPortFrom(relayCallerIP, uint16(30000+10*i)), Key: key})
	}
	if err := s.setCalls(calls[:2], 0); err != nil {
		t.Fatal(err)
	}
	if err := s.setCalls(calls, 2); err != nil { // a step adds a call
		t.Fatal(err)
	}
	decs := make([]*srtp.Context, len(calls))
	for i, c := range calls {
		var err error
		if decs[i], err = srtp.CreateContext(c.Key[:16], c.Key[16:], srtpProfile, srtp.SRTPReplayProtection(64)); err != nil {
			t.Fatal(err)
		}
	}
	next := make([]uint16, len(calls))
	check := func(ncalls int, total uint64) {
		t.Helper()
		if err := s.prepare(ncalls, total); err != nil {
			t.Fatal(err)
		}
		if s.nframes != int(total) || len(s.frames) != int(total)*srtpFrameLen {
			t.Fatalf("%d frames in %d bytes, want %d", s.nframes, len(s.frames), total)
		}
		for k := 0; k < s.nframes; k++ {
			f := s.frames[k*srtpFrameLen : (k+1)*srtpFrameLen]
			i := k % ncalls
			c := calls[i]
			want := rtpFrame(macB, macA, netip.AddrPortFrom(callerIP, c.SrcPort), c.Dst, 0, SRTPBytes)
			want[14+1] = 0xb8
			binary.BigEndian.PutUint16(want[14+6:], 0x4000)
			binary.BigEndian.PutUint16(want[14+10:], 0)
			binary.BigEndian.PutUint16(want[14+10:], ipChecksum(want[14:34]))
			if string(f[:42]) != string(want[:42]) {
				t.Fatalf("frame %d headers\n got % x\nwant % x", k, f[:42], want[:42])
			}
			var h rtp.Header
			p, err := decs[i].DecryptRTP(nil, f[42:], &h)
			if err != nil {
				t.Fatalf("frame %d (call %d, seq %d) does not decrypt: %v", k, i, next[i], err)
			}
			var plain [RTPBytes]byte
			if string(p) != string(rtpPlain(plain[:], 0x0a000000+uint32(i), next[i], uint32(next[i])*160)) {
				t.Fatalf("frame %d (call %d) decrypts to\n% x", k, i, p)
			}
			next[i]++
		}
	}
	check(3, 7) // call 0 gets 3 packets, calls 1 and 2 get 2
	check(3, 3)
	check(1, 2) // only call 0
	if next[0] != 3+1+2 || next[1] != 2+1 || next[2] != 2+1 {
		t.Errorf("packets per call %v", next)
	}
	if err := s.prepare(4, 1); err == nil {
		t.Error("prepare for more calls than the sender has")
	}
	if err := s.prepare(3, maxSRTPBuffer/srtpFrameLen+1); !errors.Is(err, ErrConfig) {
		t.Errorf("prepare past the memory bound: %v", err)
	}
}

func TestSRTPSDP(t *testing.T) {
	key := make([]byte, srtpKeyLen)
	offer := savpSDP(netip.AddrPortFrom(callerIP, 10002), key)
	if !strings.Contains(offer, "m=audio 10002 RTP/SAVP 0\r\n") ||
		!strings.Contains(offer, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+base64.StdEncoding.EncodeToString(key)+"\r\n") {
		t.Errorf("offer:\n%s", offer)
	}
	if got, err := sdpMedia(offer); err != nil || got != netip.AddrPortFrom(callerIP, 10002) {
		t.Errorf("offer's media %v %v", got, err)
	}
	relayKey := make([]byte, srtpKeyLen)
	relayKey[0] = 7
	b64 := base64.StdEncoding.EncodeToString(relayKey)
	// rtpengine's style: session-level c=, lifetime on the key
	answer := "v=0\r\no=- 1 2 IN IP4 198.18.1.1\r\ns=-\r\nc=IN IP4 198.18.1.1\r\nt=0 0\r\nm=audio 16000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|2^31\r\n"
	if got, err := answerKey(answer); err != nil || string(got) != string(relayKey) {
		t.Errorf("answerKey = %x, %v", got, err)
	}
	for _, bad := range []string{
		strings.Replace(answer, "RTP/SAVP", "RTP/AVP", 1),
		strings.Replace(answer, "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", 1),
		strings.Replace(answer, "|2^31", "|2^31|1:4", 1), // MKI
	} {
		if _, err := answerKey(bad); !errors.Is(err, ErrSRTP) {
			t.Errorf("answerKey accepted (%v):\n%s", err, bad)
		}
	}
	if err := plainOffer(benchSDP(netip.AddrPortFrom(relayCalleeIP, 16000))); err != nil {
		t.Error(err)
	}
	if err := plainOffer(answer); !errors.Is(err, ErrSRTP) {
		t.Errorf("plainOffer accepted SRTP: %v", err)
	}
}

func TestSRTPConfig(t *testing.T) {
	c := Config{SRTP: true, Calls: []int{10}}
	if err := c.defaults(); err != nil || strings.Join(c.Modes, ",") != "xdp,userspace,rtpengine" {
		t.Errorf("SRTP default modes %v, %v", c.Modes, err)
	}
	c = Config{SRTP: true, Modes: []string{ModeXDP, ModeCeiling}}
	if err := c.defaults(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "does not apply") {
		t.Errorf("SRTP with the ceiling: %v", err)
	}
}

func TestFinishSRTP(t *testing.T) {
	r := &Results{SRTP: true, Calls: []int{100, 1000, 2000}, Modes: []ModeResult{
		{Mode: ModeXDP, Steps: []Step{
			{Calls: 100, Status: StatusOK, DeliveredPPS: 10e3, SRTPCallsPerCore: 900},
			{Calls: 1000, Status: StatusOK, DeliveredPPS: 100e3, SRTPCallsPerCore: 1100},
			{Calls: 2000, Status: StatusShort, DeliveredPPS: 150e3, SRTPCallsPerCore: 1500},
		}},
		{Mode: ModeUserspace, Steps: []Step{{Calls: 100, Status: StatusLoss, LossPct: 2}}},
		{Mode: ModeRTPEngine, Steps: []Step{
			{Calls: 100, Status: StatusOK, SRTPCallsPerCore: 950},
			{Calls: 1000, Status: StatusOK, SRTPCallsPerCore: 1200},
		}},
	}}
	r.finish()
	if x := r.mode(ModeXDP); x.SRTPCallsPerCore != 1100 || x.MaxCleanCalls != 1000 {
		t.Errorf("xdp: SRTP calls per core %v at %d calls, want 1100 at 1000 (the most calls carried in full)", x.SRTPCallsPerCore, x.MaxCleanCalls)
	}
	if u := r.mode(ModeUserspace); u.SRTPCallsPerCore != 0 {
		t.Errorf("userspace carried nothing, has %v SRTP calls per core", u.SRTPCallsPerCore)
	}
	if r.Summary.XDPOverUserspace != 0 {
		t.Errorf("SRTP summary has plain-RTP targets: %+v", r.Summary)
	}
	if r.Summary.SRTPCommonCalls != 0 {
		t.Errorf("userspace carried no step, yet a common step %d", r.Summary.SRTPCommonCalls)
	}
	r.Modes = append(r.Modes[:1], r.Modes[2])
	r.finish()
	if s := r.Summary; s.SRTPCommonCalls != 1000 || s.SRTPCallsPerCoreAt[ModeXDP] != 1100 || s.SRTPCallsPerCoreAt[ModeRTPEngine] != 1200 {
		t.Errorf("common step %d: %v", s.SRTPCommonCalls, s.SRTPCallsPerCoreAt)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SRTP calls/core", "1100", "SRTP calls per core 1100 (at 1000 calls)", "no latency",
		"SRTP calls per core at 1000 calls (the most every mode carried): xdp 1100, rtpengine 1200"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
