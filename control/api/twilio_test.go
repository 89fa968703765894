package api_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	twapi "github.com/twilio/twilio-go/rest/api/v2010"
	trunking "github.com/twilio/twilio-go/rest/trunking/v1"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

// More than one default page of everything that can have that many.
const many = 55

// TestTwilioClient drives every resource through Twilio's own Go library,
// on both backends.
func TestTwilioClient(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		t.Run("Trunks", e.testTrunks)
		t.Run("OriginationUrls", e.testOriginationURLs)
		t.Run("IpAccessControlLists", e.testACLs)
		t.Run("CredentialLists", e.testCredentialLists)
		t.Run("PhoneNumbers", e.testPhoneNumbers)
		t.Run("OutgoingCallerIds", e.testCallerIDs)
		t.Run("Calls", e.testCalls)
		t.Run("Recordings", e.testRecordings)
		t.Run("Accounts", e.testAccounts)
		t.Run("Errors", e.testErrors)
	})
}

func (e *env) testTrunks(t *testing.T) {
	p := &trunking.CreateTrunkParams{}
	p.SetFriendlyName("acme").SetDomainName("acme.pstn.example.net").SetDisasterRecoveryUrl("https://dr.example.com/twiml").
		SetDisasterRecoveryMethod("GET").SetTransferMode("enable-all").SetTransferCallerId("from-transferor").SetSecure(true).SetCnamLookupEnabled(true)
	tr := r(e.tk.CreateTrunk(p)).must(t)
	if !store.ValidSid("TK", *tr.Sid) || *tr.AccountSid != e.main.Sid || *tr.DomainName != "acme.pstn.example.net" ||
		*tr.DisasterRecoveryMethod != "GET" || *tr.TransferMode != "enable-all" || *tr.TransferCallerId != "from-transferor" ||
		!*tr.Secure || !*tr.CnamLookupEnabled || *tr.SymmetricRtpEnabled || *tr.AuthType != "" || len(*tr.AuthTypeSet) != 0 {
		t.Fatalf("created: %+v", tr)
	}
	rec, _ := (*tr.Recording).(map[string]any)
	if rec["mode"] != "do-not-record" || rec["trim"] != "do-not-trim" {
		t.Fatalf("recording: %v", *tr.Recording)
	}
	if !strings.HasSuffix(*tr.Url, "/v1/Trunks/"+*tr.Sid) || (*tr.Links)["origination_urls"] != *tr.Url+"/OriginationUrls" {
		t.Fatalf("url/links: %s %v", *tr.Url, *tr.Links)
	}
	if tr.DateCreated == nil || time.Since(*tr.DateCreated) > time.Minute {
		t.Fatalf("date_created: %v", tr.DateCreated)
	}
	got := r(e.tk.FetchTrunk(*tr.Sid)).must(t)
	if *got.FriendlyName != "acme" || *got.DomainName != *tr.DomainName {
		t.Fatalf("fetched: %+v", got)
	}
	up := &trunking.UpdateTrunkParams{}
	up.SetFriendlyName("acme two").SetSecure(false).SetDomainName("acme-2.pstn.example.net")
	got = r(e.tk.UpdateTrunk(*tr.Sid, up)).must(t)
	if *got.FriendlyName != "acme two" || *got.Secure || *got.DomainName != "acme-2.pstn.example.net" || *got.TransferMode != "enable-all" {
		t.Fatalf("updated: %+v", got)
	}

	// Recording sub-resource
	rs := r(e.tk.FetchRecording(*tr.Sid)).must(t)
	if *rs.Mode != "do-not-record" || *rs.Trim != "do-not-trim" {
		t.Fatalf("recording: %+v", rs)
	}
	rs = r(e.tk.UpdateRecording(*tr.Sid, (&trunking.UpdateRecordingParams{}).SetMode("record-from-ringing-dual").SetTrim("trim-silence"))).must(t)
	if *rs.Mode != "record-from-ringing-dual" || *rs.Trim != "trim-silence" {
		t.Fatalf("recording: %+v", rs)
	}
	_, err := e.tk.UpdateRecording(*tr.Sid, (&trunking.UpdateRecordingParams{}).SetMode("record-everything"))
	twErr(t, err, 400, store.CodeInvalidParameter)
	if got = r(e.tk.FetchTrunk(*tr.Sid)).must(t); (*got.Recording).(map[string]any)["mode"] != "record-from-ringing-dual" {
		t.Fatal("trunk shows its recording settings")
	}

	// paging: more than one default page, followed by twilio-go itself
	for i := 0; i < many; i++ {
		r(e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetFriendlyName(fmt.Sprintf("bulk %02d", i)))).must(t)
	}
	all := r(e.tk.ListTrunk(nil)).must(t)
	if len(all) != many+1 {
		t.Fatalf("listed %d trunks", len(all))
	}
	small := r(e.tk.ListTrunk((&trunking.ListTrunkParams{}).SetPageSize(7))).must(t)
	if len(small) != many+1 || *small[0].Sid != *tr.Sid || *small[many].FriendlyName != fmt.Sprintf("bulk %02d", many-1) {
		t.Fatalf("listed %d trunks in pages of 7", len(small))
	}
	limited := r(e.tk.ListTrunk((&trunking.ListTrunkParams{}).SetLimit(12))).must(t)
	if len(limited) != 12 {
		t.Fatalf("limit 12: %d", len(limited))
	}
	page := r(e.tk.PageTrunk((&trunking.ListTrunkParams{}).SetPageSize(50), "", "")).must(t)
	if len(page.Trunks) != 50 || page.Meta.Key != "trunks" || page.Meta.PageSize != 50 || page.Meta.NextPageUrl == nil ||
		!strings.Contains(*page.Meta.NextPageUrl, "PageToken=PA") || page.Meta.PreviousPageUrl != nil {
		t.Fatalf("page meta: %+v", page.Meta)
	}
	next := r(e.tk.PageTrunk((&trunking.ListTrunkParams{}).SetPageSize(50), tokenOf(*page.Meta.NextPageUrl), "1")).must(t)
	if len(next.Trunks) != many+1-50 || next.Meta.NextPageUrl != nil || next.Meta.Page != 1 || next.Meta.PreviousPageUrl == nil {
		t.Fatalf("second page: %d %+v", len(next.Trunks), next.Meta)
	}
	for _, x := range all[1:] {
		noErr(t, e.tk.DeleteTrunk(*x.Sid))
	}
	_, err = e.tk.FetchTrunk(*all[1].Sid)
	twErr(t, err, 404, 20404)
}

