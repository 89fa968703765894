package api

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/xtrunk/xtrunk/control/store"
)

// 2010-04-01: IncomingPhoneNumbers and OutgoingCallerIds.

type numberJSON struct {
	AccountSid          string           `json:"account_sid"`
	AddressSid          *string          `json:"address_sid"`
	AddressRequirements string           `json:"address_requirements"`
	APIVersion          string           `json:"api_version"`
	Beta                bool             `json:"beta"`
	Capabilities        capabilitiesJSON `json:"capabilities"`
	DateCreated         string           `json:"date_created"`
	DateUpdated         string           `json:"date_updated"`
	FriendlyName        string           `json:"friendly_name"`
	IdentitySid         *string          `json:"identity_sid"`
	PhoneNumber         string           `json:"phone_number"`
	Origin              string           `json:"origin"`
	Sid                 string           `json:"sid"`
	numberSMSJSON
	URI              string `json:"uri"`
	VoiceReceiveMode string `json:"voice_receive_mode"`
	numberVoiceJSON
	EmergencyStatus        string            `json:"emergency_status"`
	EmergencyAddressSid    *string           `json:"emergency_address_sid"`
	EmergencyAddressStatus string            `json:"emergency_address_status"`
	BundleSid              *string           `json:"bundle_sid"`
	Status                 string            `json:"status"`
	Type                   string            `json:"type"`
	SubresourceURIs        map[string]string `json:"subresource_uris"`
}

// numberSMSJSON and numberVoiceJSON are the fields a phone number has
// alike as an IncomingPhoneNumber (2010) and as a trunk's PhoneNumber (v1),
// in the order both list them.
type numberSMSJSON struct {
	SmsApplicationSid    *string `json:"sms_application_sid"`
	SmsFallbackMethod    string  `json:"sms_fallback_method"`
	SmsFallbackURL       *string `json:"sms_fallback_url"`
	SmsMethod            string  `json:"sms_method"`
	SmsURL               *string `json:"sms_url"`
	StatusCallback       *string `json:"status_callback"`
	StatusCallbackMethod string  `json:"status_callback_method"`
	TrunkSid             *string `json:"trunk_sid"`
}

type numberVoiceJSON struct {
	VoiceApplicationSid *string `json:"voice_application_sid"`
	VoiceCallerIDLookup bool    `json:"voice_caller_id_lookup"`
	VoiceFallbackMethod string  `json:"voice_fallback_method"`
	VoiceFallbackURL    *string `json:"voice_fallback_url"`
	VoiceMethod         string  `json:"voice_method"`
	VoiceURL            *string `json:"voice_url"`
}

func numberSMS(n store.PhoneNumber) numberSMSJSON {
	return numberSMSJSON{SmsFallbackMethod: "POST", SmsMethod: n.SmsMethod, SmsURL: nz(n.SmsURL),
		StatusCallback: nz(n.StatusCallback), StatusCallbackMethod: n.StatusCallbackMethod, TrunkSid: nz(n.TrunkSid)}
}

func numberVoice(n store.PhoneNumber) numberVoiceJSON {
	return numberVoiceJSON{VoiceCallerIDLookup: n.VoiceCallerIDLookup, VoiceFallbackMethod: n.VoiceFallbackMethod,
		VoiceFallbackURL: nz(n.VoiceFallbackURL), VoiceMethod: n.VoiceMethod, VoiceURL: nz(n.VoiceURL)}
}

// numberType is Twilio's local/tollfree (xtrunk does not know mobile
// ranges): North American toll-free codes are tollfree.
func numberType(e164 string) string {
	for _, p := range []string{"+1800", "+1833", "+1844", "+1855", "+1866", "+1877", "+1888"} {
		if strings.HasPrefix(e164, p) {
			return "tollfree"
		}
	}
	return "local"
}

