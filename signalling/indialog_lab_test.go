package signalling

import (
	"strconv"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

// labMediaTimeout is `xtrunk sip --media-timeout` for the media timeout
// scenarios (the others keep the default).
const labMediaTimeout = 3 * time.Second

// Issue 6, integration tests 5 and 6: calls in progress (REQUIREMENTS
// §4) with SIPp at both ends — re-INVITE hold/resume from either side,
// CANCEL, BYE from either side, media timeout — and every CDR right,
// against xtrunk's relay and against rtpengine.
func TestInDialogLab(t *testing.T) {
	for _, kind := range relayKinds {
		t.Run(kind, func(t *testing.T) {
			l := newTrunkLab(t, kind)
			t.Run("termination hold resume, carrier hangs up", func(t *testing.T) { t.Parallel(); l.terminationHold(t) })
			t.Run("origination hold resume, customer hangs up", func(t *testing.T) { t.Parallel(); l.originationHold(t) })
			t.Run("termination CANCEL", func(t *testing.T) { t.Parallel(); l.terminationCancel(t) })
			t.Run("origination CANCEL", func(t *testing.T) { t.Parallel(); l.originationCancel(t) })
			t.Run("termination media timeout", func(t *testing.T) { t.Parallel(); l.terminationMediaTimeout(t) })
			t.Run("origination media timeout", func(t *testing.T) { t.Parallel(); l.originationMediaTimeout(t) })
		})
	}
}

// terminationHold: the PBX (A-leg) sends hold and resume re-INVITEs
// through the relay to the carrier; the carrier (B-leg) hangs up.
func (l *trunkLab) terminationHold(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort)})
	uas := l.startUAS(t, tri.Callee, "hold-carrier", "uas_carrier_held.xml", tri.CalleeIP, carrierPort, l.port(), "-rtp_echo", "-m", "1")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "hold-pbx", "uac_pbx_hold.xml", tri.CallerIP, l.port(), l.port(), pbxArgs(called, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	checkCDR(t, l.cdrs(t, called, 1)[0], cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: string(hangupCallee) + ": BYE", answered: true, media: true})
}

// originationHold: the customer (B-leg) sends hold and resume re-INVITEs
// through the relay to the carrier (A-leg), then hangs up.
func (l *trunkLab) originationHold(t *testing.T) {
	tri := l.tri
	custPort := l.port()
	did := l.originationTrunk(t, "hold", origURL{l.customerURI(custPort), 10, 10})
	sipAddr := l.startSIP(t, sipOpts{})
	uas := l.startUAS(t, tri.Caller, "hold-customer", "uas_customer_hold.xml", tri.CallerIP, custPort, l.port(), "-rtp_echo", "-m", "1")
	uac := l.startSIPp(t, tri.Callee, "hold-orig-carrier", "uac_carrier_held.xml", tri.CalleeIP, l.port(), l.port(), carrierArgs(did, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	checkCDR(t, l.cdrs(t, did, 1)[0], cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: string(hangupCallee) + ": BYE", answered: true, media: true})
}

// terminationCancel: the carrier rings, the PBX cancels; the CANCEL
// reaches the carrier.
func (l *trunkLab) terminationCancel(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort)})
	uas := l.startUAS(t, tri.Callee, "cancel-carrier", "uas_cancel.xml", tri.CalleeIP, carrierPort, 0, "-m", "1")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "cancel-pbx", "uac_cancel.xml", tri.CallerIP, l.port(), l.port(), pbxArgs(called, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	checkCDR(t, l.cdrs(t, called, 1)[0], cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "canceled", code: 487,
		hangup: string(hangupCaller)})
}

// originationCancel: the customer rings, the carrier cancels; the CANCEL
// reaches the customer.
func (l *trunkLab) originationCancel(t *testing.T) {
	tri := l.tri
	custPort := l.port()
	did := l.originationTrunk(t, "cancel", origURL{l.customerURI(custPort), 10, 10})
	sipAddr := l.startSIP(t, sipOpts{})
	uas := l.startUAS(t, tri.Caller, "cancel-customer", "uas_cancel.xml", tri.CallerIP, custPort, 0, "-m", "1")
	uac := l.startSIPp(t, tri.Callee, "cancel-orig-carrier", "uac_carrier_cancel.xml", tri.CalleeIP, l.port(), l.port(), carrierArgs(did, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	checkCDR(t, l.cdrs(t, did, 1)[0], cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "canceled", code: 487,
		hangup: string(hangupCaller)})
}

// terminationMediaTimeout: the PBX plays 7 s of G.711 (echoed by the
// carrier) and then nothing; `xtrunk sip --media-timeout 3s` hangs up both
// legs (each SIPp's scenario waits for its BYE).
func (l *trunkLab) terminationMediaTimeout(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort), mediaTimeout: labMediaTimeout})
	uas := l.startUAS(t, tri.Callee, "timeout-carrier", "uas_answer.xml", tri.CalleeIP, carrierPort, l.port(), "-rtp_echo", "-m", "1")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "timeout-pbx", "uac_pbx_timeout.xml", tri.CallerIP, l.port(), l.port(), pbxArgs(called, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	l.checkMediaTimeoutCDR(t, l.cdrs(t, called, 1)[0], cdrWant{dir: store.DirectionTerminating, from: labDID, to: called})
}

// originationMediaTimeout is terminationMediaTimeout the other way: the
// carrier plays, the customer echoes.
func (l *trunkLab) originationMediaTimeout(t *testing.T) {
	tri := l.tri
	custPort := l.port()
	did := l.originationTrunk(t, "timeout", origURL{l.customerURI(custPort), 10, 10})
	sipAddr := l.startSIP(t, sipOpts{mediaTimeout: labMediaTimeout})
	uas := l.startUAS(t, tri.Caller, "timeout-customer", "uas_answer.xml", tri.CallerIP, custPort, l.port(), "-rtp_echo", "-m", "1")
	uac := l.startSIPp(t, tri.Callee, "timeout-orig-carrier", "uac_carrier_timeout.xml", tri.CalleeIP, l.port(), l.port(), carrierArgs(did, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	l.checkMediaTimeoutCDR(t, l.cdrs(t, did, 1)[0], cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did})
}

// checkMediaTimeoutCDR: answered, ended by the system for lack of media,
// and not before the media had been silent for the timeout: the pcap's
// last packet leaves 7 s after its first, which leaves after the answer.
func (l *trunkLab) checkMediaTimeoutCDR(t *testing.T, c store.Call, w cdrWant) {
	t.Helper()
	w.status, w.code, w.hangup, w.answered, w.media = "completed", 200, string(hangupSystem)+": Media Timeout", true, true
	checkCDR(t, c, w)
	if up := c.End.Sub(c.Answer); up < 7*time.Second+labMediaTimeout {
		t.Errorf("the call was up %v: ended before its media (7 s of pcap) had been silent for %v", up, labMediaTimeout)
	}
}
