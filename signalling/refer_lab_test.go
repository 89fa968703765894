package signalling

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/control/store"
)

// Issue 12, REFER (REQUIREMENTS §4): the customer's PBX, answering an
// origination call from a SIPp carrier that plays G.711, transfers the
// caller. Per trunk TransferMode: disable-all → 403; sip-only → 403 for
// a tel: target or a number at a carrier's address, 202 for a SIP URI; enable-all → a number goes out
// through the carrier gateway. The PBX's scenario checks the NOTIFYs
// (sipfrag 100 Trying, then the final status) and the BYE that ends its
// leg; the relay's counts show media between transferee and target on
// the transfer's own session; a busy target leaves the call up; the
// CDRs of both legs are linked.
func TestReferLab(t *testing.T) {
	for _, kind := range relayKinds {
		t.Run(kind, func(t *testing.T) {
			l := newTrunkLab(t, kind)
			t.Run("disable-all refuses", func(t *testing.T) {
				t.Parallel()
				l.referRefused(t, "disable-all", "<sip:"+l.number()+"@"+testDomain+">")
			})
			t.Run("sip-only refuses tel", func(t *testing.T) {
				t.Parallel()
				l.referRefused(t, "sip-only", "<tel:"+l.number()+">")
			})
			t.Run("sip-only refuses a SIP URI at a carrier", func(t *testing.T) {
				t.Parallel()
				l.referRefused(t, "sip-only", "<sip:"+l.number()+"@"+netip.AddrPortFrom(l.tri.CalleeIP, 5060).String()+">")
			})
			t.Run("sip-only to a SIP URI", func(t *testing.T) { t.Parallel(); l.referToSIP(t) })
			t.Run("enable-all to a number", func(t *testing.T) { t.Parallel(); l.referToNumber(t) })
			t.Run("busy target keeps the call", func(t *testing.T) { t.Parallel(); l.referBusy(t) })
			t.Run("transferor hangs up at once", func(t *testing.T) { t.Parallel(); l.referHangup(t) })
			t.Run("termination REFER not implemented", func(t *testing.T) { t.Parallel(); l.referTermination(t) })
		})
	}
}

// referTrunk makes a trunk with TransferMode mode and TransferCallerId
// callerID (the API's default when empty), an origination URI toward
// the customer UAS on custPort and a fresh DID, which it returns.
func (l *trunkLab) referTrunk(t *testing.T, name, mode, callerID string, custPort int) string {
	t.Helper()
	form := url.Values{"FriendlyName": {name}, "DomainName": {name + ".pstn." + testDomain}, "TransferMode": {mode}}
	if callerID != "" {
		form.Set("TransferCallerId", callerID)
	}
	tk := l.api.create(t, "/v1/Trunks", form)
	l.api.create(t, "/v1/Trunks/"+tk+"/OriginationUrls", url.Values{"FriendlyName": {name}, "SipUrl": {l.customerURI(custPort)},
		"Priority": {"10"}, "Weight": {"10"}, "Enabled": {"true"}})
	did := l.number()
	pn := l.api.create(t, "/2010-04-01/Accounts/"+labAccountSid+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {did}})
	l.api.create(t, "/v1/Trunks/"+tk+"/PhoneNumbers", url.Values{"PhoneNumberSid": {pn}})
	return did
}

// referRefused: the REFER gets 403, the call stays up and the PBX's BYE
// reaches the carrier.
func (l *trunkLab) referRefused(t *testing.T, mode, referTo string) {
	tri := l.tri
	custPort := l.port()
	name := "refer-" + strings.ReplaceAll(mode, "-", "") + strconv.Itoa(custPort)
	did := l.referTrunk(t, name, mode, "", custPort)
	metrics := netip.AddrPortFrom(tri.RelayCallerIP, uint16(l.port())).String()
	sipAddr := l.startSIP(t, sipOpts{metrics: metrics})
	pbx := l.startUAS(t, tri.Caller, name+"-pbx", "uas_pbx_refer_refused.xml", tri.CallerIP, custPort, l.port(),
		"-rtp_echo", "-m", "1", "-key", "refer_to", referTo)
	carrier := l.startSIPp(t, tri.Callee, name+"-carrier", "uac_carrier_byed.xml", tri.CalleeIP, l.port(), l.port(),
		carrierArgs(did, sipAddr.String())...)
	pbx.wait(t)
	carrier.wait(t)
	checkCDR(t, l.cdrs(t, did, 1)[0], cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: string(hangupCallee) + ": BYE", answered: true, media: true})
	l.checkTransfers(t, metrics, transferRefused)
}