func number(n store.PhoneNumber) numberJSON {
	u := acctURI(n.AccountSid) + "/IncomingPhoneNumbers/" + n.Sid
	return numberJSON{
		AccountSid: n.AccountSid, AddressRequirements: "none", APIVersion: apiVersion, Capabilities: capabilitiesJSON{Voice: true},
		DateCreated: rfc2822(n.Created), DateUpdated: rfc2822(n.Updated), FriendlyName: n.FriendlyName, PhoneNumber: n.PhoneNumber,
		Origin: "hosted", Sid: n.Sid, numberSMSJSON: numberSMS(n), URI: u + ".json",
		VoiceReceiveMode: "voice", numberVoiceJSON: numberVoice(n),
		EmergencyStatus: "Inactive", EmergencyAddressStatus: "unregistered", Status: "in-use", Type: numberType(n.PhoneNumber),
		SubresourceURIs: map[string]string{"assigned_add_ons": u + "/AssignedAddOns.json"},
	}
}

func (p *params) number(n *store.PhoneNumber) {
	p.setStr(&n.FriendlyName, "FriendlyName", 0)
	p.setStr(&n.VoiceURL, "VoiceUrl", 0)
	p.setStr(&n.VoiceMethod, "VoiceMethod", 0)
	p.setStr(&n.VoiceFallbackURL, "VoiceFallbackUrl", 0)
	p.setStr(&n.VoiceFallbackMethod, "VoiceFallbackMethod", 0)
	p.setStr(&n.StatusCallback, "StatusCallback", 0)
	p.setStr(&n.StatusCallbackMethod, "StatusCallbackMethod", 0)
	p.setBool(&n.VoiceCallerIDLookup, "VoiceCallerIdLookup")
	p.setStr(&n.SmsURL, "SmsUrl", 0)
	p.setStr(&n.SmsMethod, "SmsMethod", 0)
	if p.has("TrunkSid") {
		v, _ := p.str("TrunkSid", 64)
		if v != "" && !store.ValidSid(store.PrefixTrunk, v) {
			p.fail(badRequest("TrunkSid must be TK followed by 32 hex digits, or empty to remove the number from its trunk"))
		}
		n.TrunkSid = v
	}
}

// createNumber provisions a number from the operator's inventory: only a
// main account may, into itself or (POSTing under the subaccount's path,
// as Twilio allows) straight into one of its subaccounts. A tenant cannot
// claim a number by naming it.
func (s *Server) createNumber(w http.ResponseWriter, r *request) error {
	if r.auth.OwnerSid != "" {
		return &Error{Status: http.StatusBadRequest, Code: store.CodePhoneUnavailable,
			Message: "Numbers are provisioned by the main account: ask your provider for a number"}
	}
	e164 := r.form.required("PhoneNumber", 32)
	if r.form.has("AreaCode") && e164 == "" {
		return badRequest("xtrunk provisions numbers by PhoneNumber only (no AreaCode search)")
	}
	n := store.NewPhoneNumber(r.account, e164)
	r.form.number(&n)
	if r.form.err != nil {
		return r.form.err
	}
	n, err := s.st.CreatePhoneNumber(r.ctx, n)
	return writeResult(w, http.StatusCreated, number, n, err)
}

func (s *Server) fetchNumber(w http.ResponseWriter, r *request) error {
	n, err := s.st.PhoneNumber(r.ctx, r.account, r.p["PN"])
	return writeResult(w, http.StatusOK, number, n, err)
}

// updateNumber updates a number; an AccountSid other than the path's
// moves it to that account, which only the main account may do, and only
// among itself and its subaccounts (the store checks the family).
func (s *Server) updateNumber(w http.ResponseWriter, r *request) error {
	to, move := r.form.str("AccountSid", 64)
	move = move && to != r.account
	if move {
		if r.auth.OwnerSid != "" {
			return badRequest("Only the main account can move a number to another account")
		}
		if can, err := s.st.CanAccess(r.ctx, r.auth.Sid, to); err != nil {
			return err
		} else if !can {
			return badRequest("AccountSid %s is not this account or one of its subaccounts", to)
		}
	}
	n, err := s.st.UpdatePhoneNumber(r.ctx, r.account, r.p["PN"], func(n *store.PhoneNumber) error {
		r.form.number(n)
		if move {
			n.AccountSid = to
		}
		return r.form.err
	})
	return writeResult(w, http.StatusOK, number, n, err)
}

func (s *Server) deleteNumber(w http.ResponseWriter, r *request) error {
	return noContent(w, s.st.DeletePhoneNumber(r.ctx, r.account, r.p["PN"]))
}

