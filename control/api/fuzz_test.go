package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

// fuzzEnv is one SQLite-backed API with one of every resource, shared by a
// fuzz target's iterations. Paths use the real sids so fuzzed input reaches
// the handlers, not only the router.
type fuzzEnv struct {
	h     http.Handler
	auth  [2]string
	paths []string // every route, with real sids
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	st := openFuzzStore(f)
	c := ctxT(f)
	a, _, err := st.Bootstrap(c, "", "", "", nil)
	if err != nil {
		f.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			f.Fatal(err)
		}
	}
	tr, err := st.CreateTrunk(c, store.NewTrunk(a.Sid))
	must(err)
	ou, err := st.CreateOriginationURL(c, store.OriginationURL{AccountSid: a.Sid, TrunkSid: tr.Sid, SipURL: "sip:pbx.example.com", Priority: 1, Weight: 1})
	must(err)
	acl, err := st.CreateIPAccessControlList(c, a.Sid, "acl")
	must(err)
	ip, err := st.CreateIPAddress(c, store.IPAddress{AccountSid: a.Sid, ListSid: acl.Sid, IPAddress: "192.0.2.1"})
	must(err)
	cl, err := st.CreateCredentialList(c, a.Sid, "cl")
	must(err)
	cr, err := st.CreateCredential(c, a.Sid, cl.Sid, "user", "Fuzz-Passw0rd-1")
	must(err)
	n, err := st.CreatePhoneNumber(c, store.NewPhoneNumber(a.Sid, "+14155550100"))
	must(err)
	_, err = st.AttachIPAccessControlList(c, a.Sid, tr.Sid, acl.Sid)
	must(err)
	_, err = st.AttachCredentialList(c, a.Sid, tr.Sid, cl.Sid)
	must(err)
	_, err = st.AssociatePhoneNumber(c, a.Sid, tr.Sid, n.Sid)
	must(err)
	ci, err := st.RequestCallerID(c, a.Sid, "+14155550101", "", true)
	must(err)
	call, err := st.InsertCall(c, store.Call{AccountSid: a.Sid, Direction: store.DirectionOriginating, Status: "completed"})
	must(err)
	rec, err := st.InsertRecording(c, store.Recording{AccountSid: a.Sid, CallSid: call.Sid, Channels: 1})
	must(err)
	A := "/2010-04-01/Accounts/" + a.Sid
	T := "/v1/Trunks/" + tr.Sid
	return &fuzzEnv{
		h:    api.New(st),
		auth: [2]string{a.Sid, a.AuthToken},
		paths: []string{
			"/v1/Trunks", T, T + "/OriginationUrls", T + "/OriginationUrls/" + ou.Sid, T + "/IpAccessControlLists",
			T + "/IpAccessControlLists/" + acl.Sid, T + "/CredentialLists", T + "/CredentialLists/" + cl.Sid,
			T + "/PhoneNumbers", T + "/PhoneNumbers/" + n.Sid, T + "/Recording",
			"/2010-04-01/Accounts.json", A + ".json", A + "/SIP/IpAccessControlLists.json", A + "/SIP/IpAccessControlLists/" + acl.Sid + ".json",
			A + "/SIP/IpAccessControlLists/" + acl.Sid + "/IpAddresses.json", A + "/SIP/IpAccessControlLists/" + acl.Sid + "/IpAddresses/" + ip.Sid + ".json",
			A + "/SIP/CredentialLists.json", A + "/SIP/CredentialLists/" + cl.Sid + ".json", A + "/SIP/CredentialLists/" + cl.Sid + "/Credentials.json",
			A + "/SIP/CredentialLists/" + cl.Sid + "/Credentials/" + cr.Sid + ".json", A + "/IncomingPhoneNumbers.json",
			A + "/IncomingPhoneNumbers/" + n.Sid + ".json", A + "/OutgoingCallerIds.json", A + "/OutgoingCallerIds/" + ci.Sid + ".json",
			A + "/Calls.json", A + "/Calls/" + call.Sid + ".json", A + "/Calls/" + call.Sid + "/Recordings.json", A + "/Recordings.json",
			A + "/Recordings/" + rec.Sid + ".json", A + "/Recordings/" + rec.Sid + ".wav",
		},
	}
}

