package api_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"
	trunking "github.com/twilio/twilio-go/rest/trunking/v1"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

// Issue 10, item 3 (API part): one tenant's 0.0.0.0/1 must not open the
// edge; a /8 (IPv4) or /32 (IPv6) is the widest entry accepted, on create
// and on update.
func TestACLPrefixLimits(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		sub := r(e.v10.CreateAccount((&twapi.CreateAccountParams{}).SetFriendlyName("tenant"))).must(t)
		_, tenant := e.clients(*sub.Sid, *sub.AuthToken)
		acl := r(tenant.CreateSipIpAccessControlList((&twapi.CreateSipIpAccessControlListParams{}).SetFriendlyName("pbx"))).must(t)
		add := func(ip string, cidr int) error {
			p := (&twapi.CreateSipIpAddressParams{}).SetFriendlyName("x").SetIpAddress(ip)
			if cidr > 0 {
				p.SetCidrPrefixLength(cidr)
			}
			_, err := tenant.CreateSipIpAddress(*acl.Sid, p)
			return err
		}
		for _, c := range []struct {
			ip   string
			cidr int
		}{{"0.0.0.0", 1}, {"0.0.0.0/1", 0}, {"128.0.0.0", 1}, {"10.0.0.0", 7}, {"::", 1}, {"2001::", 31}, {"::/0", 0},
			// IPv6 ranges carrying the IPv4 internet: every Teredo client, every
			// IPv4 address behind NAT64 (a tenant review, 2026-12-08)
			{"2001::", 32}, {"64:ff9b::", 96}, {"::", 32}} {
			twErr(t, add(c.ip, c.cidr), 400, store.CodeInvalidParameter)
		}
		if ips := r(tenant.ListSipIpAddress(*acl.Sid, nil)).must(t); len(ips) != 0 {
			t.Fatalf("refused entries were stored: %d", len(ips))
		}
		noErr(t, add("10.0.0.0", 8))
		noErr(t, add("2001:db8::", 32))
		one := r(tenant.CreateSipIpAddress(*acl.Sid, (&twapi.CreateSipIpAddressParams{}).SetFriendlyName("pbx").SetIpAddress("198.51.100.7"))).must(t)
		_, err := tenant.UpdateSipIpAddress(*acl.Sid, *one.Sid, (&twapi.UpdateSipIpAddressParams{}).SetIpAddress("0.0.0.0/1"))
		twErr(t, err, 400, store.CodeInvalidParameter)
		if got := r(tenant.FetchSipIpAddress(*acl.Sid, *one.Sid, nil)).must(t); *got.IpAddress != "198.51.100.7" || got.CidrPrefixLength != 32 {
			t.Fatalf("a refused update changed the entry: %s/%d", *got.IpAddress, got.CidrPrefixLength)
		}
	})
}