// referToSIP: sip-only, Refer-To a SIP URI (a second PBX in the
// customer's network): 202, NOTIFYs, the carrier re-INVITEd onto the new
// relay session, media between carrier and target, the PBX's leg ended
// by BYE; caller ID from the transferee (the trunk's default).
func (l *trunkLab) referToSIP(t *testing.T) {
	tri := l.tri
	custPort, targetPort := l.port(), l.port()
	did := l.referTrunk(t, "refer-sip", "sip-only", "", custPort)
	metrics := netip.AddrPortFrom(tri.RelayCallerIP, uint16(l.port())).String()
	sipAddr := l.startSIP(t, sipOpts{metrics: metrics})
	target := l.startUAS(t, tri.Caller, "refer-sip-target", "uas_answer.xml", tri.CallerIP, targetPort, l.port(), "-rtp_echo", "-m", "1")
	referTo := "<sip:sipbob@" + netip.AddrPortFrom(tri.CallerIP, uint16(targetPort)).String() + ">"
	pbx := l.startUAS(t, tri.Caller, "refer-sip-pbx", "uas_pbx_refer.xml", tri.CallerIP, custPort, l.port(),
		"-rtp_echo", "-m", "1", "-key", "refer_to", referTo)
	callID := "refer-sip-1@lab"
	w := watchCounts(t, func() (map[string]streamCounts, error) { return l.transferCounts(callID) })
	carrier := l.startSIPp(t, tri.Callee, "refer-sip-carrier", "uac_carrier_transferee.xml", tri.CalleeIP, l.port(), l.port(),
		append([]string{"-cid_str", "refer-sip-%u@lab"}, carrierArgs(did, sipAddr.String())...)...)
	pbx.wait(t)
	carrier.wait(t)
	target.wait(t)
	l.checkMedia(t, "transferee ↔ target", w.counts(), 50)
	orig := l.cdrs(t, did, 1)[0]
	checkCDR(t, orig, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: string(hangupTransfer) + ": Transferred", answered: true, media: true})
	tc := l.cdrs(t, "sipbob", 1)[0]
	checkTransferCDR(t, tc, orig, labCarrierFrom, "completed", string(hangupCaller)+": BYE")
	l.checkTransfers(t, metrics, transferCompleted)
	l.checkCallResource(t, tc)
	if j := l.api.get(t, "/2010-04-01/Accounts/"+labAccountSid+"/Calls/"+tc.Sid+".json"); j["parent_call_sid"] != orig.Sid {
		t.Errorf("Calls resource of the transfer: parent_call_sid %v, want %s", j["parent_call_sid"], orig.Sid)
	}
}

// referToNumber: enable-all, Refer-To tel:+…: out through the carrier
// gateway, caller ID from the transferor (the DID).
func (l *trunkLab) referToNumber(t *testing.T) {
	tri := l.tri
	custPort, gwPort := l.port(), l.port()
	did := l.referTrunk(t, "refer-num", "enable-all", "from-transferor", custPort)
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + netip.AddrPortFrom(tri.CalleeIP, uint16(gwPort)).String()})
	gw := l.startUAS(t, tri.Callee, "refer-num-gw", "uas_answer.xml", tri.CalleeIP, gwPort, l.port(), "-rtp_echo", "-m", "1")
	target := l.number()
	pbx := l.startUAS(t, tri.Caller, "refer-num-pbx", "uas_pbx_refer.xml", tri.CallerIP, custPort, l.port(),
		"-rtp_echo", "-m", "1", "-key", "refer_to", "<tel:"+target+">")
	callID := "refer-num-1@lab"
	w := watchCounts(t, func() (map[string]streamCounts, error) { return l.transferCounts(callID) })
	carrier := l.startSIPp(t, tri.Callee, "refer-num-carrier", "uac_carrier_transferee.xml", tri.CalleeIP, l.port(), l.port(),
		append([]string{"-cid_str", "refer-num-%u@lab"}, carrierArgs(did, sipAddr.String())...)...)
	pbx.wait(t)
	carrier.wait(t)
	gw.wait(t)
	l.checkMedia(t, "transferee ↔ carrier target", w.counts(), 50)
	orig := l.cdrs(t, did, 1)[0]
	checkCDR(t, orig, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: string(hangupTransfer) + ": Transferred", answered: true, media: true})
	checkTransferCDR(t, l.cdrs(t, target, 1)[0], orig, did, "completed", string(hangupCaller)+": BYE")
}

