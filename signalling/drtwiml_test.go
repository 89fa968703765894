package signalling

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/store"
)

// TestTwilioSignatureKnownAnswers checks twilioSignature against the
// examples of Twilio's signature-validation documentation (its
// api-snippets: auth token 12345, the URL with its query string, the POST
// parameters of a call).
func TestTwilioSignatureKnownAnswers(t *testing.T) {
	const u = "https://mycompany.com/myapp.php?foo=1&bar=2"
	for caller, want := range map[string]string{
		"+14158675309": "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
		"+14158675310": "GvWf1cFY/Q7PnoempGyD5oXAezc=",
	} {
		params := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {caller}, "Digits": {"1234"},
			"From": {caller}, "To": {"+18005551212"}}
		if got := twilioSignature("12345", u, params); got != want {
			t.Errorf("caller %s: signature %s, want %s", caller, got, want)
		}
	}
	if twilioSignature("12345", u, nil) == twilioSignature("12346", u, nil) {
		t.Error("the token does not change the signature")
	}
}

func TestResolveTwiMLURL(t *testing.T) {
	base, _ := url.Parse("https://dr.example.com/a/b?x=1")
	for ref, want := range map[string]string{
		"/next":                "https://dr.example.com/next",
		"c.wav":                "https://dr.example.com/a/c.wav",
		" http://o.example/x ": "http://o.example/x",
	} {
		if got := resolve(base, ref); got != want {
			t.Errorf("resolve(%q) = %q, want %q", ref, got, want)
		}
	}
}

// drTestRun is a DR run of an origination call from caller on trunk,
// against p's store, logging into logs.
func drTestRun(p provisioned, trunk store.Trunk, caller string, trial bool, logs *syncBuffer) *drRun {
	return &drRun{trial: trial, c: &call{s: &Server{st: p.st}, ctx: context.Background(), log: zerolog.New(logs),
		p: &plan{dir: store.DirectionOriginating, trunk: trunk, from: caller}}}
}

// TestDialCallerID: a <Dial callerId> goes into the B-leg's From only as
// a number the tenant may present (REQUIREMENTS §2.4): the caller's own,
// a DID of the account, one of its verified caller IDs. Anything else is
// ignored and logged, and the call keeps its own caller ID: another
// account's DID or anyone's number (a tenant spoofing the PSTN), a header
// smuggled in with character references for CR LF, a URI, a name.
func TestDialCallerID(t *testing.T) {
	p := provision(t)
	ctx := context.Background()
	other, err := p.st.CreateSubaccount(ctx, p.account, "other tenant", store.TypeFull)
	if err != nil {
		t.Fatal(err)
	}
	const otherDID, caller = "+14155550177", "+12125550100"
	if _, err := p.st.CreatePhoneNumber(ctx, store.NewPhoneNumber(other.Sid, otherDID)); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	r := drTestRun(p, p.acme, caller, false, logs)
	for _, tc := range []struct{ attr, want string }{
		{`callerId="` + testDID + `"`, testDID},
		{`callerId=" ` + testVerified + ` "`, testVerified},
		{`callerId="` + caller + `"`, caller},
		{``, ""},
		{`callerId="+15551230000"`, ""},
		{`callerId="` + otherDID + `"`, ""},
		{`callerId="+1555&#13;&#10;X-Injected: yes"`, ""},
		{`callerId="sip:alice@example.com"`, ""},
		{`callerId="a&gt;b"`, ""},
		{`callerId="15551230000"`, ""},
	} {
		verbs, err := parseTwiML([]byte(`<Response><Dial ` + tc.attr + `><Number>+15557654321</Number></Dial></Response>`))
		if err != nil {
			t.Fatalf("%s: %v", tc.attr, err)
		}
		if got := r.callerID(verbs[0]); got != tc.want {
			t.Errorf("%s: caller ID %q, want %q", tc.attr, got, tc.want)
		}
	}
	out := logs.take()
	if n := strings.Count(out, "is not E.164, ignored"); n != 4 {
		t.Errorf("%d not-E.164 warnings logged, want 4", n)
	}
	if n := strings.Count(out, "is not the caller's number, a DID or a verified caller ID of the account, ignored"); n != 2 {
		t.Errorf("%d not-the-account's warnings logged, want 2:\n%s", n, out)
	}
}

