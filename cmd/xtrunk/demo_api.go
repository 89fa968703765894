package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// demoTrunks are what provisioning made, as the API named them.
type demoTrunks struct {
	acme, secure string // trunk SIDs
	acmeHost     string // acme's termination URI host (its DomainName)
	secureHost   string
}

// api sends one request to the edge's REST API with the operator's
// credentials, as `curl -u AC…:token -d …` would, and decodes the JSON.
// want is the status that means success.
func (d *demoLab) api(ctx context.Context, method, path string, form url.Values, want int) (map[string]any, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+demoAPIAddr+path, body)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(d.account, d.token)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := d.edge.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("%s %s: %d, not JSON: %w: %.200s", method, path, res.StatusCode, err, b)
		}
	}
	if res.StatusCode != want {
		return out, fmt.Errorf("%s %s: %d (want %d): %s", method, path, res.StatusCode, want, strings.TrimSpace(string(b)))
	}
	return out, nil
}

// create POSTs form to path, prints it the way it would be typed with
// curl (secrets masked), and returns the new resource's sid.
func (d *demoLab) create(ctx context.Context, what, path string, form url.Values) (string, error) {
	out, err := d.api(ctx, http.MethodPost, path, form, http.StatusCreated)
	if err != nil {
		return "", err
	}
	sid, _ := out["sid"].(string)
	if sid == "" {
		return "", fmt.Errorf("POST %s: no sid in %v", path, out)
	}
	shown := strings.ReplaceAll(path, "/2010-04-01/Accounts/"+d.account, "/2010-04-01/Accounts/$SID")
	var args []string
	for _, k := range slices.Sorted(maps.Keys(form)) {
		v := form.Get(k)
		if k == "Password" {
			v = "…"
		}
		args = append(args, "-d "+k+"="+v)
	}
	fmt.Printf("  %-26s %s  ← curl %s %s\n", what, sid, shown, strings.Join(args, " "))
	return sid, nil
}

// provision sets up the customer through the API: the acme trunk
// (credential list for the PBX's digest, IP ACL for the PBX's address,
// the DID, an origination URL to the PBX) and the secure trunk (TLS +
// SRTP, the same IP ACL).
func (d *demoLab) provision(ctx context.Context, pbxOrigination string) (demoTrunks, error) {
	acct := "/2010-04-01/Accounts/" + d.account
	tr := demoTrunks{acmeHost: "acme.pstn." + demoDomain, secureHost: "secure.pstn." + demoDomain}
	var cl, acl, pn string
	// Each step's path and form are functions: they name what earlier
	// steps made.
	steps := []struct {
		what string
		path func() string
		form func() url.Values
		sid  *string
	}{
		{"trunk acme", func() string { return "/v1/Trunks" },
			func() url.Values { return url.Values{"FriendlyName": {"acme"}, "DomainName": {tr.acmeHost}} }, &tr.acme},
		{"credential list", func() string { return acct + "/SIP/CredentialLists.json" },
			func() url.Values { return url.Values{"FriendlyName": {"acme-pbx"}} }, &cl},
		{"credential " + demoUser, func() string { return acct + "/SIP/CredentialLists/" + cl + "/Credentials.json" },
			func() url.Values { return url.Values{"Username": {demoUser}, "Password": {d.password}} }, new(string)},
		{"credential list → acme", func() string { return "/v1/Trunks/" + tr.acme + "/CredentialLists" },
			func() url.Values { return url.Values{"CredentialListSid": {cl}} }, new(string)},
		{"IP ACL", func() string { return acct + "/SIP/IpAccessControlLists.json" },
			func() url.Values { return url.Values{"FriendlyName": {"acme-pbx"}} }, &acl},
		{"IP address (the PBX)", func() string { return acct + "/SIP/IpAccessControlLists/" + acl + "/IpAddresses.json" },
			func() url.Values {
				return url.Values{"FriendlyName": {"pbx"}, "IpAddress": {d.tri.CallerIP.String()}, "CidrPrefixLength": {"32"}}
			}, new(string)},
		{"IP ACL → acme", func() string { return "/v1/Trunks/" + tr.acme + "/IpAccessControlLists" },
			func() url.Values { return url.Values{"IpAccessControlListSid": {acl}} }, new(string)},
		{"phone number " + demoDID, func() string { return acct + "/IncomingPhoneNumbers.json" },
			func() url.Values { return url.Values{"PhoneNumber": {demoDID}} }, &pn},
		{"phone number → acme", func() string { return "/v1/Trunks/" + tr.acme + "/PhoneNumbers" },
			func() url.Values { return url.Values{"PhoneNumberSid": {pn}} }, new(string)},
		{"origination URL", func() string { return "/v1/Trunks/" + tr.acme + "/OriginationUrls" },
			func() url.Values {
				return url.Values{"FriendlyName": {"pbx"}, "SipUrl": {pbxOrigination}, "Priority": {"10"}, "Weight": {"10"}, "Enabled": {"true"}}
			}, new(string)},
		{"trunk secure (TLS+SRTP)", func() string { return "/v1/Trunks" },
			func() url.Values {
				return url.Values{"FriendlyName": {"secure"}, "DomainName": {tr.secureHost}, "Secure": {"true"}}
			}, &tr.secure},
		{"IP ACL → secure", func() string { return "/v1/Trunks/" + tr.secure + "/IpAccessControlLists" },
			func() url.Values { return url.Values{"IpAccessControlListSid": {acl}} }, new(string)},
	}
	for _, s := range steps {
		sid, err := d.create(ctx, s.what, s.path(), s.form())
		if err != nil {
			return tr, fmt.Errorf("provisioning %s: %w", s.what, err)
		}
		*s.sid = sid
	}
	return tr, nil
}

// cdr finds the CDR of the call to number through the Calls resource
// (list filtered by To, newest first), then fetches it by SID. The edge
// writes it as the call ends, so it may take a moment.
func (d *demoLab) cdr(ctx context.Context, to string) (map[string]any, error) {
	path := "/2010-04-01/Accounts/" + d.account + "/Calls.json?" + url.Values{"To": {to}}.Encode()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := d.api(ctx, http.MethodGet, path, nil, http.StatusOK)
		if err != nil {
			return nil, err
		}
		calls, _ := out["calls"].([]any)
		var c map[string]any
		if len(calls) > 0 {
			c, _ = calls[0].(map[string]any)
		}
		// a call's row is there from its start (ringing, in-progress):
		// the CDR is the row once the call is over
		if st, _ := c["status"].(string); c != nil && st != "ringing" && st != "in-progress" {
			sid, _ := c["sid"].(string)
			return d.api(ctx, http.MethodGet, "/2010-04-01/Accounts/"+d.account+"/Calls/"+sid+".json", nil, http.StatusOK)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no CDR to %s after 10 s", to)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
