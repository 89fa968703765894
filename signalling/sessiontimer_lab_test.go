package signalling

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

// labSessionTimers are the flags for second-scale session timers in the
// session timer labs: the edge takes intervals down to 4 s.
var labSessionTimers = []string{"--session-min-se", "4s"}

// Issue 12, session timers (RFC 4028, REQUIREMENTS §4) with SIPp at both
// ends, against xtrunk's relay and rtpengine: 422 below the minimum (and a
// callee's 422 retried), the edge refreshing both legs of a termination
// call (UPDATE toward the PBX, re-INVITE toward the carrier) past the
// expiry, a PBX refreshing with UPDATE, and a refresher that never
// refreshes (on either leg) or a refresh refused with 481 or unanswered,
// each ending the call with BYE on both legs and a CDR that says why.
func TestSessionTimerLab(t *testing.T) {
	for _, kind := range relayKinds {
		t.Run(kind, func(t *testing.T) {
			l := newTrunkLab(t, kind)
			t.Run("termination Session-Expires below Min-SE gets 422", func(t *testing.T) { t.Parallel(); l.sessionTooSmall(t) })
			t.Run("termination the edge refreshes both legs", func(t *testing.T) { t.Parallel(); l.sessionRefreshed(t) })
			t.Run("termination the carrier's 422 is retried with its Min-SE", func(t *testing.T) { t.Parallel(); l.sessionCallee422(t) })
			t.Run("termination the PBX refreshes with UPDATE", func(t *testing.T) { t.Parallel(); l.sessionPeerUpdates(t) })
			t.Run("termination the PBX never refreshes", func(t *testing.T) { t.Parallel(); l.sessionExpiredTermination(t) })
			t.Run("origination the PBX never refreshes", func(t *testing.T) { t.Parallel(); l.sessionExpiredOrigination(t) })
			t.Run("origination the carrier refuses the refresh with 481", func(t *testing.T) {
				t.Parallel()
				l.sessionRefreshFailed(t, "refresh-481", "uac_carrier_timer_481.xml", string(reasonRefreshFailed)+": Call/Transaction Does Not Exist")
			})
			t.Run("origination the carrier does not answer the refresh", func(t *testing.T) {
				t.Parallel()
				l.sessionRefreshFailed(t, "refresh-mute", "uac_carrier_timer_mute.xml", string(reasonRefreshFailed)+": no answer")
			})
		})
	}
}

// sessionTooSmall: Session-Expires: 30 with the default minimum (90 s)
// gets 422 with Min-SE: 90 (checked by the scenario) and no call.
func (l *trunkLab) sessionTooSmall(t *testing.T) {
	tri := l.tri
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(l.port())})
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "timer-small-pbx", "uac_pbx_timer_small.xml", tri.CallerIP, l.port(), l.port(), pbxArgs(called, sipAddr.String())...)
	uac.wait(t)
}

// sessionCallee422: the carrier refuses the edge's 8 s with 422 and
// Min-SE: 12; the edge asks again for 12 s (the carrier's scenario checks
// Session-Expires and Min-SE) and the PBX's call goes through.
func (l *trunkLab) sessionCallee422(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort),
		extra: append([]string{"--session-expires", "8s"}, labSessionTimers...)})
	uas := l.startUAS(t, tri.Callee, "timer-422-carrier", "uas_carrier_timer_422.xml", tri.CalleeIP, carrierPort, 0, "-m", "2")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "timer-422-pbx", "uac_auth.xml", tri.CallerIP, l.port(), l.port(), pbxArgs(called, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	checkCDR(t, l.cdrs(t, called, 1)[0], cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true})
}

// sessionPeerUpdates: the PBX refreshes its 8 s itself with UPDATE
// without a body every 3 s; the edge answers each 200 with the timer and
// the call outlives the 8 s until the PBX hangs up.
func (l *trunkLab) sessionPeerUpdates(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort), extra: labSessionTimers})
	uas := l.startUAS(t, tri.Callee, "timer-update-carrier", "uas_answer.xml", tri.CalleeIP, carrierPort, 0, "-m", "1")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "timer-update-pbx", "uac_pbx_timer_update.xml", tri.CallerIP, l.port(), l.port(), pbxArgs(called, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	c := l.cdrs(t, called, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true})
	if up := c.End.Sub(c.Answer); up < 6*time.Second {
		t.Errorf("the call was up %v: the PBX hangs up only after 7 s", up)
	}
}

