package signalling

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/xtrunk/xtrunk/control/store"
)

// Issue 6, integration tests 1 and 6: a termination call with digest
// auth and an origination call with Diversion and an X- header, each
// checked by the SIPp that receives it, with G.711 both ways through the
// relay — on xtrunk's relay, through the XDP fast path — and a right CDR;
// against xtrunk's relay and against Debian's rtpengine.
func TestTrunkingLab(t *testing.T) {
	for _, kind := range relayKinds {
		t.Run(kind, func(t *testing.T) {
			l := newTrunkLab(t, kind)
			t.Run("termination with digest", func(t *testing.T) { t.Parallel(); l.termination(t) })
			t.Run("origination with Diversion and X- header", func(t *testing.T) { t.Parallel(); l.origination(t) })
		})
	}
}

// termination: PBX (SIPp UAC, 407 then digest) → xtrunk sip → carrier
// (SIPp UAS, echoing the RTP); the PBX hangs up.
func (l *trunkLab) termination(t *testing.T) {
	tri := l.tri
	carrierPort, carrierMedia := l.port(), l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort)})
	uas := l.startUAS(t, tri.Callee, "term-carrier", "uas_carrier.xml", tri.CalleeIP, carrierPort, carrierMedia, "-rtp_echo", "-m", "1")
	called := l.number()
	w := l.watchMedia(t, "term-1@lab")
	uac := l.startSIPp(t, tri.Caller, "term-pbx", "uac_auth.xml", tri.CallerIP, l.port(), l.port(),
		append([]string{"-cid_str", "term-%u@lab"}, pbxArgs(called, sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	l.checkMedia(t, "termination", w.counts(), 30)
	c := l.cdrs(t, called, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})
	if c.TrunkSid != l.acmeSid {
		t.Errorf("CDR on trunk %s, want acme %s", c.TrunkSid, l.acmeSid)
	}
	l.checkCallResource(t, c)
}

// origination: carrier (SIPp UAC, playing the pcap) → xtrunk sip → the
// acme trunk's origination URI (SIPp UAS checking Request-URI, Diversion,
// X-Customer; echoing the RTP); the carrier hangs up.
func (l *trunkLab) origination(t *testing.T) {
	tri := l.tri
	custPort, custMedia := l.port(), l.port()
	l.api.create(t, "/v1/Trunks/"+l.acmeSid+"/OriginationUrls", url.Values{"FriendlyName": {"pbx"},
		"SipUrl": {l.customerURI(custPort) + "?X-Customer=acme-lab"}, "Priority": {"10"}, "Weight": {"10"}, "Enabled": {"true"}})
	sipAddr := l.startSIP(t, sipOpts{})
	uas := l.startUAS(t, tri.Caller, "orig-customer", "uas_customer.xml", tri.CallerIP, custPort, custMedia, "-rtp_echo", "-m", "1")
	w := l.watchMedia(t, "orig-1@lab")
	uac := l.startSIPp(t, tri.Callee, "orig-carrier", "uac_carrier.xml", tri.CalleeIP, l.port(), l.port(),
		append([]string{"-cid_str", "orig-%u@lab", "-d", "2000"}, carrierArgs(labDID, sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	l.checkMedia(t, "origination", w.counts(), 30)
	c := l.cdrs(t, labDID, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: labDID, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})
	if c.TrunkSid != l.acmeSid {
		t.Errorf("CDR on trunk %s, want acme %s", c.TrunkSid, l.acmeSid)
	}
	l.checkCallResource(t, c)
}

// checkCallResource reads the CDR back through the API's Calls resource.
func (l *trunkLab) checkCallResource(t *testing.T, c store.Call) {
	t.Helper()
	j := l.api.get(t, "/2010-04-01/Accounts/"+labAccountSid+"/Calls/"+c.Sid+".json")
	q, _ := j["media_quality"].([]any)
	if j["direction"] != c.Direction || j["from"] != c.From || j["to"] != c.To || j["status"] != c.Status ||
		j["sip_response_code"] != float64(c.SIPResponseCode) || j["hangup_cause"] != c.HangupCause ||
		j["trunk_sid"] != c.TrunkSid || j["duration"] != strconv.Itoa(c.Duration) || len(q) != len(c.Quality) {
		t.Errorf("Calls resource %v does not match the CDR %+v", j, c)
	}
}
