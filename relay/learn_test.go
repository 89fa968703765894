package relay

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
	"github.com/xtrunk/xtrunk/control/ng"
)

// rtcpRR is an empty receiver report from ssrc.
func rtcpRR(ssrc uint32) []byte {
	p := []byte{0x80, 201, 0, 1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(p[4:], ssrc)
	return p
}

// learnCall sets up a plain call on the loopback relay whose caller
// announces sdp and returns the relay's RTP socket facing the caller.
func learnCall(t *testing.T, r *Relay, id, sdp string) *endpoint {
	t.Helper()
	if rep := serve(r, ng.Dict{"command": "offer", "call-id": id, "from-tag": "a", "sdp": sdp}); rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	if rep := serve(r, ng.Dict{"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b", "sdp": g711SDP(netip.MustParseAddr("127.0.0.1"), 9)}); rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	r.mu.Lock()
	c := r.calls[id]
	r.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[0].ep[0]
}

func latchedTo(e *endpoint) (rtp, rtcp netip.AddrPort) {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	return e.latched, e.latchedRTCP
}

// Learning checks the SSRC (REQUIREMENTS §5, RTP Bleed): once one of an
// endpoint's sockets has learned its party, a candidate on the other
// socket (another source) must carry the same SSRC; an SDP that announces
// its SSRCs (a=ssrc) admits only those.
func TestLearningChecksSSRC(t *testing.T) {
	r := loopbackRelay(t)
	r.cfg.LearnWindow = time.Hour // no part of this test may depend on the clock
	lo := netip.MustParseAddr("127.0.0.1")
	party, partyRTCP := netip.AddrPortFrom(lo, 20000), netip.AddrPortFrom(lo, 20001)
	buf := make([]byte, 172)

	// RTP first, then RTCP candidates
	e := learnCall(t, r, "rtp-first", g711SDP(lo, 20000))
	feed(r, e.rtp, party, rtpgen.Packet(buf, 0xAAAA, 1))
	if rtp, _ := latchedTo(e); rtp != party {
		t.Fatalf("RTP not latched to the SDP address: %v", rtp)
	}
	feed(r, e.rtcp, partyRTCP, rtcpRR(0xBBBB))
	if _, rtcp := latchedTo(e); rtcp.IsValid() {
		t.Errorf("RTCP latched to %v with SSRC %#x; the RTP latched SSRC 0xAAAA", rtcp, 0xBBBB)
	}
	feed(r, e.rtcp, partyRTCP, rtcpRR(0xAAAA))
	if _, rtcp := latchedTo(e); rtcp != partyRTCP {
		t.Errorf("RTCP with the latched SSRC not learned: %v", rtcp)
	}

	// RTCP first (from the SDP's RTCP address): the RTP candidate from
	// another port of that host, in the window, must carry its SSRC
	e = learnCall(t, r, "rtcp-first", g711SDP(lo, 20010))
	feed(r, e.rtcp, netip.AddrPortFrom(lo, 20011), rtcpRR(0xCCCC))
	if _, rtcp := latchedTo(e); !rtcp.IsValid() {
		t.Fatal("RTCP from the SDP's RTCP address not learned")
	}
	other := netip.AddrPortFrom(lo, 20500)
	feed(r, e.rtp, other, rtpgen.Packet(buf, 0xDDDD, 1))
	if rtp, _ := latchedTo(e); rtp.IsValid() {
		t.Errorf("RTP latched to %v with SSRC 0xDDDD; the RTCP latched SSRC 0xCCCC", rtp)
	}
	feed(r, e.rtp, other, rtpgen.Packet(buf, 0xCCCC, 2))
	if rtp, _ := latchedTo(e); rtp != other {
		t.Errorf("RTP with the latched SSRC not learned: %v", rtp)
	}

	// the SDP says which SSRC it sends
	e = learnCall(t, r, "announced", g711SDP(lo, 20020)+"a=ssrc:4660 cname:alice\r\n")
	feed(r, e.rtp, netip.AddrPortFrom(lo, 20020), rtpgen.Packet(buf, 0x9999, 1))
	if rtp, _ := latchedTo(e); rtp.IsValid() {
		t.Errorf("latched to SSRC 0x9999; the SDP announced 4660 only")
	}
	feed(r, e.rtp, netip.AddrPortFrom(lo, 20020), rtpgen.Packet(buf, 4660, 2))
	if rtp, _ := latchedTo(e); !rtp.IsValid() {
		t.Errorf("the announced SSRC was not learned")
	}
	if n := dropCount(t, r, dropNotLearnable); n != 3 {
		t.Errorf("%d packets dropped as not_learnable, want 3", n)
	}
}
