package api

import (
	"net/http"

	"github.com/xtrunk/xtrunk/control/store"
)

// 2010-04-01: Accounts, SIP IP access control lists and credential lists.

func acctURI(account string) string { return "/2010-04-01/Accounts/" + account }

type accountJSON struct {
	AuthToken       string            `json:"auth_token"`
	DateCreated     string            `json:"date_created"`
	DateUpdated     string            `json:"date_updated"`
	FriendlyName    string            `json:"friendly_name"`
	OwnerAccountSid string            `json:"owner_account_sid"`
	Sid             string            `json:"sid"`
	Status          string            `json:"status"`
	SubresourceURIs map[string]string `json:"subresource_uris"`
	Type            string            `json:"type"`
	URI             string            `json:"uri"`
}

func account(a store.Account) accountJSON {
	owner := a.OwnerSid
	if owner == "" {
		owner = a.Sid // Twilio: a main account owns itself
	}
	u := acctURI(a.Sid)
	return accountJSON{AuthToken: a.AuthToken, DateCreated: rfc2822(a.Created), DateUpdated: rfc2822(a.Updated),
		FriendlyName: a.FriendlyName, OwnerAccountSid: owner, Sid: a.Sid, Status: a.Status, Type: a.Type, URI: u + ".json",
		SubresourceURIs: map[string]string{
			"incoming_phone_numbers": u + "/IncomingPhoneNumbers.json",
			"outgoing_caller_ids":    u + "/OutgoingCallerIds.json",
			"calls":                  u + "/Calls.json",
			"recordings":             u + "/Recordings.json",
			"sip":                    u + "/SIP.json",
		}}
}

func (s *Server) createAccount(w http.ResponseWriter, r *request) error {
	name, _ := r.form.str("FriendlyName", 0)
	typ, _ := r.form.str("Type", 16) // xtrunk extension: Full or Trial
	if r.form.err != nil {
		return r.form.err
	}
	a, err := s.st.CreateSubaccount(r.ctx, r.auth.Sid, name, typ)
	return writeResult(w, http.StatusCreated, account, a, err)
}

func (s *Server) fetchAccount(w http.ResponseWriter, r *request) error {
	a, err := s.st.Account(r.ctx, r.account)
	return writeResult(w, http.StatusOK, account, a, err)
}

func (s *Server) updateAccount(w http.ResponseWriter, r *request) error {
	a, err := s.st.UpdateAccount(r.ctx, r.account, func(a *store.Account) error {
		r.form.setStr(&a.FriendlyName, "FriendlyName", 0)
		r.form.setStr(&a.Status, "Status", 0)
		return r.form.err
	})
	return writeResult(w, http.StatusOK, account, a, err)
}

func (s *Server) listAccounts(w http.ResponseWriter, r *request) error {
	var f store.AccountFilter
	r.form.setStr(&f.FriendlyName, "FriendlyName", 0)
	r.form.setStr(&f.Status, "Status", 0)
	return listPage(w, r, "accounts", filters("FriendlyName", f.FriendlyName, "Status", f.Status), func(p store.Page) ([]store.Account, string, error) {
		return s.st.ListAccounts(r.ctx, r.auth.Sid, f, p)
	}, account)
}

// filters builds the filter part of paging URLs from name/value pairs,
// leaving out empty values.
func filters(kv ...string) map[string][]string {
	out := map[string][]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out[kv[i]] = []string{kv[i+1]}
		}
	}
	return out
}

type sipListJSON struct {
	Sid             string            `json:"sid"`
	AccountSid      string            `json:"account_sid"`
	FriendlyName    string            `json:"friendly_name"`
	DateCreated     string            `json:"date_created"`
	DateUpdated     string            `json:"date_updated"`
	SubresourceURIs map[string]string `json:"subresource_uris"`
	URI             string            `json:"uri"`
}

func sipList(l store.NamedList, kind, sub, subKey string) sipListJSON {
	u := acctURI(l.AccountSid) + "/SIP/" + kind + "/" + l.Sid
	return sipListJSON{Sid: l.Sid, AccountSid: l.AccountSid, FriendlyName: l.FriendlyName, DateCreated: rfc2822(l.Created),
		DateUpdated: rfc2822(l.Updated), SubresourceURIs: map[string]string{subKey: u + "/" + sub + ".json"}, URI: u + ".json"}
}

type ipJSON struct {
	Sid                    string `json:"sid"`
	AccountSid             string `json:"account_sid"`
	FriendlyName           string `json:"friendly_name"`
	IPAddress              string `json:"ip_address"`
	CIDRPrefixLength       int    `json:"cidr_prefix_length"`
	IPAccessControlListSid string `json:"ip_access_control_list_sid"`
	DateCreated            string `json:"date_created"`
	DateUpdated            string `json:"date_updated"`
	URI                    string `json:"uri"`
}