func tokenOf(u string) string {
	i := strings.Index(u, "PageToken=")
	return strings.SplitN(u[i+len("PageToken="):], "&", 2)[0]
}

func (e *env) testOriginationURLs(t *testing.T) {
	tr := r(e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetFriendlyName("ou"))).must(t)
	var sids []string
	for i := 0; i < store.MaxOriginationURLs; i++ {
		p := (&trunking.CreateOriginationUrlParams{}).SetSipUrl(fmt.Sprintf("sip:pbx%d.example.com;transport=tls?X-Tenant=acme", i)).
			SetFriendlyName(fmt.Sprintf("pbx %d", i)).SetPriority(i).SetWeight(100 - i).SetEnabled(i%2 == 0)
		o := r(e.tk.CreateOriginationUrl(*tr.Sid, p)).must(t)
		if !store.ValidSid("OU", *o.Sid) || *o.TrunkSid != *tr.Sid || o.Priority != i || o.Weight != 100-i || *o.Enabled != (i%2 == 0) {
			t.Fatalf("created: %+v", o)
		}
		sids = append(sids, *o.Sid)
	}
	_, err := e.tk.CreateOriginationUrl(*tr.Sid, (&trunking.CreateOriginationUrlParams{}).SetSipUrl("sip:eleven.example.com"))
	twErr(t, err, 400, store.CodeInvalidParameter)
	for _, bad := range []*trunking.CreateOriginationUrlParams{
		(&trunking.CreateOriginationUrlParams{}).SetSipUrl("http://pbx.example.com"),
		(&trunking.CreateOriginationUrlParams{}).SetSipUrl("sip:pbx.example.com").SetPriority(65536),
		(&trunking.CreateOriginationUrlParams{}).SetSipUrl("sip:pbx.example.com").SetWeight(0),
		(&trunking.CreateOriginationUrlParams{}).SetFriendlyName("no url"),
	} {
		_, err := e.tk.CreateOriginationUrl(*tr.Sid, bad)
		twErr(t, err, 400, store.CodeInvalidParameter)
	}
	list := r(e.tk.ListOriginationUrl(*tr.Sid, (&trunking.ListOriginationUrlParams{}).SetPageSize(3))).must(t)
	if len(list) != store.MaxOriginationURLs {
		t.Fatalf("listed %d", len(list))
	}
	o := r(e.tk.UpdateOriginationUrl(*tr.Sid, sids[1], (&trunking.UpdateOriginationUrlParams{}).SetEnabled(true).SetPriority(0).SetWeight(65535))).must(t)
	if !*o.Enabled || o.Priority != 0 || o.Weight != 65535 || *o.SipUrl != "sip:pbx1.example.com;transport=tls?X-Tenant=acme" {
		t.Fatalf("updated: %+v", o)
	}
	if o = r(e.tk.FetchOriginationUrl(*tr.Sid, sids[1])).must(t); o.Weight != 65535 {
		t.Fatal("fetch after update")
	}
	noErr(t, e.tk.DeleteOriginationUrl(*tr.Sid, sids[0]))
	r(e.tk.CreateOriginationUrl(*tr.Sid, (&trunking.CreateOriginationUrlParams{}).SetSipUrl("sip:[2001:db8::1]:5061;edge=dublin"))).must(t)
	_, err = e.tk.FetchOriginationUrl(*tr.Sid, sids[0])
	twErr(t, err, 404, 20404)
}