// referBusy: the target answers 486; the PBX hears it in the final
// NOTIFY and the call stays up (its BYE gets a 200 and reaches the
// carrier).
func (l *trunkLab) referBusy(t *testing.T) {
	tri := l.tri
	custPort, targetPort := l.port(), l.port()
	did := l.referTrunk(t, "refer-busy", "enable-all", "", custPort)
	metrics := netip.AddrPortFrom(tri.RelayCallerIP, uint16(l.port())).String()
	sipAddr := l.startSIP(t, sipOpts{metrics: metrics})
	target := l.startUAS(t, tri.Caller, "refer-busy-target", "uas_busy.xml", tri.CallerIP, targetPort, 0, "-m", "1")
	referTo := "<sip:busybob@" + netip.AddrPortFrom(tri.CallerIP, uint16(targetPort)).String() + ">"
	pbx := l.startUAS(t, tri.Caller, "refer-busy-pbx", "uas_pbx_refer_failed.xml", tri.CallerIP, custPort, l.port(),
		"-rtp_echo", "-m", "1", "-key", "refer_to", referTo)
	carrier := l.startSIPp(t, tri.Callee, "refer-busy-carrier", "uac_carrier_byed.xml", tri.CalleeIP, l.port(), l.port(),
		carrierArgs(did, sipAddr.String())...)
	pbx.wait(t)
	carrier.wait(t)
	target.wait(t)
	orig := l.cdrs(t, did, 1)[0]
	checkCDR(t, orig, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: string(hangupCallee) + ": BYE", answered: true, media: true})
	att := l.cdrs(t, "busybob", 1)[0]
	if att.ParentCallSid != orig.Sid || att.Status != "busy" || att.SIPResponseCode != 486 {
		t.Errorf("failed transfer's CDR: parent %q (want %q), status %s %d (want busy 486)", att.ParentCallSid, orig.Sid, att.Status, att.SIPResponseCode)
	}
	l.checkTransfers(t, metrics, transferFailed)
}

// referHangup: the PBX hangs up right after the 100 Trying NOTIFY, while
// the target still rings; the transfer completes without it and the
// caller reaches the target.
func (l *trunkLab) referHangup(t *testing.T) {
	tri := l.tri
	custPort, targetPort := l.port(), l.port()
	did := l.referTrunk(t, "refer-hup", "enable-all", "", custPort)
	sipAddr := l.startSIP(t, sipOpts{})
	target := l.startUAS(t, tri.Caller, "refer-hup-target", "uas_answer_late.xml", tri.CallerIP, targetPort, l.port(), "-rtp_echo", "-m", "1")
	referTo := "<sip:hupbob@" + netip.AddrPortFrom(tri.CallerIP, uint16(targetPort)).String() + ">"
	pbx := l.startUAS(t, tri.Caller, "refer-hup-pbx", "uas_pbx_refer_hangup.xml", tri.CallerIP, custPort, l.port(),
		"-rtp_echo", "-m", "1", "-key", "refer_to", referTo)
	callID := "refer-hup-1@lab"
	w := watchCounts(t, func() (map[string]streamCounts, error) { return l.transferCounts(callID) })
	carrier := l.startSIPp(t, tri.Callee, "refer-hup-carrier", "uac_carrier_transferee.xml", tri.CalleeIP, l.port(), l.port(),
		append([]string{"-cid_str", "refer-hup-%u@lab"}, carrierArgs(did, sipAddr.String())...)...)
	pbx.wait(t)
	carrier.wait(t)
	target.wait(t)
	l.checkMedia(t, "transferee ↔ target after the transferor left", w.counts(), 50)
	orig := l.cdrs(t, did, 1)[0]
	checkCDR(t, orig, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: string(hangupCallee) + ": BYE", answered: true, media: true})
	checkTransferCDR(t, l.cdrs(t, "hupbob", 1)[0], orig, labCarrierFrom, "completed", string(hangupCaller)+": BYE")
}

