package signalling

import (
	"strconv"
	"testing"

	"github.com/xtrunk/xtrunk/control/store"
)

// A carrier gateway that never answers the edge's BYE: the PBX hangs up
// after 2 s of talk, the edge answers its BYE and BYEs the carrier,
// which says nothing. The CDR must still come (after byeTimeout at most)
// and its end and duration must be the PBX's hang-up, not the moment the
// edge gave up on the carrier's answer: billing counts talk time, and a
// dead gateway must not add byeTimeout to every call through it.
func TestCarrierSilentOnByeLab(t *testing.T) {
	l := newTrunkLab(t, relayKinds[0])
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort)})
	_ = l.startUAS(t, tri.Callee, "mute-carrier", "uas_carrier_bye_mute.xml", tri.CalleeIP, carrierPort, l.port(), "-rtp_echo", "-m", "1")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "pbx", "uac_auth.xml", tri.CallerIP, l.port(), l.port(), pbxArgs(called, sipAddr.String())...)
	uac.wait(t) // the PBX's BYE was answered (200) though the carrier never answers the edge's
	c := l.cdrs(t, called, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true})
	// uac_auth.xml talks 2 s; without the fix the call lasted until the
	// edge stopped waiting for the carrier's 200 (2 s + byeTimeout).
	if talk := c.End.Sub(c.Answer); talk >= byeTimeout || c.Duration >= int(byeTimeout.Seconds()) {
		t.Errorf("CDR %s: talk time %v (duration %d s) includes the wait for the carrier's answer to BYE (byeTimeout %v); the PBX talked 2 s",
			c.Sid, talk, c.Duration, byeTimeout)
	}
}
