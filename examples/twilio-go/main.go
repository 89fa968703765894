// Command twilio-go provisions the first trunk on an xtrunk edge with
// Twilio's own Go helper library (github.com/twilio/twilio-go), as
// examples/provision.sh does with curl: a trunk, a credential list with
// the PBX's credential, an IP ACL, a DID and an origination URL.
//
//	set -a; . /etc/xtrunk/credentials; set +a
//	go run ./examples/twilio-go -api http://127.0.0.1:8080 -domain example.net
//
// The only change twilio-go needs to talk to xtrunk is an HTTP transport
// that sends its requests to the edge instead of api.twilio.com.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/twilio/twilio-go/client"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"
	trunking "github.com/twilio/twilio-go/rest/trunking/v1"
)

// toEdge sends every request to the edge's API, whatever Twilio host the
// library aimed at (api.twilio.com, trunking.twilio.com).
type toEdge struct{ base *url.URL }

func (t toEdge) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.base.Scheme, t.base.Host, t.base.Host
	return http.DefaultTransport.RoundTrip(r)
}

func main() {
	apiURL := flag.String("api", "http://127.0.0.1:8080", "the edge's API (xtrunk api --listen)")
	domain := flag.String("domain", "example.net", "the domain given to xtrunk init --domain")
	pbx := flag.String("pbx", "203.0.113.50", "the customer PBX's address")
	did := flag.String("did", "+15551230002", "the DID to put on the trunk")
	flag.Parse()
	if err := run(*apiURL, *domain, *pbx, *did); err != nil {
		fmt.Fprintln(os.Stderr, "twilio-go example:", err)
		os.Exit(1)
	}
}

func run(apiURL, domain, pbx, did string) error {
	sid, token := os.Getenv("XTRUNK_ACCOUNT_SID"), os.Getenv("XTRUNK_AUTH_TOKEN")
	if sid == "" || token == "" {
		return fmt.Errorf("set XTRUNK_ACCOUNT_SID and XTRUNK_AUTH_TOKEN (set -a; . /etc/xtrunk/credentials)")
	}
	base, err := url.Parse(apiURL)
	if err != nil {
		return err
	}
	c := &client.Client{
		Credentials: client.NewCredentials(sid, token),
		HTTPClient:  &http.Client{Transport: toEdge{base}, Timeout: 30 * time.Second},
	}
	c.SetAccountSid(sid)
	tk, v2010 := trunking.NewApiServiceWithClient(c), twapi.NewApiServiceWithClient(c)

	trunk, err := tk.CreateTrunk((&trunking.CreateTrunkParams{}).SetFriendlyName("globex").SetDomainName("globex.pstn." + domain))
	if err != nil {
		return fmt.Errorf("trunk: %w", err)
	}
	cl, err := v2010.CreateSipCredentialList((&twapi.CreateSipCredentialListParams{}).SetFriendlyName("globex-pbx"))
	if err != nil {
		return fmt.Errorf("credential list: %w", err)
	}
	password := newPassword()
	if _, err := v2010.CreateSipCredential(*cl.Sid, (&twapi.CreateSipCredentialParams{}).SetUsername("pbx1").SetPassword(password)); err != nil {
		return fmt.Errorf("credential: %w", err)
	}
	if _, err := tk.CreateCredentialList(*trunk.Sid, (&trunking.CreateCredentialListParams{}).SetCredentialListSid(*cl.Sid)); err != nil {
		return fmt.Errorf("attach credential list: %w", err)
	}
	acl, err := v2010.CreateSipIpAccessControlList((&twapi.CreateSipIpAccessControlListParams{}).SetFriendlyName("globex-office"))
	if err != nil {
		return fmt.Errorf("IP ACL: %w", err)
	}
	if _, err := v2010.CreateSipIpAddress(*acl.Sid, (&twapi.CreateSipIpAddressParams{}).SetFriendlyName("pbx1").SetIpAddress(pbx)); err != nil {
		return fmt.Errorf("IP address: %w", err)
	}
	if _, err := tk.CreateIpAccessControlList(*trunk.Sid, (&trunking.CreateIpAccessControlListParams{}).SetIpAccessControlListSid(*acl.Sid)); err != nil {
		return fmt.Errorf("attach IP ACL: %w", err)
	}
	num, err := v2010.CreateIncomingPhoneNumber((&twapi.CreateIncomingPhoneNumberParams{}).SetPhoneNumber(did))
	if err != nil {
		return fmt.Errorf("number: %w", err)
	}
	if _, err := tk.CreatePhoneNumber(*trunk.Sid, (&trunking.CreatePhoneNumberParams{}).SetPhoneNumberSid(*num.Sid)); err != nil {
		return fmt.Errorf("number on the trunk: %w", err)
	}
	ou := (&trunking.CreateOriginationUrlParams{}).SetFriendlyName("pbx1").SetSipUrl("sip:" + pbx + ":5060").
		SetPriority(10).SetWeight(10).SetEnabled(true)
	if _, err := tk.CreateOriginationUrl(*trunk.Sid, ou); err != nil {
		return fmt.Errorf("origination URL: %w", err)
	}
	fmt.Printf("trunk %s: %s, user pbx1 password %s, ACL %s, DID %s -> sip:%s:5060\n", *trunk.Sid, *trunk.DomainName, password, pbx, did, pbx)
	return nil
}

// newPassword meets xtrunk's rule for SIP passwords: 12 characters or
// more, a digit, both cases.
func newPassword() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "Pbx-" + hex.EncodeToString(b) + "9"
}