// Issue 10, item 8: numbers come from the operator's inventory. Only the
// main account provisions them, into itself or a subaccount; it moves
// them with AccountSid; a tenant can neither claim a number nor present
// another tenant's as a verified caller ID.
func TestNumberProvisioning(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		mk := func(name string) (*twapi.ApiV2010Account, *trunking.ApiService, *twapi.ApiService) {
			a := r(e.v10.CreateAccount((&twapi.CreateAccountParams{}).SetFriendlyName(name))).must(t)
			tk, v := e.clients(*a.Sid, *a.AuthToken)
			return a, tk, v
		}
		alice, aliceTK, aliceAPI := mk("alice")
		bob, _, bobAPI := mk("bob")

		// a subaccount's own POST: 400, nothing provisioned
		_, err := aliceAPI.CreateIncomingPhoneNumber((&twapi.CreateIncomingPhoneNumberParams{}).SetPhoneNumber("+14155550101"))
		twErr(t, err, 400, store.CodePhoneUnavailable)
		if l, _, err := e.st.ListPhoneNumbers(ctxT(t), *alice.Sid, store.NumberFilter{}, store.Page{}); err != nil || len(l) != 0 {
			t.Fatalf("the subaccount claimed %d numbers", len(l))
		}
		// the main account provisions into its own inventory and straight into alice
		stock := r(e.v10.CreateIncomingPhoneNumber((&twapi.CreateIncomingPhoneNumberParams{}).SetPhoneNumber("+14155550102"))).must(t)
		direct := r(e.v10.CreateIncomingPhoneNumber((&twapi.CreateIncomingPhoneNumberParams{}).SetPathAccountSid(*alice.Sid).SetPhoneNumber("+14155550101"))).must(t)
		if *direct.AccountSid != *alice.Sid || *stock.AccountSid != e.main.Sid {
			t.Fatalf("accounts: %s %s", *direct.AccountSid, *stock.AccountSid)
		}
		// moving: main → bob by AccountSid
		moved := r(e.v10.UpdateIncomingPhoneNumber(*stock.Sid, (&twapi.UpdateIncomingPhoneNumberParams{}).SetAccountSid(*bob.Sid))).must(t)
		if *moved.AccountSid != *bob.Sid {
			t.Fatalf("moved to %s", *moved.AccountSid)
		}
		if l := r(bobAPI.ListIncomingPhoneNumber(nil)).must(t); len(l) != 1 || *l[0].Sid != *stock.Sid {
			t.Fatal("bob does not see the number moved to him")
		}
		_, err = e.v10.FetchIncomingPhoneNumber(*stock.Sid, nil)
		twErr(t, err, 404, 20404) // it left the main account
		// a number on alice's trunk leaves the trunk when moved to bob (the trunk stays alice's)
		tr := r(aliceTK.CreateTrunk((&trunking.CreateTrunkParams{}).SetDomainName("alice.pstn.example.net"))).must(t)
		r(aliceTK.CreatePhoneNumber(*tr.Sid, (&trunking.CreatePhoneNumberParams{}).SetPhoneNumberSid(*direct.Sid))).must(t)
		back := r(e.v10.UpdateIncomingPhoneNumber(*direct.Sid, (&twapi.UpdateIncomingPhoneNumberParams{}).SetPathAccountSid(*alice.Sid).SetAccountSid(*bob.Sid))).must(t)
		if *back.AccountSid != *bob.Sid || back.TrunkSid != nil {
			t.Fatalf("moved number: account %s, trunk %v (want bob, none)", *back.AccountSid, back.TrunkSid)
		}
		// a tenant cannot move (give away or take) a number
		_, err = bobAPI.UpdateIncomingPhoneNumber(*direct.Sid, (&twapi.UpdateIncomingPhoneNumberParams{}).SetAccountSid(*alice.Sid))
		twErr(t, err, 400, store.CodeInvalidParameter)
		// nor can the main account move one to an account that is not in its family
		_, err = e.v10.UpdateIncomingPhoneNumber(*direct.Sid, (&twapi.UpdateIncomingPhoneNumberParams{}).SetPathAccountSid(*bob.Sid).SetAccountSid(store.NewSid("AC")))
		twErr(t, err, 400, store.CodeInvalidParameter)
		if n := r(bobAPI.FetchIncomingPhoneNumber(*direct.Sid, nil)).must(t); *n.AccountSid != *bob.Sid {
			t.Fatal("a refused move changed the number")
		}

		// caller IDs: bob's DIDs are nobody else's caller ID, not even when the main account vouches
		_, err = aliceAPI.CreateValidationRequest((&twapi.CreateValidationRequestParams{}).SetPhoneNumber("+14155550101"))
		twErr(t, err, 400, store.CodeCallerIDIsDID)
		_, err = e.v10.CreateValidationRequest((&twapi.CreateValidationRequestParams{}).SetPathAccountSid(*alice.Sid).SetPhoneNumber("+14155550102"))
		twErr(t, err, 400, store.CodeCallerIDIsDID)
		_, err = e.v10.CreateValidationRequest((&twapi.CreateValidationRequestParams{}).SetPhoneNumber("+14155550102"))
		twErr(t, err, 400, store.CodeCallerIDIsDID)
		if l := r(aliceAPI.ListOutgoingCallerId(nil)).must(t); len(l) != 0 {
			t.Fatalf("alice holds %d caller IDs", len(l))
		}
		// an outside number is fine; provisioning it as a DID afterwards is refused until the caller ID goes
		r(aliceAPI.CreateValidationRequest((&twapi.CreateValidationRequestParams{}).SetPhoneNumber("+14155550177"))).must(t)
		_, err = e.v10.CreateIncomingPhoneNumber((&twapi.CreateIncomingPhoneNumberParams{}).SetPathAccountSid(*bob.Sid).SetPhoneNumber("+14155550177"))
		twErr(t, err, 400, store.CodePhoneUnavailable)
		// bob's own DID may be his caller ID (redundant, harmless)
		r(bobAPI.CreateValidationRequest((&twapi.CreateValidationRequestParams{}).SetPhoneNumber("+14155550101"))).must(t)
	})
}

