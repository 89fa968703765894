package signalling

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/relay/wav"
)

// Issue 12, disaster recovery (REQUIREMENTS §3.8): origination calls no
// URI takes go to the trunk's DisasterRecoveryUrl — a real HTTP server in
// the relay namespace that checks X-Twilio-Signature with Twilio's
// documented algorithm (written here from the documentation, not shared
// with the edge's code) — and the TwiML it answers is run against SIPp
// carriers and PBXs in the lab's namespaces.

// drRequest is one request the DR server got.
type drRequest struct {
	method, path string
	params       url.Values
	fullURL      string
	signature    string
}

// drServer serves TwiML by path (docs) and WAV files (media), and
// records every request.
type drServer struct {
	addr string
	mu   sync.Mutex
	docs map[string]string
	reqs []drRequest
}

func startDRServer(t *testing.T, l *trunkLab) *drServer {
	t.Helper()
	ds := &drServer{docs: map[string]string{}}
	var ln net.Listener
	// on the customer's side: the edge connects to none of its own
	// addresses for a tenant's URL (drAddrAllowed)
	if err := l.tri.Caller.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(l.tri.CallerIP, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ds.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(ds.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ds
}

func (ds *drServer) url(path string) string { return "http://" + ds.addr + path }

func (ds *drServer) set(path, body string) {
	ds.mu.Lock()
	ds.docs[path] = body
	ds.mu.Unlock()
}

func (ds *drServer) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	req := drRequest{method: r.Method, path: r.URL.Path, fullURL: "http://" + r.Host + r.URL.RequestURI(),
		signature: r.Header.Get("X-Twilio-Signature")}
	if r.Method == http.MethodPost {
		req.params = r.PostForm
	} else {
		req.params = r.URL.Query()
	}
	ds.mu.Lock()
	ds.reqs = append(ds.reqs, req)
	body, ok := ds.docs[r.URL.Path]
	ds.mu.Unlock()
	switch {
	case r.URL.Path == "/slow":
		select { // past the edge's 5 s
		case <-time.After(8 * time.Second):
		case <-r.Context().Done():
		}
		return
	case r.URL.Path == "/error":
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case !ok:
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(r.URL.Path, ".wav") {
		w.Header().Set("Content-Type", "audio/wav")
	} else {
		w.Header().Set("Content-Type", "text/xml")
	}
	_, _ = w.Write([]byte(body))
}

func (ds *drServer) requests(path string) []drRequest {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var out []drRequest
	for _, r := range ds.reqs {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// validSignature is Twilio's request validation as its security
// documentation describes it: the full URL of the request, then for a
// POST every parameter sorted by name, its name and value appended with
// no delimiter; HMAC-SHA1 keyed with the auth token, base64-encoded, must
// equal X-Twilio-Signature.
func validSignature(authToken string, r drRequest) bool {
	data := r.fullURL
	if r.method == http.MethodPost {
		names := make([]string, 0, len(r.params))
		for n := range r.params {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for _, v := range r.params[n] {
				data += n + v
			}
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(data))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(want), []byte(r.signature))
}

func TestDisasterRecoveryLab(t *testing.T) {
	l := newTrunkLab(t, relayXtrunk)
	tri := l.tri
	d := &drLab{l: l, ds: startDRServer(t, l), carrierPort: l.port()}
	metrics := netip.AddrPortFrom(tri.RelayCallerIP, uint16(l.port())).String()
	d.sipAddr = l.startSIP(t, sipOpts{metrics: metrics,
		carrier: "sip:" + netip.AddrPortFrom(tri.CalleeIP, uint16(d.carrierPort)).String()})
	d.scrape = func() string { return httpGetIn(t, tri.Relay, "http://"+metrics+"/metrics") }
	d.metrics = metrics
	t.Run("all URIs fail: signed POST with Twilio's parameters, Reject busy", d.drSignedReject)
	t.Run("GET, Redirect followed, Reject rejected is 603", d.drRedirect)
	t.Run("Dial Sip reaches PBX B", d.drDialSip)
	t.Run("Dial action after a busy PBX: DialCallStatus, its TwiML runs", d.drDialAction)
	t.Run("Dial timeout: CANCEL after it, action with no-answer", d.drDialTimeout)
	t.Run("Dial Number goes out through the carrier", d.drDialNumber)
	t.Run("Dial callerId not the tenant's: the caller's number goes out", d.drDialNumberSpoof)
	t.Run("Play: the carrier receives the WAV's samples, then BYE", d.drPlay)
	t.Run("Play then Dial Sip: the answered call is bridged with a re-INVITE", d.drPlayThenDial)
	t.Run("HTTP timeout is 503, HTTP error 503, bad XML 500", d.drHTTPFailures)
	t.Run("DR URL at the edge's own admin endpoint: not requested, 503", d.drOwnAddress)
}

// drLab is the DR lab: one `xtrunk sip` (with a carrier gateway for
// <Dial><Number>), the DR server, the metrics scrape.
type drLab struct {
	l           *trunkLab
	ds          *drServer
	sipAddr     netip.AddrPort
	carrierPort int
	scrape      func() string
	metrics     string // sip's --metrics address: its /admin/ answers local clients
}

// drTrunk makes a trunk whose DR URL is the DR server's path.
func (d *drLab) drTrunk(t *testing.T, name, path, method string, urls ...origURL) (string, string) {
	return d.l.origTrunk(t, name, url.Values{"DisasterRecoveryUrl": {d.ds.url(path)}, "DisasterRecoveryMethod": {method}}, urls...)
}

// refused places a carrier call that DR refuses and returns the final
// status the carrier saw.
func (d *drLab) refused(t *testing.T, name, did string) int {
	l, tri := d.l, d.l.tri
	uac := l.startSIPp(t, tri.Callee, name, "uac_carrier_dr_final.xml", tri.CalleeIP, l.port(), l.port(), carrierArgs(did, d.sipAddr.String())...)
	uac.wait(t)
	msgs, _ := os.ReadFile(uac.msgs)
	for _, code := range []int{486, 500, 503, 603} {
		if bytes.Contains(msgs, []byte("SIP/2.0 "+strconv.Itoa(code)+" ")) {
			return code
		}
	}
	t.Fatalf("no final refusal in the carrier's messages:\n%s", lastLines(string(msgs), 60))
	return 0
}

// drSignedReject: all URIs fail: signed POST with Twilio's parameters, Reject busy.
func (d *drLab) drSignedReject(t *testing.T) {
	d.ds.set("/busy", `<?xml version="1.0"?><Response><Say>not run</Say><Reject reason="busy"/></Response>`)
	pbx := d.l.port()
	trunk, did := d.drTrunk(t, "dr-busy", "/busy", "POST", origURL{d.l.customerURI(pbx), 1, 10})
	uas := d.l.startUAS(t, d.l.tri.Caller, "dr-busy-pbx", "uas_503.xml", d.l.tri.CallerIP, pbx, 0, "-m", "1")
	if got := d.refused(t, "dr-busy-carrier", did); got != 486 {
		t.Errorf("carrier got %d, want 486", got)
	}
	uas.wait(t)
	c := d.l.cdrs(t, did, 1)[0]
	reqs := d.ds.requests("/busy")
	if len(reqs) != 1 {
		t.Fatalf("%d DR requests, want 1", len(reqs))
	}
	r := reqs[0]
	want := map[string]string{"CallSid": c.Sid, "AccountSid": labAccountSid, "From": labCarrierFrom, "To": did,
		"CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01", "ForwardedFrom": did}
	for k, v := range want {
		if got := r.params.Get(k); got != v {
			t.Errorf("DR %s=%q, want %q", k, got, v)
		}
	}
	if r.method != http.MethodPost || !validSignature(labAuthToken, r) {
		t.Errorf("%s request, signature %q does not validate", r.method, r.signature)
	}
	if validSignature("0123456789abcdef0123456789abcdef", r) {
		t.Error("the signature validates with another auth token")
	}
	r.params.Set("To", "+15550000000")
	if validSignature(labAuthToken, r) {
		t.Error("the signature validates with a changed parameter")
	}
	if c.SIPResponseCode != 486 || c.Sid == "" {
		t.Errorf("CDR %s code %d hangup %q", c.Sid, c.SIPResponseCode, c.HangupCause)
	}
	waitSeries(t, d.scrape, `xtrunk_sip_dr_requests_total{result="ok",trunk="`+trunk+`"} 1`)
}

// drRedirect: GET, Redirect followed, Reject rejected is 603.
func (d *drLab) drRedirect(t *testing.T) {
	d.ds.set("/first", `<Response><Redirect method="GET">/second?x=1</Redirect></Response>`)
	d.ds.set("/second", `<Response><Reject/></Response>`)
	_, did := d.drTrunk(t, "dr-redirect", "/first", "GET")
	if got := d.refused(t, "dr-redirect-carrier", did); got != 603 {
		t.Errorf("carrier got %d, want 603", got)
	}
	first, second := d.ds.requests("/first"), d.ds.requests("/second")
	if len(first) != 1 || len(second) != 1 {
		t.Fatalf("requests: %d first, %d second", len(first), len(second))
	}
	for _, r := range append(first, second...) {
		if r.method != http.MethodGet || !validSignature(labAuthToken, r) || r.params.Get("To") != did {
			t.Errorf("%s %s: signature valid %v, To %q", r.method, r.fullURL, validSignature(labAuthToken, r), r.params.Get("To"))
		}
	}
	if second[0].params.Get("x") != "1" {
		t.Errorf("redirect lost its query: %s", second[0].fullURL)
	}
}

// drDialSip: Dial Sip reaches PBX B.
func (d *drLab) drDialSip(t *testing.T) {
	b := d.l.port()
	d.ds.set("/sip", `<Response><Dial timeout="20"><Sip>sip:+14155550777@`+netip.AddrPortFrom(d.l.tri.CallerIP, uint16(b)).String()+`</Sip></Dial></Response>`)
	_, did := d.drTrunk(t, "dr-sip", "/sip", "POST")
	uas := d.l.startUAS(t, d.l.tri.Caller, "dr-sip-pbx", "uas_answer.xml", d.l.tri.CallerIP, b, d.l.port(), "-rtp_echo", "-m", "1")
	uac := d.l.startSIPp(t, d.l.tri.Callee, "dr-sip-carrier", "uac_carrier.xml", d.l.tri.CalleeIP, d.l.port(), d.l.port(),
		append([]string{"-d", "2000"}, carrierArgs(did, d.sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	c := d.l.cdrs(t, did, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})
	msgs, _ := os.ReadFile(uas.msgs)
	if !bytes.Contains(msgs, []byte("INVITE sip:+14155550777@")) {
		t.Errorf("PBX B's INVITE:\n%s", lastLines(string(msgs), 40))
	}
}

// drDialAction: Dial action after a busy PBX: DialCallStatus, its TwiML runs.
func (d *drLab) drDialAction(t *testing.T) {
	b := d.l.port()
	d.ds.set("/dial-busy", `<Response><Dial action="/after" timeout="10"><Sip>sip:`+netip.AddrPortFrom(d.l.tri.CallerIP, uint16(b)).String()+
		`</Sip></Dial><Hangup/></Response>`)
	d.ds.set("/after", `<Response><Reject/></Response>`)
	_, did := d.drTrunk(t, "dr-action", "/dial-busy", "POST")
	uas := d.l.startUAS(t, d.l.tri.Caller, "dr-action-pbx", "uas_busy.xml", d.l.tri.CallerIP, b, 0, "-m", "1")
	if got := d.refused(t, "dr-action-carrier", did); got != 603 {
		t.Errorf("carrier got %d, want the action's 603", got)
	}
	uas.wait(t)
	after := d.ds.requests("/after")
	if len(after) != 1 {
		t.Fatalf("%d action requests, want 1", len(after))
	}
	r := after[0]
	if r.params.Get("DialCallStatus") != "busy" || r.params.Get("To") != did || !validSignature(labAuthToken, r) {
		t.Errorf("action %s: DialCallStatus %q To %q signature valid %v", r.method, r.params.Get("DialCallStatus"),
			r.params.Get("To"), validSignature(labAuthToken, r))
	}
}

// drDialTimeout: Dial timeout: CANCEL after it, action with no-answer.
func (d *drLab) drDialTimeout(t *testing.T) {
	b := d.l.port()
	d.ds.set("/dial-ring", `<Response><Dial action="/after-ring" timeout="2"><Sip>sip:`+netip.AddrPortFrom(d.l.tri.CallerIP, uint16(b)).String()+
		`</Sip></Dial></Response>`)
	d.ds.set("/after-ring", `<Response><Reject reason="busy"/></Response>`)
	_, did := d.drTrunk(t, "dr-ring", "/dial-ring", "GET")
	uas := d.l.startUAS(t, d.l.tri.Caller, "dr-ring-pbx", "uas_cancel.xml", d.l.tri.CallerIP, b, 0, "-m", "1")
	if got := d.refused(t, "dr-ring-carrier", did); got != 486 {
		t.Errorf("carrier got %d, want the action's 486", got)
	}
	uas.wait(t) // it got the CANCEL
	after := d.ds.requests("/after-ring")
	if len(after) != 1 || after[0].params.Get("DialCallStatus") != "no-answer" || !validSignature(labAuthToken, after[0]) {
		t.Errorf("action requests: %+v", after)
	}
}

// drDialNumber: Dial Number goes out through the carrier, from the
// callerId when it is the account's DID.
func (d *drLab) drDialNumber(t *testing.T) {
	d.dialNumber(t, "dr-number", "uas_carrier.xml", labDID, labDID) // the scenario checks From too
}

// drDialNumberSpoof: a callerId that is not the tenant's (anyone's
// number) is ignored: the carrier sees the caller's own number.
func (d *drLab) drDialNumberSpoof(t *testing.T) {
	// uas_carrier_options.xml checks no From (uas_carrier.xml wants labDID)
	d.dialNumber(t, "dr-spoof", "uas_carrier_options.xml", "+12025550199", labCarrierFrom)
}

// dialNumber runs a DR <Dial callerId><Number> call toward a carrier
// gateway running SIPp scenario gateway, and checks it got the INVITE
// from wantFrom.
func (d *drLab) dialNumber(t *testing.T, name, gateway, callerID, wantFrom string) {
	d.ds.set("/"+name, `<Response><Dial callerId="`+callerID+`"><Number>+14155550888</Number></Dial></Response>`)
	_, did := d.drTrunk(t, name, "/"+name, "POST")
	uas := d.l.startUAS(t, d.l.tri.Callee, name+"-gw", gateway, d.l.tri.CalleeIP, d.carrierPort, d.l.port(), "-m", "1")
	uac := d.l.startSIPp(t, d.l.tri.Callee, name+"-carrier", "uac_carrier.xml", d.l.tri.CalleeIP, d.l.port(), d.l.port(),
		append([]string{"-d", "1500"}, carrierArgs(did, d.sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	c := d.l.cdrs(t, did, 1)[0]
	if c.Status != "completed" || c.SIPResponseCode != 200 {
		t.Errorf("CDR %s %d %q", c.Status, c.SIPResponseCode, c.HangupCause)
	}
	msgs, _ := os.ReadFile(uas.msgs)
	invite := regexp.MustCompile(`(?m)^INVITE sip:\+14155550888@.*\r?\n(?:[^\r\n]+\r?\n)*?From:[^\r\n]*`).Find(msgs)
	if invite == nil || !bytes.Contains(invite, []byte("From:")) || !bytes.Contains(invite[bytes.LastIndex(invite, []byte("From:")):], []byte("sip:"+wantFrom+"@")) {
		t.Errorf("carrier gateway's INVITE, want From %s (callerId %s):\n%s", wantFrom, callerID, lastLines(string(msgs), 40))
	}
}

// drPlay: Play: the carrier receives the WAV's samples, then BYE.
func (d *drLab) drPlay(t *testing.T) {
	// 7 s: more than one "play media" carries (6 s), so the edge
	// plays it as two pieces, which must join without a gap or a cut
	const frames = 350
	samples := make([]byte, frames*160)
	for i := range samples {
		samples[i] = byte(i*13%251 + 1)
	}
	d.ds.set("/tone.wav", string(wav.Encode(wav.Media{PT: wav.PCMA, Samples: samples})))
	d.ds.set("/play", `<Response><Play>/tone.wav</Play><Unknown/></Response>`)
	trunk, did := d.drTrunk(t, "dr-play", "/play", "POST")
	mport := d.l.port()
	var pc *net.UDPConn
	if err := d.l.tri.Callee.Do(func() error {
		var err error
		pc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(d.l.tri.CalleeIP, uint16(mport))))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan []byte, 1)
	go func() {
		var payload []byte
		buf := make([]byte, 2048)
		for n := 0; n < frames; {
			_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
			k, err := pc.Read(buf)
			if err != nil {
				break
			}
			if k == 12+160 && buf[1]&0x7F == 8 { // in arrival order: one host, no reordering
				payload = append(payload, buf[12:k]...)
				n++
			}
		}
		got <- payload
	}()
	uac := d.l.startSIPp(t, d.l.tri.Callee, "dr-play-carrier", "uac_carrier_dr_play.xml", d.l.tri.CalleeIP, d.l.port(), 0,
		append([]string{"-key", "mip", d.l.tri.CalleeIP.String(), "-key", "mport", strconv.Itoa(mport)}, carrierArgs(did, d.sipAddr.String())...)...)
	payload := <-got
	uac.wait(t)
	if len(payload) != len(samples) {
		t.Fatalf("%d bytes of payload type 8, want the WAV's %d", len(payload), len(samples))
	}
	if !bytes.Equal(payload, samples) {
		for i := range payload {
			if payload[i] != samples[i] {
				t.Fatalf("the RTP payloads differ from the WAV's samples at sample %d (frame %d)", i, i/160)
			}
		}
	}
	c := d.l.cdrs(t, did, 1)[0]
	if c.Status != "completed" || c.Answer.IsZero() || !strings.HasPrefix(c.HangupCause, string(hangupSystem)+": ") {
		t.Errorf("CDR %s answer %v hangup %q", c.Status, c.Answer, c.HangupCause)
	}
	waitSeries(t, d.scrape, `xtrunk_sip_dr_requests_total{result="ok",trunk="`+trunk+`"} 1`)
}

// drPlayThenDial: Play then Dial Sip: the answered call is bridged with a re-INVITE.
func (d *drLab) drPlayThenDial(t *testing.T) {
	b := d.l.port()
	d.ds.set("/short.wav", string(wav.Encode(wav.Media{PT: wav.PCMA, Samples: bytes.Repeat([]byte{0x2A}, 4000)})))
	d.ds.set("/play-dial", `<Response><Play>/short.wav</Play><Dial><Sip>sip:+14155550666@`+
		netip.AddrPortFrom(d.l.tri.CallerIP, uint16(b)).String()+`</Sip></Dial></Response>`)
	_, did := d.drTrunk(t, "dr-play-dial", "/play-dial", "POST")
	uas := d.l.startUAS(t, d.l.tri.Caller, "dr-play-dial-pbx", "uas_answer.xml", d.l.tri.CallerIP, b, d.l.port(), "-rtp_echo", "-m", "1")
	uac := d.l.startSIPp(t, d.l.tri.Callee, "dr-play-dial-carrier", "uac_carrier_dr_play_dial.xml", d.l.tri.CalleeIP, d.l.port(), d.l.port(),
		append([]string{"-d", "2000"}, carrierArgs(did, d.sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	c := d.l.cdrs(t, did, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})
}

// drHTTPFailures: HTTP timeout is 503, HTTP error 503, bad XML 500.
func (d *drLab) drHTTPFailures(t *testing.T) {
	for _, tc := range []struct {
		path, result, cause string
		code                int
	}{
		{"/slow", "timeout", "Disaster Recovery Timeout", 503},
		{"/error", "http_error", "Disaster Recovery HTTP Error", 503},
		{"/bad", "bad_twiml", "Disaster Recovery Bad TwiML", 500},
	} {
		d.ds.set("/bad", `<Response><Dial>`)
		trunk, did := d.drTrunk(t, "dr"+strings.TrimPrefix(tc.path, "/"), tc.path, "POST")
		if got := d.refused(t, "dr-fail"+strings.TrimPrefix(tc.path, "/"), did); got != tc.code {
			t.Errorf("%s: carrier got %d, want %d", tc.path, got, tc.code)
		}
		c := d.l.cdrs(t, did, 1)[0]
		if c.SIPResponseCode != tc.code || c.HangupCause != string(hangupSystem)+": "+tc.cause {
			t.Errorf("%s: CDR %d %q", tc.path, c.SIPResponseCode, c.HangupCause)
		}
		waitSeries(t, d.scrape, `xtrunk_sip_dr_requests_total{result="`+tc.result+`",trunk="`+trunk+`"} 1`)
	}
}

// drOwnAddress: a tenant's DR URL naming the edge's own address — sip's
// /admin/, which answers local clients without credentials — is not
// requested: the call gets 503 (Disaster Recovery Unreachable), counted
// as an error.
func (d *drLab) drOwnAddress(t *testing.T) {
	trunk, did := d.l.origTrunk(t, "dr-own", url.Values{
		"DisasterRecoveryUrl": {"http://" + d.metrics + "/admin/calls/CA00000000000000000000000000000000/hangup"}, "DisasterRecoveryMethod": {"POST"}})
	if got := d.refused(t, "dr-own-carrier", did); got != 503 {
		t.Errorf("carrier got %d, want 503", got)
	}
	c := d.l.cdrs(t, did, 1)[0]
	if c.SIPResponseCode != 503 || c.HangupCause != string(hangupSystem)+": "+string(reasonDRUnreachable) {
		t.Errorf("CDR %d %q", c.SIPResponseCode, c.HangupCause)
	}
	waitSeries(t, d.scrape, `xtrunk_sip_dr_requests_total{result="error",trunk="`+trunk+`"} 1`)
}