func (e *env) testACLs(t *testing.T) {
	acl := r(e.v10.CreateSipIpAccessControlList((&twapi.CreateSipIpAccessControlListParams{}).SetFriendlyName("carriers"))).must(t)
	if !store.ValidSid("AL", *acl.Sid) || *acl.AccountSid != e.main.Sid || !strings.HasSuffix(*acl.Uri, *acl.Sid+".json") {
		t.Fatalf("acl: %+v", acl)
	}
	for i := 0; i < many; i++ {
		p := (&twapi.CreateSipIpAddressParams{}).SetFriendlyName(fmt.Sprintf("gw %d", i)).SetIpAddress(fmt.Sprintf("198.51.100.%d", i+1))
		if i == 0 {
			p.SetIpAddress("203.0.113.0").SetCidrPrefixLength(24)
		}
		r(e.v10.CreateSipIpAddress(*acl.Sid, p)).must(t)
	}
	ips := r(e.v10.ListSipIpAddress(*acl.Sid, nil)).must(t)
	if len(ips) != many || *ips[0].IpAddress != "203.0.113.0" || ips[0].CidrPrefixLength != 24 || ips[1].CidrPrefixLength != 32 ||
		*ips[1].IpAccessControlListSid != *acl.Sid || !store.ValidSid("IP", *ips[1].Sid) {
		t.Fatalf("listed %d: %+v", len(ips), ips[0])
	}
	ip := r(e.v10.UpdateSipIpAddress(*acl.Sid, *ips[1].Sid, (&twapi.UpdateSipIpAddressParams{}).SetIpAddress("2001:db8::7").SetFriendlyName("v6"))).must(t)
	if *ip.IpAddress != "2001:db8::7" || ip.CidrPrefixLength != 128 || *ip.FriendlyName != "v6" {
		t.Fatalf("updated: %+v", ip)
	}
	if ip = r(e.v10.FetchSipIpAddress(*acl.Sid, *ips[1].Sid, nil)).must(t); *ip.FriendlyName != "v6" {
		t.Fatal("fetch")
	}
	_, err := e.v10.CreateSipIpAddress(*acl.Sid, (&twapi.CreateSipIpAddressParams{}).SetFriendlyName("x").SetIpAddress("not-an-ip"))
	twErr(t, err, 400, store.CodeInvalidParameter)
	_, err = e.v10.CreateSipIpAddress(*acl.Sid, (&twapi.CreateSipIpAddressParams{}).SetIpAddress("192.0.2.1"))
	twErr(t, err, 400, store.CodeInvalidParameter) // FriendlyName is required
	noErr(t, e.v10.DeleteSipIpAddress(*acl.Sid, *ips[2].Sid, nil))
	_, err = e.v10.FetchSipIpAddress(*acl.Sid, *ips[2].Sid, nil)
	twErr(t, err, 404, 20404)

	for i := 0; i < many; i++ {
		r(e.v10.CreateSipIpAccessControlList((&twapi.CreateSipIpAccessControlListParams{}).SetFriendlyName(fmt.Sprintf("acl %d", i)))).must(t)
	}
	acls := r(e.v10.ListSipIpAccessControlList(nil)).must(t)
	if len(acls) != many+1 {
		t.Fatalf("listed %d ACLs", len(acls))
	}
	acl = r(e.v10.UpdateSipIpAccessControlList(*acl.Sid, (&twapi.UpdateSipIpAccessControlListParams{}).SetFriendlyName("renamed"))).must(t)
	if *acl.FriendlyName != "renamed" {
		t.Fatal("rename")
	}

	// attach to a trunk
	tr := r(e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetFriendlyName("acl trunk"))).must(t)
	for _, l := range acls[:5] {
		at := r(e.tk.CreateIpAccessControlList(*tr.Sid, (&trunking.CreateIpAccessControlListParams{}).SetIpAccessControlListSid(*l.Sid))).must(t)
		if *at.Sid != *l.Sid || *at.TrunkSid != *tr.Sid || !strings.HasSuffix(*at.Url, "/v1/Trunks/"+*tr.Sid+"/IpAccessControlLists/"+*l.Sid) {
			t.Fatalf("attached: %+v", at)
		}
	}
	_, err = e.tk.CreateIpAccessControlList(*tr.Sid, (&trunking.CreateIpAccessControlListParams{}).SetIpAccessControlListSid(*acls[0].Sid))
	twErr(t, err, 400, store.CodeInvalidParameter)
	attached := r(e.tk.ListIpAccessControlList(*tr.Sid, (&trunking.ListIpAccessControlListParams{}).SetPageSize(2))).must(t)
	if len(attached) != 5 {
		t.Fatalf("attached %d", len(attached))
	}
	if got := r(e.tk.FetchTrunk(*tr.Sid)).must(t); *got.AuthType != "IP_ACL" || strings.Join(*got.AuthTypeSet, ",") != "IP_ACL" {
		t.Fatalf("auth type %q", *got.AuthType)
	}
	r(e.tk.FetchIpAccessControlList(*tr.Sid, *acls[1].Sid)).must(t)
	noErr(t, e.tk.DeleteIpAccessControlList(*tr.Sid, *acls[1].Sid))
	_, err = e.tk.FetchIpAccessControlList(*tr.Sid, *acls[1].Sid)
	twErr(t, err, 404, 20404)
	// deleting the list itself detaches it as well
	noErr(t, e.v10.DeleteSipIpAccessControlList(*acls[0].Sid, nil))
	if attached = r(e.tk.ListIpAccessControlList(*tr.Sid, nil)).must(t); len(attached) != 3 {
		t.Fatalf("attached after deletes: %d", len(attached))
	}
	_, err = e.v10.FetchSipIpAccessControlList(*acls[0].Sid, nil)
	twErr(t, err, 404, 20404)
}

