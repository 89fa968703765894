package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"
	trunking "github.com/twilio/twilio-go/rest/trunking/v1"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

// jsonKeys lists the JSON field names of a twilio-go model type.
func jsonKeys(v any) []string {
	var keys []string
	t := reflect.TypeOf(v)
	for i := 0; i < t.NumField(); i++ {
		name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

func raw(t *testing.T, e *env, method, path string, form url.Values, auth bool) (*http.Response, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth {
		req.SetBasicAuth(e.main.Sid, e.main.AuthToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: not JSON: %q", method, path, b)
		}
	}
	return resp, m
}

// TestWireShapes checks every representation carries every field Twilio's
// Go models know, so no client finds a field missing.
func TestWireShapes(t *testing.T) {
	e := newEnv(t, "sqlite")
	c := ctxT(t)
	a := e.main.Sid
	tr := r(e.st.CreateTrunk(c, store.NewTrunk(a))).must(t)
	ou := r(e.st.CreateOriginationURL(c, store.OriginationURL{AccountSid: a, TrunkSid: tr.Sid, SipURL: "sip:x.example.com", Priority: 0, Weight: 1})).must(t)
	acl := r(e.st.CreateIPAccessControlList(c, a, "acl")).must(t)
	ip := r(e.st.CreateIPAddress(c, store.IPAddress{AccountSid: a, ListSid: acl.Sid, FriendlyName: "x", IPAddress: "192.0.2.1"})).must(t)
	cl := r(e.st.CreateCredentialList(c, a, "cl")).must(t)
	cr := r(e.st.CreateCredential(c, a, cl.Sid, "alice", "Wire-Passw0rd-1")).must(t)
	n := r(e.st.CreatePhoneNumber(c, store.NewPhoneNumber(a, "+14155550100"))).must(t)
	r(e.st.AttachIPAccessControlList(c, a, tr.Sid, acl.Sid)).must(t)
	r(e.st.AttachCredentialList(c, a, tr.Sid, cl.Sid)).must(t)
	r(e.st.AssociatePhoneNumber(c, a, tr.Sid, n.Sid)).must(t)
	ci := r(e.st.RequestCallerID(c, a, "+14155550101", "", true)).must(t)
	call := r(e.st.InsertCall(c, store.Call{AccountSid: a, Direction: store.DirectionOriginating, Status: "completed"})).must(t)
	rec := r(e.st.InsertRecording(c, store.Recording{AccountSid: a, CallSid: call.Sid, Channels: 1})).must(t)
	A := "/2010-04-01/Accounts/" + a
	T := "/v1/Trunks/" + tr.Sid
	for _, c := range []struct {
		path  string
		model any
	}{
		{T, trunking.TrunkingV1Trunk{}},
		{T + "/OriginationUrls/" + ou.Sid, trunking.TrunkingV1OriginationUrl{}},
		{T + "/IpAccessControlLists/" + acl.Sid, trunking.TrunkingV1IpAccessControlList{}},
		{T + "/CredentialLists/" + cl.Sid, trunking.TrunkingV1CredentialList{}},
		{T + "/PhoneNumbers/" + n.Sid, trunking.TrunkingV1PhoneNumber{}},
		{T + "/Recording", trunking.TrunkingV1Recording{}},
		{"/v1/Trunks", trunking.ListTrunkResponse{}},
		{A + ".json", twapi.ApiV2010Account{}},
		{A + "/SIP/IpAccessControlLists/" + acl.Sid + ".json", twapi.ApiV2010SipIpAccessControlList{}},
		{A + "/SIP/IpAccessControlLists/" + acl.Sid + "/IpAddresses/" + ip.Sid + ".json", twapi.ApiV2010SipIpAddress{}},
		{A + "/SIP/CredentialLists/" + cl.Sid + ".json", twapi.ApiV2010SipCredentialList{}},
		{A + "/SIP/CredentialLists/" + cl.Sid + "/Credentials/" + cr.Sid + ".json", twapi.ApiV2010SipCredential{}},
		{A + "/IncomingPhoneNumbers/" + n.Sid + ".json", twapi.ApiV2010IncomingPhoneNumber{}},
		{A + "/OutgoingCallerIds/" + ci.Sid + ".json", twapi.ApiV2010OutgoingCallerId{}},
		{A + "/Calls/" + call.Sid + ".json", twapi.ApiV2010Call{}},
		{A + "/Recordings/" + rec.Sid + ".json", twapi.ApiV2010Recording{}},
		{A + "/IncomingPhoneNumbers.json", twapi.ListIncomingPhoneNumberResponse{}},
		{A + "/Calls.json", twapi.ListCallResponse{}},
	} {
		resp, m := raw(t, e, http.MethodGet, c.path, nil, true)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("GET %s: %d %s", c.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var missing []string
		for _, k := range jsonKeys(c.model) {
			if _, ok := m[k]; !ok {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			t.Errorf("GET %s lacks %v (fields of %T)", c.path, missing, c.model)
		}
	}
	_, m := raw(t, e, http.MethodGet, "/v1/Trunks", nil, true)
	meta := m["meta"].(map[string]any)
	for _, k := range jsonKeys(trunking.ListCredentialListResponseMeta{}) {
		if _, ok := meta[k]; !ok {
			t.Errorf("meta lacks %s", k)
		}
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/Trunks", nil)
	req.SetBasicAuth(e.main.Sid, e.main.AuthToken)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(b, []byte("&Page")) || bytes.Contains(b, []byte(`\u0026`)) {
			t.Errorf("URLs in JSON should keep a plain '&': %s", b)
		}
	}
	// the validation request answer
	resp, m := raw(t, e, http.MethodPost, A+"/OutgoingCallerIds.json", url.Values{"PhoneNumber": {"+14155550102"}}, true)
	if resp.StatusCode != 201 {
		t.Fatal(resp.StatusCode)
	}
	for _, k := range jsonKeys(twapi.ApiV2010ValidationRequest{}) {
		if _, ok := m[k]; !ok {
			t.Errorf("validation request lacks %s", k)
		}
	}
	// credentials never come back
	_, m = raw(t, e, http.MethodGet, A+"/SIP/CredentialLists/"+cl.Sid+"/Credentials/"+cr.Sid+".json", nil, true)
	for k, v := range m {
		if strings.Contains(strings.ToLower(k), "password") || strings.Contains(strings.ToLower(k), "ha1") || v == cr.HA1MD5 {
			t.Errorf("credential shows %s", k)
		}
	}
}

// TestWireErrors checks the HTTP details twilio-go does not look at.
func TestWireErrors(t *testing.T) {
	e := newEnv(t, "sqlite")
	A := "/2010-04-01/Accounts/" + e.main.Sid
	for _, c := range []struct {
		method, path string
		form         url.Values
		auth         bool
		status, code int
	}{
		{"GET", "/v1/Trunks", nil, false, 401, 20003},
		{"GET", "/v1/Nope", nil, true, 404, 20404},
		{"GET", "/v1/Trunks/TKxyz", nil, true, 404, 20404},
		{"GET", "/v1/Trunks/", nil, true, 404, 20404},
		{"PUT", "/v1/Trunks", nil, true, 405, 20004},
		{"HEAD", "/v1/Trunks", nil, true, 405, 20004},
		{"DELETE", A + "/Calls.json", nil, true, 405, 20004},
		{"POST", "/v1/Trunks", url.Values{"Secure": {"perhaps"}}, true, 400, 20001},
		{"POST", "/v1/Trunks", url.Values{"FriendlyName": {"\x00"}}, true, 400, 20001},
		{"GET", "/v1/Trunks?PageSize=0", nil, true, 400, 20001},
		{"GET", "/v1/Trunks?PageSize=1001", nil, true, 400, 20001},
		{"GET", "/v1/Trunks?PageToken=PAbad", nil, true, 400, 20001},
		{"GET", A + "/IncomingPhoneNumbers.json?Page=-1", nil, true, 400, 20001},
		{"POST", A + "/IncomingPhoneNumbers.json", url.Values{"AreaCode": {"415"}}, true, 400, 20001},
		{"POST", A + "/SIP/IpAccessControlLists.json", url.Values{}, true, 400, 20001},
		{"GET", "/2010-04-01/Accounts/" + store.NewSid("AC") + "/Calls.json", nil, true, 404, 20404},
	} {
		resp, m := raw(t, e, c.method, c.path, c.form, c.auth)
		if resp.StatusCode != c.status || c.method != "HEAD" && (m["code"] != float64(c.code) || m["status"] != float64(c.status) ||
			m["message"] == "" || m["more_info"] != "https://www.twilio.com/docs/errors/"+jsonNum(c.code)) {
			t.Errorf("%s %s: %d %v, want %d/%d", c.method, c.path, resp.StatusCode, m, c.status, c.code)
		}
		if c.status == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
		if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("401 without a Basic challenge")
		}
	}
	// bodies other than forms, and oversized ones
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/Trunks", strings.NewReader(`{"FriendlyName":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(e.main.Sid, e.main.AuthToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 415 {
		t.Fatalf("JSON body: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("POST", e.srv.URL+"/v1/Trunks", bytes.NewReader(bytes.Repeat([]byte("a"), api.MaxBody+1)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(e.main.Sid, e.main.AuthToken)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 413 {
		t.Fatalf("big body: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	// 2010 paths answer with or without ".json"; v1 paths have no suffix
	if resp, _ := raw(t, e, "GET", A+"/IncomingPhoneNumbers", nil, true); resp.StatusCode != 200 {
		t.Errorf("2010 without .json: %d", resp.StatusCode)
	}
	if resp, _ := raw(t, e, "GET", "/v1/Trunks.json", nil, true); resp.StatusCode != 404 {
		t.Errorf("v1 with .json: %d", resp.StatusCode)
	}
}

func jsonNum(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestTrialCallerIDs: a trial account's own caller ID requests stay
// pending (a trial account may only call verified numbers, so it must not
// verify them itself); its parent can vouch for them.
func TestTrialCallerIDs(t *testing.T) {
	e := newEnv(t, "sqlite")
	_, m := raw(t, e, "POST", "/2010-04-01/Accounts.json", url.Values{"FriendlyName": {"trial"}, "Type": {"Trial"}}, true)
	if m["type"] != "Trial" {
		t.Fatalf("%v", m)
	}
	sid, token := m["sid"].(string), m["auth_token"].(string)
	_, trialAPI := e.clients(sid, token)
	v := r(trialAPI.CreateValidationRequest((&twapi.CreateValidationRequestParams{}).SetPhoneNumber("+14155550150"))).must(t)
	if len(*v.ValidationCode) != 6 {
		t.Fatal("code")
	}
	if l := r(trialAPI.ListOutgoingCallerId(nil)).must(t); len(l) != 0 {
		t.Fatal("a trial account verified its own caller ID")
	}
	if ok, _ := e.st.IsVerifiedCallerID(ctxT(t), sid, "+14155550150"); ok {
		t.Fatal("verified")
	}
	r(e.v10.CreateValidationRequest((&twapi.CreateValidationRequestParams{}).SetPathAccountSid(sid).SetPhoneNumber("+14155550150"))).must(t)
	if l := r(trialAPI.ListOutgoingCallerId(nil)).must(t); len(l) != 1 {
		t.Fatal("the parent's verification")
	}
	_, err := trialAPI.CreateAccount(nil)
	twErr(t, err, 400, store.CodeInvalidParameter) // a subaccount cannot create subaccounts
}

// TestEnsureMainAccount: generated credentials land in a 0600 file whose
// path (not the token) is logged; env credentials are used as given.
func TestEnsureMainAccount(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		st := storetest.Open(t, backend, storeOpts)
		var logs bytes.Buffer
		log := zerolog.New(&logs)
		path := t.TempDir() + "/creds/xtrunk-credentials.env"
		a := r(api.EnsureMainAccount(ctxT(t), st, "", "", path, log)).must(t)
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("credentials file: %v %v", fi, err)
		}
		b, _ := os.ReadFile(path)
		if !strings.Contains(string(b), "XTRUNK_ACCOUNT_SID="+a.Sid+"\n") || !strings.Contains(string(b), "XTRUNK_AUTH_TOKEN="+a.AuthToken+"\n") {
			t.Fatalf("file: %q", b)
		}
		if !strings.Contains(logs.String(), path) || strings.Contains(logs.String(), a.AuthToken) {
			t.Fatalf("log: %s", logs.String())
		}
		// again: the same account, no new file
		os.Remove(path)
		if b := r(api.EnsureMainAccount(ctxT(t), st, "", "", path, log)).must(t); b.Sid != a.Sid {
			t.Fatal("second bootstrap made a new account")
		}
		if _, err := os.Stat(path); err == nil {
			t.Fatal("credentials rewritten")
		}
		if _, err := api.EnsureMainAccount(ctxT(t), st, store.NewSid("AC"), "", path, log); err == nil {
			t.Fatal("a sid without a token")
		}
		// env credentials on an empty store
		st2 := storetest.Open(t, backend, storeOpts)
		sid, token := store.NewSid("AC"), store.NewAuthToken()
		if b := r(api.EnsureMainAccount(ctxT(t), st2, sid, token, path, log)).must(t); b.Sid != sid || b.AuthToken != token {
			t.Fatal("env credentials")
		}
		if _, err := os.Stat(path); err == nil {
			t.Fatal("env credentials written to a file")
		}
	})
}
