package signalling

import (
	"net/netip"
	"net/url"
	"strconv"
	"testing"

	"github.com/xtrunk/xtrunk/control/store"
)

// Issue 12, 302 redirect (REQUIREMENTS §3.7), with SIPp as the carrier
// and as the customer's PBXs, as separate processes in the lab's
// namespaces: a 302 is followed once (first Contact, its edge=/tnx=
// dropped) and media flows with the redirected PBX; a 302 toward the
// edge's own domain or toward a carrier is refused and the call fails
// over to the next origination URI, as is an origination URI that is a
// carrier's address; a second 302 from the redirected PBX fails that
// target and the call fails over too. The CDR (and the API's Call)
// records the redirect; xtrunk_sip_redirects_total counts each outcome.
func TestOriginationRedirectLab(t *testing.T) {
	l := newTrunkLab(t, relayXtrunk)
	metrics := netip.AddrPortFrom(l.tri.RelayCallerIP, uint16(l.port())).String()
	sipAddr := l.startSIP(t, sipOpts{metrics: metrics})
	scrape := func() string { return httpGetIn(t, l.tri.Relay, "http://"+metrics+"/metrics") }
	t.Run("302 followed once, media with the redirected PBX", func(t *testing.T) {
		trunk := l.redirectFollowed(t, sipAddr)
		waitSeries(t, scrape, `xtrunk_sip_redirects_total{result="followed",trunk="`+trunk+`"} 1`)
	})
	t.Run("302 toward the edge's own domain refused, next URI", func(t *testing.T) {
		trunk := l.redirectRefused(t, sipAddr)
		waitSeries(t, scrape, `xtrunk_sip_redirects_total{result="refused",trunk="`+trunk+`"} 1`)
	})
	t.Run("302 toward a carrier gateway refused, next URI", func(t *testing.T) {
		trunk := l.tollBypass(t, sipAddr, true)
		waitSeries(t, scrape, `xtrunk_sip_redirects_total{result="refused",trunk="`+trunk+`"} 1`)
		waitSeries(t, scrape, `xtrunk_sip_carrier_targets_refused_total{trunk="`+trunk+`",via="redirect"} 1`)
	})
	t.Run("origination URI at a carrier gateway not dialled, next URI", func(t *testing.T) {
		trunk := l.tollBypass(t, sipAddr, false)
		waitSeries(t, scrape, `xtrunk_sip_carrier_targets_refused_total{trunk="`+trunk+`",via="origination_uri"} 1`)
	})
	t.Run("PBX's 200 Contact at a carrier gateway: no ACK or BYE goes there", func(t *testing.T) {
		trunk := l.contactAtCarrier(t, sipAddr)
		waitSeries(t, scrape, `xtrunk_sip_carrier_targets_refused_total{trunk="`+trunk+`",via="origination_uri"} 1`)
	})
	t.Run("second 302 fails the target, next URI", func(t *testing.T) {
		trunk := l.redirectTwice(t, sipAddr)
		waitSeries(t, scrape, `xtrunk_sip_redirects_total{result="followed",trunk="`+trunk+`"} 1`)
		waitSeries(t, scrape, `xtrunk_sip_redirects_total{result="loop",trunk="`+trunk+`"} 1`)
	})
}

// origTrunk makes a trunk with form's extra fields (CnamLookupEnabled…),
// the given origination URLs and a fresh DID, through the API; it returns
// the trunk's sid and the DID.
func (l *trunkLab) origTrunk(t *testing.T, name string, form url.Values, urls ...origURL) (string, string) {
	t.Helper()
	f := url.Values{"FriendlyName": {name}, "DomainName": {name + ".pstn." + testDomain}}
	for k, v := range form {
		f[k] = v
	}
	tk := l.api.create(t, "/v1/Trunks", f)
	for _, u := range urls {
		l.api.create(t, "/v1/Trunks/"+tk+"/OriginationUrls", url.Values{"FriendlyName": {name}, "SipUrl": {u.sipURL},
			"Priority": {strconv.Itoa(u.priority)}, "Weight": {strconv.Itoa(u.weight)}, "Enabled": {"true"}})
	}
	did := l.number()
	pn := l.api.create(t, "/2010-04-01/Accounts/"+labAccountSid+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {did}})
	l.api.create(t, "/v1/Trunks/"+tk+"/PhoneNumbers", url.Values{"PhoneNumberSid": {pn}})
	return tk, did
}

// redirectedUser is the Request-URI user the lab's 302s send calls to
// (uas_redirected.xml checks it).
const redirectedUser = "+14155550999"