// referTermination: the PBX's REFER on its own call out gets 501 and the
// call stays up (its BYE reaches the carrier).
func (l *trunkLab) referTermination(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + netip.AddrPortFrom(tri.CalleeIP, uint16(carrierPort)).String()})
	uas := l.startUAS(t, tri.Callee, "refer-term-carrier", "uas_answer.xml", tri.CalleeIP, carrierPort, l.port(), "-rtp_echo", "-m", "1")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "refer-term-pbx", "uac_pbx_refer.xml", tri.CallerIP, l.port(), l.port(),
		append([]string{"-key", "refer_to", "<tel:" + l.number() + ">"}, pbxArgs(called, sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	checkCDR(t, l.cdrs(t, called, 1)[0], cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})
}

// checkTransfers wants the one transfer of the `xtrunk sip` whose
// metrics are at addr counted under result, and no other.
func (l *trunkLab) checkTransfers(t *testing.T, addr, result string) {
	t.Helper()
	page := scrapeIn(t, l.tri.Relay, addr)
	var got []string
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "xtrunk_sip_transfers_total{") {
			got = append(got, line)
		}
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], `xtrunk_sip_transfers_total{result="`+result+`",trunk="TK`) || !strings.HasSuffix(got[0], "} 1") {
		t.Errorf("xtrunk_sip_transfers_total: %q, want one transfer with result %s", got, result)
	}
}

// checkTransferCDR checks the CDR of a transfer's call: linked to the
// original's, caller ID from, answered with media both ways.
func checkTransferCDR(t *testing.T, c, orig store.Call, from, status, hangup string) {
	t.Helper()
	t.Logf("transfer CDR %s: parent=%s %s→%s status=%s hangup=%q forwarded_from=%s quality=%+v",
		c.Sid, c.ParentCallSid, c.From, c.To, c.Status, c.HangupCause, c.ForwardedFrom, c.Quality)
	if c.ParentCallSid != orig.Sid || c.From != from || c.Status != status || c.ForwardedFrom != orig.To ||
		!strings.HasPrefix(c.HangupCause, hangup) || c.TrunkSid != orig.TrunkSid || c.Answer.IsZero() {
		t.Errorf("transfer CDR %+v: want parent %s, from %s, status %s, forwarded from %s, hangup %q…, trunk %s, answered",
			c, orig.Sid, from, status, orig.To, hangup, orig.TrunkSid)
	}
	for _, q := range c.Quality {
		if q.PacketsReceived < 30 || q.PacketsSent < 30 {
			t.Errorf("transfer CDR %s: %s leg quality %+v: media did not flow both ways", c.Sid, q.Leg, q)
		}
	}
	if len(c.Quality) != 2 {
		t.Errorf("transfer CDR %s: quality %+v, want two legs", c.Sid, c.Quality)
	}
}

// transferCounts is the relay's counts for the transfer's session of the
// call whose carrier Call-ID is callID: `xtrunk sip` logs its ID
// ("transfer_call") when it places the transfer's call.
func (l *trunkLab) transferCounts(callID string) (map[string]streamCounts, error) {
	l.sipsMu.Lock()
	sips := slices.Clone(l.sips)
	l.sipsMu.Unlock()
	for _, p := range sips {
		for _, line := range strings.Split(p.Output(), "\n") {
			if !strings.Contains(line, callID) || !strings.Contains(line, `"transfer_call":`) {
				continue
			}
			var e struct {
				CallID string `json:"call_id"`
				Call   string `json:"transfer_call"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.CallID == callID && e.Call != "" {
				return l.relaySessionCounts(e.Call)
			}
		}
	}
	return nil, fmt.Errorf("no transfer logged for call %q yet", callID)
}