// Issue 10, item 8: origination URIs may not make the edge call itself:
// loopback (the relay's NG port), unspecified, link-local (cloud metadata),
// multicast, localhost names, this host's interfaces and --edge-address.
// Private ranges stay allowed.
func TestOriginationTargets(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		edge := netip.MustParsePrefix("203.0.113.0/28")
		e := newEnv(t, backend, api.WithEdgeAddresses([]netip.Prefix{edge}))
		tr := r(e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetDomainName("orig.pstn.example.net"))).must(t)
		create := func(u string) (*trunking.TrunkingV1OriginationUrl, error) {
			return e.tk.CreateOriginationUrl(*tr.Sid, (&trunking.CreateOriginationUrlParams{}).SetSipUrl(u).
				SetFriendlyName("pbx").SetPriority(10).SetWeight(10).SetEnabled(true))
		}
		bad := []string{"sip:127.0.0.1:2223", "sip:+15551234@127.0.0.53", "sip:0.0.0.0", "sip:169.254.169.254",
			"sip:224.0.0.251", "sip:[::1]:5060", "sip:[fe80::1]", "sip:[::ffff:127.0.0.1]", "sip:localhost",
			"sips:edge.localhost", "sip:203.0.113.9", "sip:203.0.113.1:5060;transport=tcp"}
		if own := hostAddress(t); own.IsValid() {
			bad = append(bad, "sip:"+own.String())
		}
		for _, u := range bad {
			_, err := create(u)
			t.Run(u, func(t *testing.T) { twErr(t, err, 400, store.CodeInvalidParameter) })
		}
		if l := r(e.tk.ListOriginationUrl(*tr.Sid, nil)).must(t); len(l) != 0 {
			t.Fatalf("%d refused URIs stored", len(l))
		}
		var ok *trunking.TrunkingV1OriginationUrl
		for _, u := range []string{"sip:10.20.30.40:5080", "sip:192.168.1.10", "sip:[fd00::10]", "sip:pbx.example.com", "sip:203.0.113.20"} {
			ok = r(create(u)).must(t)
		}
		_, err := e.tk.UpdateOriginationUrl(*tr.Sid, *ok.Sid, (&trunking.UpdateOriginationUrlParams{}).SetSipUrl("sip:127.0.0.1:2223"))
		twErr(t, err, 400, store.CodeInvalidParameter)
		if got := r(e.tk.FetchOriginationUrl(*tr.Sid, *ok.Sid)).must(t); *got.SipUrl != "sip:203.0.113.20" {
			t.Fatalf("a refused update changed the URI to %s", *got.SipUrl)
		}
	})
}

// hostAddress is one of this host's non-loopback interface addresses
// (invalid when it has none).
func hostAddress(t *testing.T) netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ip, _ := netip.AddrFromSlice(n.IP)
			if ip = ip.Unmap(); ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip
			}
		}
	}
	return netip.Addr{}
}