// redirectFollowed: PBX A answers 302 toward PBX B (with edge= and tnx=
// parameters, which must not reach B); B answers, media flows both ways
// through the relay, and the CDR says where the call went.
func (l *trunkLab) redirectFollowed(t *testing.T, sipAddr netip.AddrPort) string {
	tri := l.tri
	aPort, bPort := l.port(), l.port()
	trunk, did := l.origTrunk(t, "redir-ok", nil, origURL{l.customerURI(aPort), 1, 10})
	bURI := "sip:" + redirectedUser + "@" + netip.AddrPortFrom(tri.CallerIP, uint16(bPort)).String()
	a := l.startUAS(t, tri.Caller, "redir-a", "uas_redirect.xml", tri.CallerIP, aPort, 0,
		"-key", "contact", bURI+";edge=ashburn;tnx=RT0123", "-m", "1")
	b := l.startUAS(t, tri.Caller, "redir-b", "uas_redirected.xml", tri.CallerIP, bPort, l.port(), "-rtp_echo", "-m", "1")
	uac := l.startSIPp(t, tri.Callee, "redir-carrier", "uac_carrier.xml", tri.CalleeIP, l.port(), l.port(),
		append([]string{"-d", "2000"}, carrierArgs(did, sipAddr.String())...)...)
	uac.wait(t)
	a.wait(t)
	b.wait(t)
	c := l.cdrs(t, did, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})
	if want := bURI + ";transport=udp"; c.RedirectedTo != want {
		t.Errorf("CDR redirected_to %q, want %q", c.RedirectedTo, want)
	}
	j := l.api.get(t, "/2010-04-01/Accounts/"+labAccountSid+"/Calls/"+c.Sid+".json")
	if j["redirected_to"] != c.RedirectedTo {
		t.Errorf("Calls resource redirected_to %v, want %q", j["redirected_to"], c.RedirectedTo)
	}
	return trunk
}

// redirectRefused: PBX A (priority 1) redirects to a host of xtrunk's own
// domain; the edge refuses it and the call goes to priority 2, which
// answers. The refused Contact must never be dialled (it is not even
// resolvable in the lab), and the CDR records no redirect.
func (l *trunkLab) redirectRefused(t *testing.T, sipAddr netip.AddrPort) string {
	tri := l.tri
	aPort, nextPort := l.port(), l.port()
	trunk, did := l.origTrunk(t, "redir-self", nil, origURL{l.customerURI(aPort), 1, 10}, origURL{l.customerURI(nextPort), 2, 10})
	a := l.startUAS(t, tri.Caller, "self-a", "uas_redirect.xml", tri.CallerIP, aPort, 0,
		"-key", "contact", "sip:"+redirectedUser+"@redir-self.pstn."+testDomain, "-m", "1")
	next := l.startUAS(t, tri.Caller, "self-next", "uas_answer.xml", tri.CallerIP, nextPort, l.port(), "-m", "1")
	l.answeredByNext(t, sipAddr, "self", did, a, next)
	return trunk
}

// answeredByNext places one carrier call to did, waits for the PBXs
// (pbx, when not nil, refused or redirected it; next answered), and checks
// the CDR: answered by the carrier's BYE, and not redirected.
func (l *trunkLab) answeredByNext(t *testing.T, sipAddr netip.AddrPort, name, did string, pbx, next *sippProc) {
	t.Helper()
	tri := l.tri
	uac := l.startSIPp(t, tri.Callee, name+"-carrier", "uac_carrier_quick.xml", tri.CalleeIP, l.port(), l.port(),
		append([]string{"-d", "1000"}, carrierArgs(did, sipAddr.String())...)...)
	uac.wait(t)
	if pbx != nil {
		pbx.wait(t)
	}
	next.wait(t)
	c := l.cdrs(t, did, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true})
	if c.RedirectedTo != "" {
		t.Errorf("CDR redirected_to %q for a refused redirect", c.RedirectedTo)
	}
}