func (e *env) testCredentialLists(t *testing.T) {
	cl := r(e.v10.CreateSipCredentialList((&twapi.CreateSipCredentialListParams{}).SetFriendlyName("pbx users"))).must(t)
	if !store.ValidSid("CL", *cl.Sid) || (*cl.SubresourceUris)["credentials"] == nil {
		t.Fatalf("cl: %+v", cl)
	}
	for i := 0; i < many; i++ {
		c := r(e.v10.CreateSipCredential(*cl.Sid, (&twapi.CreateSipCredentialParams{}).SetUsername(fmt.Sprintf("user%02d", i)).SetPassword(fmt.Sprintf("Secret-Passw0rd-%02d", i)))).must(t)
		if !store.ValidSid("CR", *c.Sid) || *c.CredentialListSid != *cl.Sid {
			t.Fatalf("credential: %+v", c)
		}
	}
	creds := r(e.v10.ListSipCredential(*cl.Sid, nil)).must(t)
	if len(creds) != many || *creds[0].Username != "user00" {
		t.Fatalf("listed %d", len(creds))
	}
	for _, weak := range []string{"short", "alllowercase123", "ALLUPPERCASE123", "NoDigitsAtAllHere"} {
		_, err := e.v10.CreateSipCredential(*cl.Sid, (&twapi.CreateSipCredentialParams{}).SetUsername("weak").SetPassword(weak))
		twErr(t, err, 400, store.CodeInvalidParameter)
	}
	_, err := e.v10.CreateSipCredential(*cl.Sid, (&twapi.CreateSipCredentialParams{}).SetUsername("user00").SetPassword("Another-Passw0rd"))
	twErr(t, err, 400, store.CodeInvalidParameter)
	_, err = e.v10.UpdateSipCredential(*cl.Sid, *creds[0].Sid, (&twapi.UpdateSipCredentialParams{}).SetPassword("weak"))
	twErr(t, err, 400, store.CodeInvalidParameter)
	c := r(e.v10.UpdateSipCredential(*cl.Sid, *creds[0].Sid, (&twapi.UpdateSipCredentialParams{}).SetPassword("Changed-Passw0rd"))).must(t)
	stored := r(e.st.Credential(ctxT(t), e.main.Sid, *cl.Sid, *c.Sid)).must(t)
	if stored.HA1MD5 != store.HA1MD5("user00", "example.net", "Changed-Passw0rd") {
		t.Fatal("password change did not reach the store")
	}
	r(e.v10.FetchSipCredential(*cl.Sid, *creds[1].Sid, nil)).must(t)
	noErr(t, e.v10.DeleteSipCredential(*cl.Sid, *creds[1].Sid, nil))
	_, err = e.v10.FetchSipCredential(*cl.Sid, *creds[1].Sid, nil)
	twErr(t, err, 404, 20404)

	for i := 0; i < many; i++ {
		r(e.v10.CreateSipCredentialList((&twapi.CreateSipCredentialListParams{}).SetFriendlyName(fmt.Sprintf("cl %d", i)))).must(t)
	}
	cls := r(e.v10.ListSipCredentialList(nil)).must(t)
	if len(cls) != many+1 {
		t.Fatalf("listed %d lists", len(cls))
	}
	cl = r(e.v10.UpdateSipCredentialList(*cl.Sid, (&twapi.UpdateSipCredentialListParams{}).SetFriendlyName("renamed"))).must(t)
	if *r(e.v10.FetchSipCredentialList(*cl.Sid, nil)).must(t).FriendlyName != "renamed" {
		t.Fatal("rename")
	}

	tr := r(e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetFriendlyName("cl trunk"))).must(t)
	at := r(e.tk.CreateCredentialList(*tr.Sid, (&trunking.CreateCredentialListParams{}).SetCredentialListSid(*cl.Sid))).must(t)
	if *at.Sid != *cl.Sid || *at.TrunkSid != *tr.Sid || *at.FriendlyName != "renamed" {
		t.Fatalf("attached: %+v", at)
	}
	acl := r(e.v10.CreateSipIpAccessControlList((&twapi.CreateSipIpAccessControlListParams{}).SetFriendlyName("both"))).must(t)
	r(e.tk.CreateIpAccessControlList(*tr.Sid, (&trunking.CreateIpAccessControlListParams{}).SetIpAccessControlListSid(*acl.Sid))).must(t)
	if got := r(e.tk.FetchTrunk(*tr.Sid)).must(t); strings.Join(*got.AuthTypeSet, ",") != "CREDENTIAL_LIST,IP_ACL" {
		t.Fatalf("auth types %v", *got.AuthTypeSet)
	}
	if l := r(e.tk.ListCredentialList(*tr.Sid, nil)).must(t); len(l) != 1 {
		t.Fatal("trunk credential lists")
	}
	r(e.tk.FetchCredentialList(*tr.Sid, *cl.Sid)).must(t)
	noErr(t, e.tk.DeleteCredentialList(*tr.Sid, *cl.Sid))
	_, err = e.tk.FetchCredentialList(*tr.Sid, *cl.Sid)
	twErr(t, err, 404, 20404)
	noErr(t, e.v10.DeleteSipCredentialList(*cl.Sid, nil))
	_, err = e.v10.FetchSipCredential(*cl.Sid, *creds[2].Sid, nil)
	twErr(t, err, 404, 20404)
}