// Issue 10, item 8: failed logins are limited per source: after 10 in a
// minute, every request from it (right credentials too) gets 429 with
// Retry-After and Twilio's error document; other sources are not affected.
func TestLoginRateLimit(t *testing.T) {
	st := storetest.Open(t, "sqlite", storeOpts)
	main := r3b(st.Bootstrap(ctxT(t), "", "", "", nil)).must(t)
	h := api.New(st)
	try := func(src, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/2010-04-01/Accounts/"+main.Sid+".json", nil)
		req.RemoteAddr = src
		req.SetBasicAuth(main.Sid, token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	attacker, v6a, v6b := "198.51.100.66:40000", "[2001:db8:1:2::a]:40000", "[2001:db8:1:2::b]:40001"
	wrong := store.NewAuthToken()
	for i := 0; i < api.MaxLoginFailures; i++ {
		if w := try(attacker, wrong); w.Code != 401 {
			t.Fatalf("failure %d: %d", i+1, w.Code)
		}
		if w := try(v6a, wrong); w.Code != 401 {
			t.Fatalf("IPv6 failure %d: %d", i+1, w.Code)
		}
	}
	for name, w := range map[string]*httptest.ResponseRecorder{
		"wrong token": try(attacker, wrong), "right token": try(attacker, main.AuthToken),
		"same IPv6 /64": try(v6b, main.AuthToken),
	} {
		var body struct {
			Code     int    `json:"code"`
			Message  string `json:"message"`
			MoreInfo string `json:"more_info"`
			Status   int    `json:"status"`
		}
		if w.Code != 429 || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Status != 429 || body.Code != api.CodeTooManyRequests ||
			body.Message == "" || body.MoreInfo == "" {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body.String())
		}
		ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
		if err != nil || ra < 1 || ra > 60 {
			t.Fatalf("%s: Retry-After %q", name, w.Header().Get("Retry-After"))
		}
	}
	if w := try("198.51.100.67:40000", main.AuthToken); w.Code != 200 {
		t.Fatalf("another source is limited too: %d", w.Code)
	}
}

// r3b unwraps Bootstrap's (account, created, error).
func r3b(a store.Account, _ bool, err error) res[store.Account] { return r(a, err) }

// Issue 10, item 9: a Recording's media is its file name in
// --recording-dir, never a stored path. Rows holding paths (as an older
// xtrunk wrote them, or as a hostile relay reply would have it) are
// neither served nor deleted, and a symlink in the directory leads nowhere.
func TestRecordingFilesByName(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		outside := t.TempDir()
		secret := filepath.Join(outside, "secret.wav")
		noErr(t, os.WriteFile(secret, []byte("RIFF not yours"), 0o644))
		noErr(t, os.Symlink(secret, filepath.Join(e.recDir, "link.wav")))
		good := "call-1-1700000000000000000.wav"
		noErr(t, os.WriteFile(filepath.Join(e.recDir, good), []byte("RIFF mine"), 0o644))

		call := r(e.st.InsertCall(ctxT(t), store.Call{AccountSid: e.main.Sid, Direction: store.DirectionTerminating, Status: "completed"})).must(t)
		insert := func(file string) string {
			rec := r(e.st.InsertRecording(ctxT(t), store.Recording{AccountSid: e.main.Sid, CallSid: call.Sid, Channels: 1, MediaFile: good})).must(t)
			// what the store refuses to write, written behind its back
			storetest.Exec(t, e.dsn, "UPDATE recordings SET media_path = '"+strings.ReplaceAll(file, "'", "''")+"' WHERE sid = '"+rec.Sid+"'")
			return rec.Sid
		}
		get := func(sid string) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/2010-04-01/Accounts/"+e.main.Sid+"/Recordings/"+sid+".wav", nil)
			req.SetBasicAuth(e.main.Sid, e.main.AuthToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		for _, hostile := range []string{"../../../../../../etc/passwd", "/etc/passwd", secret, "../" + filepath.Base(outside) + "/secret.wav", "link.wav"} {
			sid := insert(hostile)
			if code, body := get(sid); code != 404 || strings.Contains(body, "root:") || strings.Contains(body, "not yours") {
				t.Errorf("%q: served %d %q", hostile, code, body)
			}
			noErr(t, e.v10.DeleteRecording(sid, nil))
		}
		if _, err := os.Stat(secret); err != nil {
			t.Fatalf("deleting recordings removed a file outside the recording directory: %v", err)
		}
		if _, err := os.Stat("/etc/passwd"); err != nil {
			t.Fatalf("/etc/passwd: %v", err)
		}
		// the normal one: served by its ID, deleted with it
		sid := insert(good)
		if code, body := get(sid); code != 200 || body != "RIFF mine" {
			t.Fatalf("recording by ID: %d %q", code, body)
		}
		noErr(t, e.v10.DeleteRecording(sid, nil))
		if _, err := os.Stat(filepath.Join(e.recDir, good)); !os.IsNotExist(err) {
			t.Fatalf("the recording's file outlived it: %v", err)
		}
	})
}

// Issue 10, item 8: the bootstrap token must be 32 hex digits.
func TestBootstrapToken(t *testing.T) {
	for _, tok := range []string{"labT0kenlabT0kenlabT0ken", "changeme", "0123456789abcdef", strings.Repeat("g", 32), strings.Repeat("a", 33)} {
		st := storetest.Open(t, "sqlite", storeOpts)
		_, err := api.EnsureMainAccount(ctxT(t), st, "AC"+strings.Repeat("ab", 16), tok, filepath.Join(t.TempDir(), "c.env"), zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), "32 hex") {
			t.Errorf("token %q: %v", tok, err)
		}
	}
	st := storetest.Open(t, "sqlite", storeOpts)
	if _, err := api.EnsureMainAccount(ctxT(t), st, "AC"+strings.Repeat("ab", 16), strings.Repeat("0aF9", 8), filepath.Join(t.TempDir(), "c.env"), zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
}