// sessionRefreshed: the PBX asks for 8 s refreshed by the edge, the
// carrier answers 6 s refreshed by the edge: the PBX gets two UPDATEs,
// the carrier at least two re-INVITEs, and the call is still up when
// the PBX hangs up after its second refresh, past both intervals' first
// expiry.
func (l *trunkLab) sessionRefreshed(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort), extra: labSessionTimers})
	uas := l.startUAS(t, tri.Callee, "timer-refresh-carrier", "uas_carrier_timer_refresh.xml", tri.CalleeIP, carrierPort, 0, "-m", "1")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "timer-refresh-pbx", "uac_pbx_timer_refresh.xml", tri.CallerIP, l.port(), l.port(), pbxArgs(called, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	c := l.cdrs(t, called, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true})
	if up := c.End.Sub(c.Answer); up < 6*time.Second {
		t.Errorf("the call was up %v: the PBX hangs up only after its second refresh (8 s)", up)
	}
}

// sessionExpiredTermination: the PBX takes the refresher role of 8 s and
// never refreshes; the carrier does no timers. The edge BYEs both legs
// (each scenario waits for its BYE) before the 8 s are over.
func (l *trunkLab) sessionExpiredTermination(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	metrics := netip.AddrPortFrom(tri.RelayCallerIP, uint16(l.port())).String()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort), extra: labSessionTimers, metrics: metrics})
	uas := l.startUAS(t, tri.Callee, "timer-silent-carrier", "uas_answer.xml", tri.CalleeIP, carrierPort, 0, "-m", "1")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "timer-silent-pbx", "uac_pbx_timer_silent.xml", tri.CallerIP, l.port(), l.port(), pbxArgs(called, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	c := l.cdrs(t, called, 1)[0]
	l.checkExpiredCDR(t, c, cdrWant{dir: store.DirectionTerminating, from: labDID, to: called})
	waitSeries(t, func() string { return httpGetIn(t, tri.Relay, "http://"+metrics+"/metrics") },
		`xtrunk_sip_session_timer_expired_total{trunk="`+c.TrunkSid+`"} 1`)
}

// sessionExpiredOrigination: the customer's PBX (B-leg) answers with 8 s
// it refreshes itself and never does; the carrier does no timers and the
// edge asks none of its own (--session-expires 0). The edge BYEs both.
func (l *trunkLab) sessionExpiredOrigination(t *testing.T) {
	tri := l.tri
	custPort := l.port()
	did := l.originationTrunk(t, "timer", origURL{l.customerURI(custPort), 10, 10})
	sipAddr := l.startSIP(t, sipOpts{extra: append([]string{"--session-expires", "0"}, labSessionTimers...)})
	uas := l.startUAS(t, tri.Caller, "timer-silent-customer", "uas_customer_timer_silent.xml", tri.CallerIP, custPort, l.port(), "-rtp_echo", "-m", "1")
	uac := l.startSIPp(t, tri.Callee, "timer-silent-orig-carrier", "uac_carrier_timeout.xml", tri.CalleeIP, l.port(), l.port(), carrierArgs(did, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	l.checkExpiredCDR(t, l.cdrs(t, did, 1)[0], cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did})
}

// sessionRefreshFailed: the carrier asks for 8 s refreshed by the edge
// and answers the edge's refresh re-INVITE per scenario (481, or not at
// all): the edge BYEs both legs, and the CDR says why (hangup).
func (l *trunkLab) sessionRefreshFailed(t *testing.T, name, scenario, hangup string) {
	tri := l.tri
	custPort := l.port()
	did := l.originationTrunk(t, name, origURL{l.customerURI(custPort), 10, 10})
	sipAddr := l.startSIP(t, sipOpts{extra: labSessionTimers})
	uas := l.startUAS(t, tri.Caller, "timer-customer-"+name, "uas_answer.xml", tri.CallerIP, custPort, 0, "-m", "1")
	uac := l.startSIPp(t, tri.Callee, "timer-carrier-"+name, scenario, tri.CalleeIP, l.port(), l.port(), carrierArgs(did, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	c := l.cdrs(t, did, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: string(hangupSystem) + ": " + hangup, answered: true})
	if up := c.End.Sub(c.Answer); up < 3*time.Second {
		t.Errorf("the call was up %v: ended before the first refresh was due (4 s)", up)
	}
}

// checkExpiredCDR: answered, ended by the edge for the session timer, not
// before the unrefreshed session's end (8 s − min(32, 8/3) s).
func (l *trunkLab) checkExpiredCDR(t *testing.T, c store.Call, w cdrWant) {
	t.Helper()
	w.status, w.code, w.hangup, w.answered = "completed", 200, hangupCause(hangupSystem, reasonSessionExpired), true
	checkCDR(t, c, w)
	if up := c.End.Sub(c.Answer); up < 5*time.Second {
		t.Errorf("the call was up %v: ended before its 8 s session could expire (5.3 s)", up)
	}
}
