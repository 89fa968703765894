package api

import (
	"net/http"
	"strings"

	"github.com/xtrunk/xtrunk/control/store"
)

// Trunking v1: /v1/Trunks and its sub-resources.

type recordingJSON struct {
	Mode string `json:"mode"`
	Trim string `json:"trim"`
}

type trunkJSON struct {
	AccountSid             string            `json:"account_sid"`
	DomainName             *string           `json:"domain_name"`
	DisasterRecoveryMethod string            `json:"disaster_recovery_method"`
	DisasterRecoveryURL    *string           `json:"disaster_recovery_url"`
	FriendlyName           *string           `json:"friendly_name"`
	Secure                 bool              `json:"secure"`
	Recording              recordingJSON     `json:"recording"`
	TransferMode           string            `json:"transfer_mode"`
	TransferCallerID       string            `json:"transfer_caller_id"`
	CnamLookupEnabled      bool              `json:"cnam_lookup_enabled"`
	AuthType               string            `json:"auth_type"`
	SymmetricRTPEnabled    bool              `json:"symmetric_rtp_enabled"`
	AuthTypeSet            []string          `json:"auth_type_set"`
	DateCreated            string            `json:"date_created"`
	DateUpdated            string            `json:"date_updated"`
	Sid                    string            `json:"sid"`
	URL                    string            `json:"url"`
	Links                  map[string]string `json:"links"`
}

func (r *request) trunk(t store.Trunk) trunkJSON {
	u := r.base + "/v1/Trunks/" + t.Sid
	types := t.AuthTypes()
	return trunkJSON{
		AccountSid: t.AccountSid, DomainName: nz(t.DomainName), DisasterRecoveryMethod: t.DisasterRecoveryMethod,
		DisasterRecoveryURL: nz(t.DisasterRecoveryURL), FriendlyName: nz(t.FriendlyName), Secure: t.Secure,
		Recording:    recordingJSON{Mode: t.RecordingMode, Trim: t.RecordingTrim},
		TransferMode: t.TransferMode, TransferCallerID: t.TransferCallerID, CnamLookupEnabled: t.CnamLookupEnabled,
		AuthType: strings.Join(types, ","), SymmetricRTPEnabled: t.SymmetricRTPEnabled, AuthTypeSet: types,
		DateCreated: v1Time(t.Created), DateUpdated: v1Time(t.Updated), Sid: t.Sid, URL: u,
		Links: map[string]string{
			"origination_urls":        u + "/OriginationUrls",
			"credential_lists":        u + "/CredentialLists",
			"ip_access_control_lists": u + "/IpAccessControlLists",
			"phone_numbers":           u + "/PhoneNumbers",
			"recording":               u + "/Recording",
		},
	}
}

// trunkParams applies the create/update parameters to t.
func (p *params) trunk(t *store.Trunk) {
	p.setStr(&t.FriendlyName, "FriendlyName", 0)
	p.setStr(&t.DomainName, "DomainName", 0)
	p.setStr(&t.DisasterRecoveryURL, "DisasterRecoveryUrl", 0)
	p.setStr(&t.DisasterRecoveryMethod, "DisasterRecoveryMethod", 0)
	p.setStr(&t.TransferMode, "TransferMode", 0)
	p.setStr(&t.TransferCallerID, "TransferCallerId", 0)
	p.setBool(&t.Secure, "Secure")
	p.setBool(&t.CnamLookupEnabled, "CnamLookupEnabled")
	p.setBool(&t.SymmetricRTPEnabled, "SymmetricRtpEnabled") // xtrunk extension: Twilio's clients cannot set it
}

func (s *Server) createTrunk(w http.ResponseWriter, r *request) error {
	t := store.NewTrunk(r.account)
	r.form.trunk(&t)
	if r.form.err != nil {
		return r.form.err
	}
	t, err := s.st.CreateTrunk(r.ctx, t)
	return writeResult(w, http.StatusCreated, r.trunk, t, err)
}

func (s *Server) fetchTrunk(w http.ResponseWriter, r *request) error {
	t, err := s.st.Trunk(r.ctx, r.account, r.p["TK"])
	return writeResult(w, http.StatusOK, r.trunk, t, err)
}

func (s *Server) updateTrunk(w http.ResponseWriter, r *request) error {
	t, err := s.st.UpdateTrunk(r.ctx, r.account, r.p["TK"], func(t *store.Trunk) error {
		r.form.trunk(t)
		return r.form.err
	})
	return writeResult(w, http.StatusOK, r.trunk, t, err)
}