// A tenant's script writing in a loop (every write drops every edge's
// trunk cache and queues a store transaction before the CDR writers')
// gets 429 past its account's burst, with Retry-After and Twilio's
// 20429; its reads, another tenant's writes and the main account's
// bulk provisioning go on. A tenant review, 2026-12-08.
func TestTenantWriteLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, "sqlite", api.WithTenantWriteLimit(0.5, 3), api.WithRegistry(reg))
	mk := func(name string) (*twapi.ApiV2010Account, *twapi.ApiService) {
		a := r(e.v10.CreateAccount((&twapi.CreateAccountParams{}).SetFriendlyName(name))).must(t)
		_, v := e.clients(*a.Sid, *a.AuthToken)
		return a, v
	}
	alice, aliceAPI := mk("alice")
	_, bobAPI := mk("bob")
	list := func(api *twapi.ApiService, name string) error {
		_, err := api.CreateSipIpAccessControlList((&twapi.CreateSipIpAccessControlListParams{}).SetFriendlyName(name))
		return err
	}
	for i := range 3 {
		noErr(t, list(aliceAPI, "l"+strconv.Itoa(i)))
	}
	twErr(t, list(aliceAPI, "over"), 429, api.CodeTooManyRequests)

	// the same as raw HTTP: Retry-After, and nothing written
	form := url.Values{"FriendlyName": {"raw"}}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/2010-04-01/Accounts/"+*alice.Sid+"/SIP/IpAccessControlLists.json", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(*alice.Sid, *alice.AuthToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if ra, _ := strconv.Atoi(res.Header.Get("Retry-After")); res.StatusCode != 429 || ra < 1 || ra > 2 || !strings.Contains(string(body), `"code":20429`) {
		t.Fatalf("over the limit: %d, Retry-After %q, %s", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	if lists := r(aliceAPI.ListSipIpAccessControlList(nil)).must(t); len(lists) != 3 {
		t.Fatalf("alice has %d lists, want the 3 allowed (a refused write wrote nothing); her reads must work", len(lists))
	}
	noErr(t, list(bobAPI, "bob's")) // another account's bucket
	for i := range 10 {             // the operator provisions in bulk
		if _, err := e.v10.CreateSipIpAccessControlList((&twapi.CreateSipIpAccessControlListParams{}).SetFriendlyName("m" + strconv.Itoa(i))); err != nil {
			t.Fatalf("main account's write %d: %v", i+1, err)
		}
	}
	mf, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	limited := -1.0
	for _, f := range mf {
		if f.GetName() == "xtrunk_api_tenant_writes_limited_total" {
			limited = f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if limited != 2 {
		t.Errorf("xtrunk_api_tenant_writes_limited_total = %v, want 2", limited)
	}
}

// Behind a reverse proxy every request comes from the proxy: the failed-
// login limit must key on the client the proxy names, or ten wrong
// passwords from anyone lock every user out (a tenant review,
// 2026-12-08). X-Forwarded-For is believed from --trusted-proxy only:
// from anyone else it is the client's own text.
func TestLoginLimitBehindProxy(t *testing.T) {
	try := func(e *env, xff, user, pass string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/2010-04-01/Accounts/"+user+".json", nil)
		req.SetBasicAuth(user, pass)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	// the test server's peer is 127.0.0.1, as nginx on the same host
	proxied := newEnv(t, "sqlite", api.WithTrustedProxies([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}))
	for range api.MaxLoginFailures {
		try(proxied, "198.51.100.66, 127.0.0.1", proxied.main.Sid, "wrong")
	}
	if code := try(proxied, "198.51.100.66", proxied.main.Sid, proxied.main.AuthToken); code != 429 {
		t.Errorf("the guesser behind the proxy, right password: %d, want 429", code)
	}
	if code := try(proxied, "198.51.100.7", proxied.main.Sid, proxied.main.AuthToken); code != 200 {
		t.Errorf("another client behind the same proxy: %d, want 200", code)
	}
	// the guesser cannot slip out by writing its own X-Forwarded-For
	// left of what the proxy appends
	if code := try(proxied, "203.0.113.9, 198.51.100.66", proxied.main.Sid, proxied.main.AuthToken); code != 429 {
		t.Errorf("a forged hop left of the proxy's: %d, want 429", code)
	}

	// no trusted proxy: X-Forwarded-For is ignored, the peer is limited
	direct := newEnv(t, "sqlite")
	for i := range api.MaxLoginFailures {
		try(direct, "198.51.100."+strconv.Itoa(i+1), direct.main.Sid, "wrong")
	}
	if code := try(direct, "198.51.100.200", direct.main.Sid, direct.main.AuthToken); code != 429 {
		t.Errorf("without --trusted-proxy a forged X-Forwarded-For escaped the limit: %d, want 429", code)
	}
}