// TestDialNumberTrial: a trial account's <Dial><Number> rings only its
// verified caller IDs, as its termination calls may (REQUIREMENTS §1); a
// full account's any E.164 number.
func TestDialNumberTrial(t *testing.T) {
	p := provision(t)
	logs := &syncBuffer{}
	trial, full := drTestRun(p, p.acme, "+12125550100", true, logs), drTestRun(p, p.acme, "+12125550100", false, logs)
	for _, tc := range []struct {
		r      *drRun
		number string
		want   bool
	}{
		{trial, testVerified, true},
		{trial, "+15557654321", false},
		{trial, testDID, false},
		{full, "+15557654321", true},
		{full, testVerified, true},
	} {
		if got := tc.r.numberAllowed(tc.number); got != tc.want {
			t.Errorf("trial %v, %s: allowed %v, want %v", tc.r.trial, tc.number, got, tc.want)
		}
	}
	if n := strings.Count(logs.take(), "trial account, <Number> is not a verified caller ID, skipped"); n != 2 {
		t.Errorf("%d warnings logged, want 2", n)
	}
}

// TestDRSipDest: a <Sip> may name any SIP URI but the edge itself and a
// carrier gateway: the tenant's document would otherwise reach the PSTN
// from the edge's trusted address past termination's checks.
func TestDRSipDest(t *testing.T) {
	s := redirectServer(t, Config{Domain: "example.net", Carriers: []string{"sip:gw.carrier.test"}, CarrierSources: []string{"198.18.2.0/24"}})
	s.carrierTargets = newCarrierTargetMetric(prometheus.NewRegistry())
	r := &drRun{c: &call{s: s, ctx: context.Background(), log: zerolog.Nop(), p: &plan{trunk: store.Trunk{Sid: "TKdr"}}}}
	for uri, ok := range map[string]bool{
		"sip:pbx-b@198.18.1.3:5070":              true,
		" sip:+14155550100@pbx.example ":         true,
		"sip:+19005550100@gw.carrier.test":       false,
		"sip:+19005550100@198.18.2.7":            false,
		"sip:+14155550100@acme.pstn.example.net": false,
		"sip:127.0.0.1":                          false,
		"sip:":                                   false,
		"not a uri":                              false,
	} {
		_, err := r.sipDest(uri)
		if (err == nil) != ok {
			t.Errorf("<Sip>%s</Sip>: %v, want allowed %v", uri, err, ok)
		}
	}
	if n := testutil.ToFloat64(s.carrierTargets.WithLabelValues("TKdr", viaDRSip)); n != 2 {
		t.Errorf("xtrunk_sip_carrier_targets_refused_total{via=dr_sip} = %v, want 2 (the two carrier targets)", n)
	}
}

// TestDRAddressRefused: the DR client connects to no address a tenant's
// URL must not reach — loopback (sip's and the relay's /admin/ answer
// local clients without credentials), link-local (cloud metadata), the
// edge's own — whether the URL names it or a name resolves to it; a real
// server there gets no request. Private and public addresses are fine.
func TestDRAddressRefused(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "<Response><Reject/></Response>")
	}))
	defer srv.Close()
	s := redirectServer(t, Config{Domain: "example.net"})
	s.dr = newDRState(prometheus.NewRegistry(), s.drAddrAllowed)
	r := &drRun{c: &call{s: s, ctx: context.Background(), log: zerolog.Nop(), p: &plan{trunk: store.Trunk{Sid: "TKdr"}}}}
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, u := range []string{srv.URL + "/admin/calls", "http://localhost:" + strconv.Itoa(port) + "/dr"} {
		_, _, err := r.fetch(u, http.MethodPost, nil)
		if !errors.Is(err, ErrDRAddress) {
			t.Errorf("%s: %v, want ErrDRAddress", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback server got %d requests", n)
	}
	if n := testutil.ToFloat64(s.dr.reqs.WithLabelValues("TKdr", drError)); n != 2 {
		t.Errorf("xtrunk_sip_dr_requests_total{result=error} = %v, want 2", n)
	}
	for addr, ok := range map[string]bool{
		"127.0.0.1": false, "127.9.9.9": false, "::1": false, "0.0.0.0": false, "::": false,
		"169.254.169.254": false, "fd00:ec2::254": false, "100.100.100.200": false, "fe80::1": false, "224.0.0.251": false, "ff02::1": false, "255.255.255.255": false,
		"198.18.250.9": true, "203.0.113.7": true, "2001:db8::7": true,
	} {
		if err := s.drAddrAllowed(netip.MustParseAddr(addr)); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", addr, err, ok)
		}
	}
}