func (s *Server) deleteTrunk(w http.ResponseWriter, r *request) error {
	return noContent(w, s.st.DeleteTrunk(r.ctx, r.account, r.p["TK"]))
}

func (s *Server) listTrunks(w http.ResponseWriter, r *request) error {
	return listPage(w, r, "trunks", nil, func(p store.Page) ([]store.Trunk, string, error) {
		return s.st.ListTrunks(r.ctx, r.account, p)
	}, r.trunk)
}

func (s *Server) fetchRecordingSettings(w http.ResponseWriter, r *request) error {
	t, err := s.st.Trunk(r.ctx, r.account, r.p["TK"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, recordingJSON{Mode: t.RecordingMode, Trim: t.RecordingTrim})
	return nil
}

func (s *Server) updateRecordingSettings(w http.ResponseWriter, r *request) error {
	t, err := s.st.UpdateTrunk(r.ctx, r.account, r.p["TK"], func(t *store.Trunk) error {
		r.form.setStr(&t.RecordingMode, "Mode", 0)
		r.form.setStr(&t.RecordingTrim, "Trim", 0)
		return r.form.err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, recordingJSON{Mode: t.RecordingMode, Trim: t.RecordingTrim})
	return nil
}

type originationJSON struct {
	AccountSid   string  `json:"account_sid"`
	Sid          string  `json:"sid"`
	TrunkSid     string  `json:"trunk_sid"`
	Weight       int     `json:"weight"`
	Enabled      bool    `json:"enabled"`
	SipURL       string  `json:"sip_url"`
	FriendlyName *string `json:"friendly_name"`
	Priority     int     `json:"priority"`
	DateCreated  string  `json:"date_created"`
	DateUpdated  string  `json:"date_updated"`
	URL          string  `json:"url"`
}

func (r *request) origination(o store.OriginationURL) originationJSON {
	return originationJSON{AccountSid: o.AccountSid, Sid: o.Sid, TrunkSid: o.TrunkSid, Weight: o.Weight, Enabled: o.Enabled,
		SipURL: o.SipURL, FriendlyName: nz(o.FriendlyName), Priority: o.Priority, DateCreated: v1Time(o.Created),
		DateUpdated: v1Time(o.Updated), URL: r.base + "/v1/Trunks/" + o.TrunkSid + "/OriginationUrls/" + o.Sid}
}

func (p *params) origination(o *store.OriginationURL) {
	p.setStr(&o.FriendlyName, "FriendlyName", 0)
	p.setStr(&o.SipURL, "SipUrl", 0)
	p.setInt(&o.Priority, "Priority")
	p.setInt(&o.Weight, "Weight")
	p.setBool(&o.Enabled, "Enabled")
}

func (s *Server) createOriginationURL(w http.ResponseWriter, r *request) error {
	o := store.OriginationURL{AccountSid: r.account, TrunkSid: r.p["TK"], Priority: store.DefaultPriority, Weight: store.DefaultWeight, Enabled: true}
	r.form.required("SipUrl", 0)
	r.form.origination(&o)
	if r.form.err != nil {
		return r.form.err
	}
	if err := s.checkOriginationTarget(r.ctx, o.SipURL); err != nil {
		return err
	}
	o, err := s.st.CreateOriginationURL(r.ctx, o)
	return writeResult(w, http.StatusCreated, r.origination, o, err)
}

func (s *Server) fetchOriginationURL(w http.ResponseWriter, r *request) error {
	o, err := s.st.OriginationURL(r.ctx, r.account, r.p["TK"], r.p["OU"])
	return writeResult(w, http.StatusOK, r.origination, o, err)
}

func (s *Server) updateOriginationURL(w http.ResponseWriter, r *request) error {
	o, err := s.st.UpdateOriginationURL(r.ctx, r.account, r.p["TK"], r.p["OU"], func(o *store.OriginationURL) error {
		r.form.origination(o)
		if r.form.err != nil {
			return r.form.err
		}
		return s.checkOriginationTarget(r.ctx, o.SipURL)
	})
	return writeResult(w, http.StatusOK, r.origination, o, err)
}

func (s *Server) deleteOriginationURL(w http.ResponseWriter, r *request) error {
	return noContent(w, s.st.DeleteOriginationURL(r.ctx, r.account, r.p["TK"], r.p["OU"]))
}

func (s *Server) listOriginationURLs(w http.ResponseWriter, r *request) error {
	return listPage(w, r, "origination_urls", nil, func(p store.Page) ([]store.OriginationURL, string, error) {
		return s.st.ListOriginationURLs(r.ctx, r.account, r.p["TK"], p)
	}, r.origination)
}

// trunkListJSON is a trunk's IP ACL or credential list attachment.
type trunkListJSON struct {
	AccountSid   string  `json:"account_sid"`
	Sid          string  `json:"sid"`
	TrunkSid     string  `json:"trunk_sid"`
	FriendlyName *string `json:"friendly_name"`
	DateCreated  string  `json:"date_created"`
	DateUpdated  string  `json:"date_updated"`
	URL          string  `json:"url"`
}

func (r *request) trunkList(l store.NamedList, sub string) trunkListJSON {
	return trunkListJSON{AccountSid: l.AccountSid, Sid: l.Sid, TrunkSid: l.TrunkSid, FriendlyName: nz(l.FriendlyName),
		DateCreated: v1Time(l.Created), DateUpdated: v1Time(l.Updated), URL: r.base + "/v1/Trunks/" + l.TrunkSid + "/" + sub + "/" + l.Sid}
}

type capabilitiesJSON struct {
	Voice bool `json:"voice"`
	SMS   bool `json:"sms"`
	MMS   bool `json:"mms"`
	Fax   bool `json:"fax"`
}

// trunkNumberJSON is Trunking v1's PhoneNumber.
type trunkNumberJSON struct {
	AccountSid          string            `json:"account_sid"`
	AddressRequirements string            `json:"address_requirements"`
	APIVersion          string            `json:"api_version"`
	Beta                bool              `json:"beta"`
	Capabilities        capabilitiesJSON  `json:"capabilities"`
	DateCreated         string            `json:"date_created"`
	DateUpdated         string            `json:"date_updated"`
	FriendlyName        *string           `json:"friendly_name"`
	Links               map[string]string `json:"links"`
	PhoneNumber         string            `json:"phone_number"`
	Sid                 string            `json:"sid"`
	numberSMSJSON
	URL string `json:"url"`
	numberVoiceJSON
}

func (r *request) trunkNumber(n store.PhoneNumber, trunk string) trunkNumberJSON {
	return trunkNumberJSON{
		AccountSid: n.AccountSid, AddressRequirements: "none", APIVersion: apiVersion, Capabilities: capabilitiesJSON{Voice: true},
		DateCreated: v1Time(n.Created), DateUpdated: v1Time(n.Updated), FriendlyName: nz(n.FriendlyName),
		Links:       map[string]string{"phone_number": r.base + "/2010-04-01/Accounts/" + n.AccountSid + "/IncomingPhoneNumbers/" + n.Sid + ".json"},
		PhoneNumber: n.PhoneNumber, Sid: n.Sid, numberSMSJSON: numberSMS(n),
		URL: r.base + "/v1/Trunks/" + trunk + "/PhoneNumbers/" + n.Sid, numberVoiceJSON: numberVoice(n),
	}
}

func (s *Server) associateNumber(w http.ResponseWriter, r *request) error {
	sid := r.form.sid("PhoneNumberSid", store.PrefixPhoneNumber)
	if r.form.err != nil {
		return r.form.err
	}
	n, err := s.st.AssociatePhoneNumber(r.ctx, r.account, r.p["TK"], sid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, r.trunkNumber(n, r.p["TK"]))
	return nil
}

func (s *Server) fetchTrunkNumber(w http.ResponseWriter, r *request) error {
	n, err := s.st.TrunkPhoneNumber(r.ctx, r.account, r.p["TK"], r.p["PN"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, r.trunkNumber(n, r.p["TK"]))
	return nil
}

func (s *Server) disassociateNumber(w http.ResponseWriter, r *request) error {
	return noContent(w, s.st.DisassociatePhoneNumber(r.ctx, r.account, r.p["TK"], r.p["PN"]))
}

func (s *Server) listTrunkNumbers(w http.ResponseWriter, r *request) error {
	return listPage(w, r, "phone_numbers", nil, func(p store.Page) ([]store.PhoneNumber, string, error) {
		return s.st.ListTrunkPhoneNumbers(r.ctx, r.account, r.p["TK"], p)
	}, func(n store.PhoneNumber) trunkNumberJSON { return r.trunkNumber(n, r.p["TK"]) })
}