// do serves one request and checks the contract: never a 5xx, and every
// error is Twilio's JSON document with a matching status.
func (fe *fuzzEnv) do(t *testing.T, req *http.Request) {
	req.SetBasicAuth(fe.auth[0], fe.auth[1])
	w := httptest.NewRecorder()
	fe.h.ServeHTTP(w, req)
	if w.Code >= 500 {
		t.Fatalf("%s %s (%q): %d %s", req.Method, req.URL.Path, req.URL.RawQuery, w.Code, w.Body.String())
	}
	if w.Code < 400 {
		return
	}
	var e struct {
		Code     int    `json:"code"`
		Message  string `json:"message"`
		MoreInfo string `json:"more_info"`
		Status   int    `json:"status"`
	}
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || json.Unmarshal(w.Body.Bytes(), &e) != nil ||
		e.Status != w.Code || e.Code == 0 || e.Message == "" || !strings.HasPrefix(e.MoreInfo, "https://www.twilio.com/docs/errors/") {
		t.Fatalf("%s %s: %d with a body that is not a Twilio error: %q", req.Method, req.URL.Path, w.Code, w.Body.String())
	}
}

var methods = []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch, http.MethodHead}

// FuzzForm posts fuzzed form bodies to every route.
func FuzzForm(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, s := range []string{
		"FriendlyName=x&DomainName=a.pstn.example.net", "SipUrl=sip:x&Priority=99999999999999999999", "Weight=-1&Enabled=maybe",
		"PhoneNumber=%2B14155550123&TrunkSid=TK", "IpAddress=10.0.0.0/8&CidrPrefixLength=7", "Username=a&Password=Aa1aaaaaaaaaa",
		"FriendlyName=%00%ff", "Mode=record-from-answer&Trim=trim-silence", "Status=closed", "%zz", "a=b=c&&&;",
		"DomainName=" + strings.Repeat("a.", 200) + "pstn.example.net", "IpAccessControlListSid=AL00000000000000000000000000000000",
	} {
		for i := range fe.paths {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		req := httptest.NewRequest(http.MethodPost, fe.paths[int(which)%len(fe.paths)], strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		fe.do(t, req)
	})
}

// FuzzPath sends every method to fuzzed paths.
func FuzzPath(f *testing.F) {
	fe := newFuzzEnv(f)
	for i, p := range fe.paths {
		f.Add(uint8(i), p)
		f.Add(uint8(i), p+"/")
		f.Add(uint8(i), strings.Replace(p, ".json", ".xml", 1))
		f.Add(uint8(i), strings.ToLower(p))
	}
	for _, p := range []string{"/", "", "//v1//Trunks", "/v1/Trunks/TK", "/v1/Trunks/../../etc/passwd", "/2010-04-01/Accounts/%41C.json", "/v1/Trunks/TKzz%00"} {
		f.Add(uint8(0), p)
	}
	f.Fuzz(func(t *testing.T, m uint8, path string) {
		u, err := url.Parse(path)
		if err != nil {
			return // not something an HTTP server hands a handler
		}
		req := httptest.NewRequest(http.MethodGet, "/", strings.NewReader("FriendlyName=x"))
		req.Method, req.URL = methods[int(m)%len(methods)], u
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		fe.do(t, req)
	})
}

// FuzzQuery sends fuzzed query strings to every route (lists read paging
// and filters from them).
func FuzzQuery(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, q := range []string{"PageSize=0", "PageSize=1001", "Page=-1", "Page=99999999999", "PageSize=2&Page=3", "PageToken=PAgarbage",
		"PageToken=PA0000000000000000TK00000000000000000000000000000000", "PhoneNumber=%25_", "To=%00", "Status=busy&From=+1", "CallSid=CA"} {
		for i := range fe.paths {
			f.Add(uint8(i), uint8(0), q)
		}
	}
	f.Fuzz(func(t *testing.T, which, m uint8, q string) {
		req := httptest.NewRequest(http.MethodGet, fe.paths[int(which)%len(fe.paths)], nil)
		req.Method = []string{http.MethodGet, http.MethodDelete}[m%2]
		req.URL.RawQuery = q
		fe.do(t, req)
	})
}

func openFuzzStore(f *testing.F) *store.Store { return storetest.Open(f, "sqlite", storeOpts) }