func (e *env) testPhoneNumbers(t *testing.T) {
	tr := r(e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetFriendlyName("numbers"))).must(t)
	var sids []string
	for i := 0; i < many; i++ {
		p := (&twapi.CreateIncomingPhoneNumberParams{}).SetPhoneNumber(fmt.Sprintf("+1415555%04d", i))
		if i == 0 {
			p.SetFriendlyName("main line").SetVoiceUrl("https://example.com/voice").SetTrunkSid(*tr.Sid)
		}
		n := r(e.v10.CreateIncomingPhoneNumber(p)).must(t)
		if !store.ValidSid("PN", *n.Sid) || *n.PhoneNumber != fmt.Sprintf("+1415555%04d", i) {
			t.Fatalf("number: %+v", n)
		}
		sids = append(sids, *n.Sid)
	}
	n0 := r(e.v10.FetchIncomingPhoneNumber(sids[0], nil)).must(t)
	if *n0.FriendlyName != "main line" || *n0.VoiceUrl != "https://example.com/voice" || *n0.TrunkSid != *tr.Sid || !n0.Capabilities.Voice {
		t.Fatalf("fetched: %+v", n0)
	}
	all := r(e.v10.ListIncomingPhoneNumber(nil)).must(t)
	if len(all) != many {
		t.Fatalf("listed %d", len(all))
	}
	if f := r(e.v10.ListIncomingPhoneNumber((&twapi.ListIncomingPhoneNumberParams{}).SetPhoneNumber("5550007"))).must(t); len(f) != 1 || *f[0].Sid != sids[7] {
		t.Fatalf("filtered: %d", len(f))
	}
	pg := r(e.v10.PageIncomingPhoneNumber((&twapi.ListIncomingPhoneNumberParams{}).SetPageSize(20), "", "")).must(t)
	if len(pg.IncomingPhoneNumbers) != 20 || pg.NextPageUri == nil || pg.PageSize != 20 || pg.End != 19 ||
		!strings.HasPrefix(pg.FirstPageUri, "/2010-04-01/Accounts/"+e.main.Sid+"/IncomingPhoneNumbers.json?") {
		t.Fatalf("page: %+v", pg)
	}

	for _, bad := range []string{"4155550100", "+0123", "+1 415 555 0100"} {
		_, err := e.v10.CreateIncomingPhoneNumber((&twapi.CreateIncomingPhoneNumberParams{}).SetPhoneNumber(bad))
		twErr(t, err, 400, store.CodePhoneInvalid)
	}
	_, err := e.v10.CreateIncomingPhoneNumber((&twapi.CreateIncomingPhoneNumberParams{}).SetPhoneNumber("+14155550001"))
	twErr(t, err, 400, store.CodePhoneUnavailable)

	// associations through the trunk
	for _, sid := range sids[1:many] {
		pn := r(e.tk.CreatePhoneNumber(*tr.Sid, (&trunking.CreatePhoneNumberParams{}).SetPhoneNumberSid(sid))).must(t)
		if *pn.Sid != sid || *pn.TrunkSid != *tr.Sid {
			t.Fatalf("associated: %+v", pn)
		}
	}
	onTrunk := r(e.tk.ListPhoneNumber(*tr.Sid, nil)).must(t)
	if len(onTrunk) != many {
		t.Fatalf("on trunk: %d", len(onTrunk))
	}
	other := r(e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetFriendlyName("other"))).must(t)
	_, err = e.tk.CreatePhoneNumber(*other.Sid, (&trunking.CreatePhoneNumberParams{}).SetPhoneNumberSid(sids[1]))
	twErr(t, err, 400, store.CodeInvalidParameter) // a number is on one trunk at most
	pn := r(e.tk.FetchPhoneNumber(*tr.Sid, sids[1])).must(t)
	if *pn.PhoneNumber != "+14155550001" {
		t.Fatal(*pn.PhoneNumber)
	}
	noErr(t, e.tk.DeletePhoneNumber(*tr.Sid, sids[1]))
	_, err = e.tk.FetchPhoneNumber(*tr.Sid, sids[1])
	twErr(t, err, 404, 20404)
	if n := r(e.v10.FetchIncomingPhoneNumber(sids[1], nil)).must(t); n.TrunkSid != nil {
		t.Fatal("disassociated number still names a trunk")
	}
	// moving via the number's TrunkSid, and clearing it
	n := r(e.v10.UpdateIncomingPhoneNumber(sids[2], (&twapi.UpdateIncomingPhoneNumberParams{}).SetTrunkSid(*other.Sid).SetFriendlyName("moved"))).must(t)
	if *n.TrunkSid != *other.Sid || *n.FriendlyName != "moved" {
		t.Fatalf("moved: %+v", n)
	}
	if n = r(e.v10.UpdateIncomingPhoneNumber(sids[2], (&twapi.UpdateIncomingPhoneNumberParams{}).SetTrunkSid(""))).must(t); n.TrunkSid != nil {
		t.Fatal("cleared")
	}

	// deleting a trunk disassociates its numbers and does not release them
	noErr(t, e.tk.DeleteTrunk(*tr.Sid))
	left := r(e.v10.ListIncomingPhoneNumber(nil)).must(t)
	if len(left) != many {
		t.Fatalf("numbers after trunk delete: %d", len(left))
	}
	for _, n := range left {
		if n.TrunkSid != nil {
			t.Fatalf("%s still on trunk %s", *n.PhoneNumber, *n.TrunkSid)
		}
	}
	noErr(t, e.v10.DeleteIncomingPhoneNumber(sids[3], nil))
	_, err = e.v10.FetchIncomingPhoneNumber(sids[3], nil)
	twErr(t, err, 404, 20404)
}