// tollBypass: a tenant points its call at the carrier side — PBX A
// (priority 1) redirects to a number at an address in --carrier-source
// (viaRedirect), or the trunk's priority-1 origination URI is that
// address itself. The edge, which the carrier trusts by source address,
// must not dial it (the tenant would reach the PSTN past termination's
// checks): the carrier-side listener gets no INVITE and the call goes to
// priority 2, which answers.
func (l *trunkLab) tollBypass(t *testing.T, sipAddr netip.AddrPort, viaRedirect bool) string {
	tri := l.tri
	aPort, gwPort, nextPort := l.port(), l.port(), l.port()
	gw := listenSilent(t, tri.Callee, netip.AddrPortFrom(tri.CalleeIP, uint16(gwPort)))
	gwURI := "sip:+19005550100@" + netip.AddrPortFrom(tri.CalleeIP, uint16(gwPort)).String()
	first, name := gwURI, "bypass-uri"
	if viaRedirect {
		first, name = l.customerURI(aPort), "bypass-302"
	}
	trunk, did := l.origTrunk(t, name, nil, origURL{first, 1, 10}, origURL{l.customerURI(nextPort), 2, 10})
	var a *sippProc
	if viaRedirect {
		a = l.startUAS(t, tri.Caller, name+"-a", "uas_redirect.xml", tri.CallerIP, aPort, 0, "-key", "contact", gwURI, "-m", "1")
	}
	next := l.startUAS(t, tri.Caller, name+"-next", "uas_answer.xml", tri.CallerIP, nextPort, l.port(), "-m", "1")
	l.answeredByNext(t, sipAddr, name, did, a, next)
	if n, _ := gw.invites(); n != 0 {
		t.Errorf("the carrier-side address %s got %d INVITEs from the edge", gwURI, n)
	}
	return trunk
}

// contactAtCarrier: the PBX answers with a Contact at an address in
// --carrier-source: the edge's requests inside the call (its ACK, and the
// BYE when the carrier hangs up) would go there from the edge's trusted
// address. The dialog inherits the INVITE's dial check: the ACK is not
// sent (and counted), so the dialog is never confirmed and sipgo sends no
// BYE on it either; nothing reaches that address, and the call still ends
// with its CDR.
func (l *trunkLab) contactAtCarrier(t *testing.T, sipAddr netip.AddrPort) string {
	tri := l.tri
	pbxPort, gwPort := l.port(), l.port()
	gw := listenSilent(t, tri.Callee, netip.AddrPortFrom(tri.CalleeIP, uint16(gwPort)))
	gwURI := "sip:+19005550100@" + netip.AddrPortFrom(tri.CalleeIP, uint16(gwPort)).String()
	trunk, did := l.origTrunk(t, "contact-gw", nil, origURL{l.customerURI(pbxPort), 1, 10})
	pbx := l.startUAS(t, tri.Caller, "contact-gw-pbx", "uas_answer_contact.xml", tri.CallerIP, pbxPort, l.port(), "-key", "contact", gwURI, "-m", "1")
	l.answeredByNext(t, sipAddr, "contact-gw", did, nil, pbx)
	if n := gw.datagrams(); n != 0 {
		t.Errorf("the carrier-side address %s got %d datagrams from the edge", gwURI, n)
	}
	return trunk
}

// redirectTwice: PBX A (priority 1) redirects to B, B redirects again to
// D; the second 302 fails the target (D never sees an INVITE) and the
// call goes to priority 2, which answers.
func (l *trunkLab) redirectTwice(t *testing.T, sipAddr netip.AddrPort) string {
	tri := l.tri
	aPort, bPort, dPort, nextPort := l.port(), l.port(), l.port(), l.port()
	d := listenSilent(t, tri.Caller, netip.AddrPortFrom(tri.CallerIP, uint16(dPort)))
	trunk, did := l.origTrunk(t, "redir-twice", nil, origURL{l.customerURI(aPort), 1, 10}, origURL{l.customerURI(nextPort), 2, 10})
	bURI := "sip:" + netip.AddrPortFrom(tri.CallerIP, uint16(bPort)).String()
	a := l.startUAS(t, tri.Caller, "twice-a", "uas_redirect.xml", tri.CallerIP, aPort, 0, "-key", "contact", bURI, "-m", "1")
	b := l.startUAS(t, tri.Caller, "twice-b", "uas_redirect.xml", tri.CallerIP, bPort, 0,
		"-key", "contact", "sip:"+netip.AddrPortFrom(tri.CallerIP, uint16(dPort)).String(), "-m", "1")
	next := l.startUAS(t, tri.Caller, "twice-next", "uas_answer.xml", tri.CallerIP, nextPort, l.port(), "-m", "1")
	uac := l.startSIPp(t, tri.Callee, "twice-carrier", "uac_carrier_quick.xml", tri.CalleeIP, l.port(), l.port(),
		append([]string{"-d", "1000"}, carrierArgs(did, sipAddr.String())...)...)
	uac.wait(t)
	a.wait(t)
	b.wait(t)
	next.wait(t)
	c := l.cdrs(t, did, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true})
	if want := bURI + ";transport=udp"; c.RedirectedTo != want {
		t.Errorf("CDR redirected_to %q, want %q (the one redirect followed)", c.RedirectedTo, want)
	}
	if n, _ := d.invites(); n != 0 {
		t.Errorf("the second 302's Contact got %d INVITEs: a redirect is followed once per call", n)
	}
	return trunk
}
