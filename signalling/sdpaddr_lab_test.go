package signalling

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// A customer elsewhere (198.18.1.3) whose SDP points the relay's media at
// the edge itself — loopback (the SIP port, the API, the relay's NG
// port), the relay's own address, a=rtcp at loopback — gets 488 Not
// Acceptable Here, and sip logs why. Without the check the relay
// took such an SDP (only its media range and NG port are its own to
// refuse) and the call went on, its media aimed at a host service.
func TestSDPSelfAddressLab(t *testing.T) {
	l := newTrunkLab(t, relayXtrunk)
	tri := l.tri
	addSecondAddr(t, tri.Caller, tri.CallerIP, betaIP)
	host := l.betaTrunk(t)
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(l.port())})
	body := func(c, extra string) string {
		return fmt.Sprintf("v=0\r\no=beta 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio 5060 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n%s",
			betaIP, c, extra)
	}
	for i, tc := range []struct{ name, sdp string }{
		{"loopback SIP port", body("127.0.0.1", "")},
		{"the relay's address", body(tri.RelayCallerIP.String(), "")},
		{"a=rtcp at loopback", body(betaIP.String(), "a=rtcp:8080 IN IP4 127.0.0.1\r\n")},
	} {
		beta := netip.AddrPortFrom(betaIP, uint16(l.port()))
		id := "self-" + strconv.Itoa(i) + "@beta"
		code, res := sipExchangeMsg(t, tri.Caller, beta, sipAddr,
			rawInviteSDP(beta, l.number(), host, id, "s"+strconv.Itoa(i), "z9hG4bK-self-"+strconv.Itoa(i), tc.sdp))
		if code != 488 {
			t.Errorf("%s: INVITE answered %d, want 488:\n%s", tc.name, code, res)
		}
	}
	l.sipsMu.Lock()
	out := l.sips[0].Output()
	l.sipsMu.Unlock()
	if !strings.Contains(out, "SDP names an address of the edge") {
		t.Errorf("no log line says why:\n%s", lastLines(out, 20))
	}
}