func (e *env) testCallerIDs(t *testing.T) {
	for i := 0; i < many; i++ {
		v := r(e.v10.CreateValidationRequest((&twapi.CreateValidationRequestParams{}).SetPhoneNumber(fmt.Sprintf("+1650555%04d", i)).SetFriendlyName(fmt.Sprintf("desk %d", i)))).must(t)
		if *v.PhoneNumber != fmt.Sprintf("+1650555%04d", i) || len(*v.ValidationCode) != 6 || *v.AccountSid != e.main.Sid {
			t.Fatalf("validation: %+v", v)
		}
	}
	_, err := e.v10.CreateValidationRequest((&twapi.CreateValidationRequestParams{}).SetPhoneNumber("+16505550000"))
	twErr(t, err, 400, store.CodeCallerIDExists)
	_, err = e.v10.CreateValidationRequest((&twapi.CreateValidationRequestParams{}).SetPhoneNumber("6505550000"))
	twErr(t, err, 400, store.CodePhoneInvalid)
	ids := r(e.v10.ListOutgoingCallerId(nil)).must(t)
	if len(ids) != many || !store.ValidSid("PN", *ids[0].Sid) || *ids[0].FriendlyName != "desk 0" {
		t.Fatalf("listed %d", len(ids))
	}
	if f := r(e.v10.ListOutgoingCallerId((&twapi.ListOutgoingCallerIdParams{}).SetPhoneNumber("+16505550042"))).must(t); len(f) != 1 {
		t.Fatal("filter")
	}
	c := r(e.v10.UpdateOutgoingCallerId(*ids[0].Sid, (&twapi.UpdateOutgoingCallerIdParams{}).SetFriendlyName("front desk"))).must(t)
	if *c.FriendlyName != "front desk" || *r(e.v10.FetchOutgoingCallerId(*ids[0].Sid, nil)).must(t).FriendlyName != "front desk" {
		t.Fatal("rename")
	}
	noErr(t, e.v10.DeleteOutgoingCallerId(*ids[0].Sid, nil))
	_, err = e.v10.FetchOutgoingCallerId(*ids[0].Sid, nil)
	twErr(t, err, 404, 20404)
}

func (e *env) testCalls(t *testing.T) {
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	trunk := store.NewSid("TK")
	var sids []string
	for i := 0; i < many; i++ {
		c := r(e.st.InsertCall(ctxT(t), store.Call{
			AccountSid: e.main.Sid, TrunkSid: trunk, Direction: []string{store.DirectionTerminating, store.DirectionOriginating}[i%2],
			From: "+14155550100", To: fmt.Sprintf("+4420718%05d", i), Status: "completed", Start: start,
			Answer: start.Add(time.Second), End: start.Add(31 * time.Second), Duration: 30, SIPResponseCode: 200, HangupCause: "bye",
		})).must(t)
		sids = append(sids, c.Sid)
	}
	calls := r(e.v10.ListCall(nil)).must(t)
	if len(calls) != many || *calls[0].Sid != sids[many-1] {
		t.Fatalf("listed %d (newest first)", len(calls))
	}
	c := r(e.v10.FetchCall(sids[0], nil)).must(t)
	if *c.TrunkSid != trunk || *c.Direction != store.DirectionTerminating || *c.Duration != "30" || *c.Status != "completed" ||
		*c.StartTime != "Wed, 04 Mar 2026 05:06:07 +0000" || *c.To != "+442071800000" {
		t.Fatalf("call: %+v", c)
	}
	if f := r(e.v10.ListCall((&twapi.ListCallParams{}).SetTo("+442071800042"))).must(t); len(f) != 1 {
		t.Fatal("filter")
	}
	_, err := e.v10.CreateCall((&twapi.CreateCallParams{}).SetTo("+14155550100").SetFrom("+14155550101").SetUrl("https://example.com"))
	twErr(t, err, 405, 20004) // CDRs are read-only
	twErr(t, e.v10.DeleteCall(sids[0], nil), 405, 20004)
}