// numberFilter reads the filters both lists of numbers take.
func (p *params) numberFilter() store.NumberFilter {
	var f store.NumberFilter
	p.setStr(&f.PhoneNumber, "PhoneNumber", 32)
	p.setStr(&f.FriendlyName, "FriendlyName", 0)
	return f
}

// numberFilters is f in paging URLs.
func numberFilters(f store.NumberFilter) url.Values {
	return filters("PhoneNumber", f.PhoneNumber, "FriendlyName", f.FriendlyName)
}

func (s *Server) listNumbers(w http.ResponseWriter, r *request) error {
	f := r.form.numberFilter()
	return listPage(w, r, "incoming_phone_numbers", numberFilters(f), func(p store.Page) ([]store.PhoneNumber, string, error) {
		return s.st.ListPhoneNumbers(r.ctx, r.account, f, p)
	}, number)
}

type callerIDJSON struct {
	Sid          string `json:"sid"`
	DateCreated  string `json:"date_created"`
	DateUpdated  string `json:"date_updated"`
	FriendlyName string `json:"friendly_name"`
	AccountSid   string `json:"account_sid"`
	PhoneNumber  string `json:"phone_number"`
	URI          string `json:"uri"`
}

func callerID(c store.CallerID) callerIDJSON {
	return callerIDJSON{Sid: c.Sid, DateCreated: rfc2822(c.Created), DateUpdated: rfc2822(c.Updated), FriendlyName: c.FriendlyName,
		AccountSid: c.AccountSid, PhoneNumber: c.PhoneNumber, URI: acctURI(c.AccountSid) + "/OutgoingCallerIds/" + c.Sid + ".json"}
}

// validationJSON is Twilio's ValidationRequest, the answer to a POST.
type validationJSON struct {
	AccountSid     string  `json:"account_sid"`
	CallSid        *string `json:"call_sid"`
	FriendlyName   string  `json:"friendly_name"`
	PhoneNumber    string  `json:"phone_number"`
	ValidationCode string  `json:"validation_code"`
}

// createCallerID is Twilio's validation request. xtrunk places no
// verification call: a full account (or a parent acting for its
// subaccount) vouches for the number and it is verified at once; a trial
// account's own request stays pending until the code is confirmed
// (store.VerifyCallerID), so a trial account cannot widen what it may call.
func (s *Server) createCallerID(w http.ResponseWriter, r *request) error {
	phone := r.form.required("PhoneNumber", 32)
	name, _ := r.form.str("FriendlyName", 0)
	if r.form.err != nil {
		return r.form.err
	}
	verified := r.auth.Type == store.TypeFull || r.auth.Sid != r.account
	c, err := s.st.RequestCallerID(r.ctx, r.account, phone, name, verified)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, validationJSON{AccountSid: c.AccountSid, FriendlyName: c.FriendlyName, PhoneNumber: c.PhoneNumber, ValidationCode: c.ValidationCode})
	return nil
}

func (s *Server) fetchCallerID(w http.ResponseWriter, r *request) error {
	c, err := s.st.CallerID(r.ctx, r.account, r.p["PN"])
	return writeResult(w, http.StatusOK, callerID, c, err)
}

func (s *Server) updateCallerID(w http.ResponseWriter, r *request) error {
	name, _ := r.form.str("FriendlyName", 0)
	if r.form.err != nil {
		return r.form.err
	}
	c, err := s.st.RenameCallerID(r.ctx, r.account, r.p["PN"], name)
	return writeResult(w, http.StatusOK, callerID, c, err)
}

func (s *Server) deleteCallerID(w http.ResponseWriter, r *request) error {
	return noContent(w, s.st.DeleteCallerID(r.ctx, r.account, r.p["PN"]))
}

func (s *Server) listCallerIDs(w http.ResponseWriter, r *request) error {
	f := r.form.numberFilter()
	return listPage(w, r, "outgoing_caller_ids", numberFilters(f), func(p store.Page) ([]store.CallerID, string, error) {
		return s.st.ListCallerIDs(r.ctx, r.account, f, p)
	}, callerID)
}