func ip(a store.IPAddress) ipJSON {
	return ipJSON{Sid: a.Sid, AccountSid: a.AccountSid, FriendlyName: a.FriendlyName, IPAddress: a.IPAddress,
		CIDRPrefixLength: a.CIDRPrefixLength, IPAccessControlListSid: a.ListSid, DateCreated: rfc2822(a.Created),
		DateUpdated: rfc2822(a.Updated), URI: acctURI(a.AccountSid) + "/SIP/IpAccessControlLists/" + a.ListSid + "/IpAddresses/" + a.Sid + ".json"}
}

func (p *params) ip(a *store.IPAddress) {
	p.setStr(&a.FriendlyName, "FriendlyName", 0)
	p.setStr(&a.IPAddress, "IpAddress", 0)
	p.setInt(&a.CIDRPrefixLength, "CidrPrefixLength")
}

func (s *Server) createIP(w http.ResponseWriter, r *request) error {
	a := store.IPAddress{AccountSid: r.account, ListSid: r.p["AL"]}
	r.form.required("FriendlyName", 0)
	r.form.required("IpAddress", 0)
	r.form.ip(&a)
	if r.form.err != nil {
		return r.form.err
	}
	a, err := s.st.CreateIPAddress(r.ctx, a)
	return writeResult(w, http.StatusCreated, ip, a, err)
}

func (s *Server) fetchIP(w http.ResponseWriter, r *request) error {
	a, err := s.st.IPAddress(r.ctx, r.account, r.p["AL"], r.p["IP"])
	return writeResult(w, http.StatusOK, ip, a, err)
}

func (s *Server) updateIP(w http.ResponseWriter, r *request) error {
	a, err := s.st.UpdateIPAddress(r.ctx, r.account, r.p["AL"], r.p["IP"], func(a *store.IPAddress) error {
		if r.form.has("IpAddress") && !r.form.has("CidrPrefixLength") {
			a.CIDRPrefixLength = 0 // a new address without a length is a single address
		}
		r.form.ip(a)
		return r.form.err
	})
	return writeResult(w, http.StatusOK, ip, a, err)
}

func (s *Server) deleteIP(w http.ResponseWriter, r *request) error {
	return noContent(w, s.st.DeleteIPAddress(r.ctx, r.account, r.p["AL"], r.p["IP"]))
}

func (s *Server) listIPs(w http.ResponseWriter, r *request) error {
	return listPage(w, r, "ip_addresses", nil, func(p store.Page) ([]store.IPAddress, string, error) {
		return s.st.ListIPAddresses(r.ctx, r.account, r.p["AL"], p)
	}, ip)
}

// credentialJSON never carries the password (the store does not have it).
type credentialJSON struct {
	Sid               string `json:"sid"`
	AccountSid        string `json:"account_sid"`
	CredentialListSid string `json:"credential_list_sid"`
	Username          string `json:"username"`
	DateCreated       string `json:"date_created"`
	DateUpdated       string `json:"date_updated"`
	URI               string `json:"uri"`
}

func credential(c store.Credential) credentialJSON {
	return credentialJSON{Sid: c.Sid, AccountSid: c.AccountSid, CredentialListSid: c.ListSid, Username: c.Username,
		DateCreated: rfc2822(c.Created), DateUpdated: rfc2822(c.Updated),
		URI: acctURI(c.AccountSid) + "/SIP/CredentialLists/" + c.ListSid + "/Credentials/" + c.Sid + ".json"}
}

func (s *Server) createCredential(w http.ResponseWriter, r *request) error {
	user := r.form.required("Username", 0)
	pass := r.form.required("Password", 0)
	if r.form.err != nil {
		return r.form.err
	}
	c, err := s.st.CreateCredential(r.ctx, r.account, r.p["CL"], user, pass)
	return writeResult(w, http.StatusCreated, credential, c, err)
}

func (s *Server) fetchCredential(w http.ResponseWriter, r *request) error {
	c, err := s.st.Credential(r.ctx, r.account, r.p["CL"], r.p["CR"])
	return writeResult(w, http.StatusOK, credential, c, err)
}

func (s *Server) updateCredential(w http.ResponseWriter, r *request) error {
	var c store.Credential
	var err error
	if pass, ok := r.form.str("Password", 0); ok {
		if r.form.err != nil {
			return r.form.err
		}
		c, err = s.st.SetCredentialPassword(r.ctx, r.account, r.p["CL"], r.p["CR"], pass)
	} else {
		if r.form.err != nil {
			return r.form.err
		}
		c, err = s.st.Credential(r.ctx, r.account, r.p["CL"], r.p["CR"])
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, credential(c))
	return nil
}

func (s *Server) deleteCredential(w http.ResponseWriter, r *request) error {
	return noContent(w, s.st.DeleteCredential(r.ctx, r.account, r.p["CL"], r.p["CR"]))
}

func (s *Server) listCredentials(w http.ResponseWriter, r *request) error {
	return listPage(w, r, "credentials", nil, func(p store.Page) ([]store.Credential, string, error) {
		return s.st.ListCredentials(r.ctx, r.account, r.p["CL"], p)
	}, credential)
}