func (e *env) testRecordings(t *testing.T) {
	call := r(e.st.InsertCall(ctxT(t), store.Call{AccountSid: e.main.Sid, Direction: store.DirectionOriginating, Status: "completed"})).must(t)
	dir := e.recDir
	wav := append([]byte("RIFF\x24\x00\x00\x00WAVEfmt "), make([]byte, 28)...)
	var sids []string
	for i := 0; i < many; i++ {
		name := fmt.Sprintf("r%d.wav", i)
		noErr(t, os.WriteFile(filepath.Join(dir, name), wav, 0o644))
		rec := r(e.st.InsertRecording(ctxT(t), store.Recording{AccountSid: e.main.Sid, CallSid: call.Sid, Channels: 1 + i%2, Duration: i, MediaFile: name})).must(t)
		sids = append(sids, rec.Sid)
	}
	recs := r(e.v10.ListRecording(nil)).must(t)
	if len(recs) != many {
		t.Fatalf("listed %d", len(recs))
	}
	rec := r(e.v10.FetchRecording(sids[1], nil)).must(t)
	if *rec.CallSid != call.Sid || *rec.Channels != 2 || *rec.Duration != "1" || *rec.Source != "Trunking" || *rec.Status != "completed" {
		t.Fatalf("recording: %+v", rec)
	}
	if f := r(e.v10.ListRecording((&twapi.ListRecordingParams{}).SetCallSid(call.Sid).SetPageSize(10))).must(t); len(f) != many {
		t.Fatal("by call")
	}
	// the media: Twilio's media_url + ".wav", with the account's credentials
	get := func(u string, auth bool) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if auth {
			req.SetBasicAuth(e.main.Sid, e.main.AuthToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get(*rec.MediaUrl+".wav", true)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "audio/x-wav" || string(body) != string(wav) {
		t.Fatalf("media: %d %q %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	if resp = get(*rec.MediaUrl+".wav", false); resp.StatusCode != 401 {
		t.Fatalf("media without credentials: %d", resp.StatusCode)
	}
	resp.Body.Close()
	noErr(t, e.v10.DeleteRecording(sids[1], nil))
	_, err := e.v10.FetchRecording(sids[1], nil)
	twErr(t, err, 404, 20404)
	if _, err := os.Stat(filepath.Join(dir, "r1.wav")); !os.IsNotExist(err) {
		t.Fatal("media file outlived its recording")
	}
	if resp = get(*rec.MediaUrl+".wav", true); resp.StatusCode != 404 {
		t.Fatalf("media of a deleted recording: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func (e *env) testAccounts(t *testing.T) {
	var subs []twapi.ApiV2010Account
	for i := 0; i < many; i++ {
		subs = append(subs, *r(e.v10.CreateAccount((&twapi.CreateAccountParams{}).SetFriendlyName(fmt.Sprintf("customer %02d", i)))).must(t))
	}
	s0 := subs[0]
	if !store.ValidSid("AC", *s0.Sid) || *s0.OwnerAccountSid != e.main.Sid || *s0.Status != "active" || *s0.Type != "Full" || len(*s0.AuthToken) != 32 {
		t.Fatalf("subaccount: %+v", s0)
	}
	all := r(e.v10.ListAccount(nil)).must(t)
	if len(all) != many+1 {
		t.Fatalf("listed %d accounts", len(all))
	}
	if f := r(e.v10.ListAccount((&twapi.ListAccountParams{}).SetFriendlyName("customer 07"))).must(t); len(f) != 1 || *f[0].Sid != *subs[7].Sid {
		t.Fatal("filter")
	}
	main := r(e.v10.FetchAccount(e.main.Sid)).must(t)
	if *main.OwnerAccountSid != e.main.Sid || *main.Type != "Full" {
		t.Fatalf("main: %+v", main)
	}

	// the subaccount's own credentials work, and see only its own things
	subTK, subAPI := e.clients(*s0.Sid, *s0.AuthToken)
	st := r(subTK.CreateTrunk((&trunking.CreateTrunkParams{}).SetDomainName("sub.acme-2.pstn.example.net"))).must(t) // parent's domain
	if *st.AccountSid != *s0.Sid {
		t.Fatal("trunk account")
	}
	if l := r(subTK.ListTrunk(nil)).must(t); len(l) != 1 {
		t.Fatalf("the subaccount sees %d trunks", len(l))
	}
	if l := r(subAPI.ListAccount(nil)).must(t); len(l) != 1 || *l[0].Sid != *s0.Sid {
		t.Fatal("a subaccount lists only itself")
	}
	// the parent acts for its subaccount through the path
	n := r(e.v10.CreateIncomingPhoneNumber((&twapi.CreateIncomingPhoneNumberParams{}).SetPathAccountSid(*s0.Sid).SetPhoneNumber("+13105550100"))).must(t)
	if *n.AccountSid != *s0.Sid {
		t.Fatal("number account")
	}
	if l := r(subAPI.ListIncomingPhoneNumber(nil)).must(t); len(l) != 1 {
		t.Fatal("the subaccount sees the number its parent bought for it")
	}
	// ...but not the other way round
	_, err := subAPI.FetchAccount(e.main.Sid)
	twErr(t, err, 404, 20404)
	_, err = subAPI.ListIncomingPhoneNumber((&twapi.ListIncomingPhoneNumberParams{}).SetPathAccountSid(e.main.Sid))
	twErr(t, err, 404, 20404)
	_, err = subAPI.CreateAccount(nil)
	twErr(t, err, 400, store.CodeInvalidParameter)

	upd := r(e.v10.UpdateAccount(*s0.Sid, (&twapi.UpdateAccountParams{}).SetFriendlyName("renamed").SetStatus("suspended"))).must(t)
	if *upd.Status != "suspended" || *upd.FriendlyName != "renamed" {
		t.Fatalf("updated: %+v", upd)
	}
	_, err = subTK.ListTrunk(nil)
	twErr(t, err, 401, 20005) // a suspended account's credentials stop working
	_, err = e.v10.UpdateAccount(e.main.Sid, (&twapi.UpdateAccountParams{}).SetStatus("closed"))
	twErr(t, err, 400, store.CodeInvalidParameter)
	_, err = e.v10.UpdateAccount(*s0.Sid, (&twapi.UpdateAccountParams{}).SetStatus("frozen"))
	twErr(t, err, 400, store.CodeInvalidParameter)
}

func (e *env) testErrors(t *testing.T) {
	badTK, badAPI := e.clients(e.main.Sid, "0123456789abcdef0123456789abcdef")
	_, err := badTK.ListTrunk(nil)
	twErr(t, err, 401, 20003)
	_, err = badAPI.FetchAccount(e.main.Sid)
	twErr(t, err, 401, 20003)
	unknownTK, _ := e.clients(store.NewSid("AC"), "0123456789abcdef0123456789abcdef")
	_, err = unknownTK.ListTrunk(nil)
	twErr(t, err, 401, 20003)

	_, err = e.tk.FetchTrunk(store.NewSid("TK"))
	twErr(t, err, 404, 20404)
	_, err = e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetDomainName("acme.example.com"))
	twErr(t, err, 400, store.CodeInvalidDomain)
	_, err = e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetTransferMode("sometimes"))
	twErr(t, err, 400, store.CodeInvalidParameter)
	_, err = e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetDisasterRecoveryMethod("PUT"))
	twErr(t, err, 400, store.CodeInvalidParameter)

	// domain rules over the wire
	r(e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetDomainName("rules.pstn.example.net"))).must(t)
	_, err = e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetDomainName("RULES.pstn.example.net"))
	twErr(t, err, 400, store.CodeDomainTaken)
	_, err = e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetDomainName("x.nothere.pstn.example.net"))
	twErr(t, err, 400, store.CodeTrunkDependencies)
	r(e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetDomainName("x.rules.pstn.example.net"))).must(t)

	// isolation: another account's resources are 404, whatever the verb
	other := r(e.v10.CreateAccount((&twapi.CreateAccountParams{}).SetFriendlyName("stranger"))).must(t)
	oTK, oAPI := e.clients(*other.Sid, *other.AuthToken)
	mine := r(e.tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetFriendlyName("mine"))).must(t)
	acl := r(e.v10.CreateSipIpAccessControlList((&twapi.CreateSipIpAccessControlListParams{}).SetFriendlyName("mine"))).must(t)
	num := r(e.v10.CreateIncomingPhoneNumber((&twapi.CreateIncomingPhoneNumberParams{}).SetPhoneNumber("+18005550199"))).must(t)
	for name, err := range map[string]error{
		"fetch trunk":    second(oTK.FetchTrunk(*mine.Sid)),
		"update trunk":   second(oTK.UpdateTrunk(*mine.Sid, (&trunking.UpdateTrunkParams{}).SetFriendlyName("pwned"))),
		"delete trunk":   oTK.DeleteTrunk(*mine.Sid),
		"trunk urls":     second(oTK.ListOriginationUrl(*mine.Sid, nil)),
		"trunk record":   second(oTK.FetchRecording(*mine.Sid)),
		"fetch acl":      second(oAPI.FetchSipIpAccessControlList(*acl.Sid, nil)),
		"delete acl":     oAPI.DeleteSipIpAccessControlList(*acl.Sid, nil),
		"acl ips":        second(oAPI.ListSipIpAddress(*acl.Sid, nil)),
		"fetch number":   second(oAPI.FetchIncomingPhoneNumber(*num.Sid, nil)),
		"release number": oAPI.DeleteIncomingPhoneNumber(*num.Sid, nil),
		"path account":   second(oAPI.ListIncomingPhoneNumber((&twapi.ListIncomingPhoneNumberParams{}).SetPathAccountSid(e.main.Sid))),
		"attach acl":     second(oTK.CreateIpAccessControlList(*mine.Sid, (&trunking.CreateIpAccessControlListParams{}).SetIpAccessControlListSid(*acl.Sid))),
	} {
		if err == nil {
			t.Errorf("%s: the other account got through", name)
			continue
		}
		t.Run(name, func(t *testing.T) { twErr(t, err, 404, 20404) })
	}
	// the other account's own trunk cannot take my ACL or number either
	theirs := r(oTK.CreateTrunk(nil)).must(t)
	_, err = oTK.CreateIpAccessControlList(*theirs.Sid, (&trunking.CreateIpAccessControlListParams{}).SetIpAccessControlListSid(*acl.Sid))
	twErr(t, err, 404, 20404)
	_, err = oTK.CreatePhoneNumber(*theirs.Sid, (&trunking.CreatePhoneNumberParams{}).SetPhoneNumberSid(*num.Sid))
	twErr(t, err, 404, 20404)
	if got := r(e.tk.FetchTrunk(*mine.Sid)).must(t); *got.FriendlyName != "mine" {
		t.Fatal("changed by the other account")
	}
	names := []string{}
	for _, x := range r(oTK.ListTrunk(nil)).must(t) {
		names = append(names, *x.Sid)
	}
	sort.Strings(names)
	if len(names) != 1 || names[0] != *theirs.Sid {
		t.Fatalf("the other account lists %v", names)
	}
}

func second[T any](_ T, err error) error { return err }
