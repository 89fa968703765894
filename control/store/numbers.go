package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"math/big"
	"time"
)

// PhoneNumber is a DID owned by an account (Twilio's IncomingPhoneNumber),
// on at most one trunk.
type PhoneNumber struct {
	Sid                  string
	AccountSid           string
	PhoneNumber          string // E.164
	FriendlyName         string
	TrunkSid             string // "" when on no trunk
	VoiceURL             string
	VoiceMethod          string
	VoiceFallbackURL     string
	VoiceFallbackMethod  string
	StatusCallback       string
	StatusCallbackMethod string
	VoiceCallerIDLookup  bool
	SmsURL               string
	SmsMethod            string
	Created              time.Time
	Updated              time.Time
}

func (n PhoneNumber) key() (int64, string) { return n.Created.UnixMicro(), n.Sid }

// NewPhoneNumber returns a number with Twilio's defaults.
func NewPhoneNumber(account, e164 string) PhoneNumber {
	return PhoneNumber{AccountSid: account, PhoneNumber: e164, FriendlyName: e164,
		VoiceMethod: "POST", VoiceFallbackMethod: "POST", StatusCallbackMethod: "POST", SmsMethod: "POST"}
}

const numberCols = `n.sid, n.account_sid, n.phone_number, n.friendly_name, n.trunk_sid, n.voice_url, n.voice_method,
	n.voice_fallback_url, n.voice_fallback_method, n.status_callback, n.status_callback_method, n.voice_caller_id_lookup,
	n.sms_url, n.sms_method, n.created_us, n.updated_us`

func scanNumber(r scanner) (PhoneNumber, error) {
	var n PhoneNumber
	var trunk sql.NullString
	var c, u int64
	err := r.Scan(&n.Sid, &n.AccountSid, &n.PhoneNumber, &n.FriendlyName, &trunk, &n.VoiceURL, &n.VoiceMethod,
		&n.VoiceFallbackURL, &n.VoiceFallbackMethod, &n.StatusCallback, &n.StatusCallbackMethod, &n.VoiceCallerIDLookup,
		&n.SmsURL, &n.SmsMethod, &c, &u)
	n.TrunkSid, n.Created, n.Updated = trunk.String, fromMicros(c), fromMicros(u)
	return n, err
}

func checkNumber(n *PhoneNumber) error {
	if err := CheckFriendlyName(n.FriendlyName); err != nil {
		return err
	}
	for _, u := range [][2]string{{"VoiceUrl", n.VoiceURL}, {"VoiceFallbackUrl", n.VoiceFallbackURL}, {"StatusCallback", n.StatusCallback}, {"SmsUrl", n.SmsURL}} {
		if err := CheckHTTPURL(u[0], u[1]); err != nil {
			return err
		}
	}
	for _, m := range []struct {
		param string
		v     *string
	}{{"VoiceMethod", &n.VoiceMethod}, {"VoiceFallbackMethod", &n.VoiceFallbackMethod}, {"StatusCallbackMethod", &n.StatusCallbackMethod}, {"SmsMethod", &n.SmsMethod}} {
		v, err := CheckHTTPMethod(m.param, *m.v)
		if err != nil {
			return err
		}
		*m.v = v
	}
	return nil
}

// CreatePhoneNumber provisions ("buys") an E.164 number for an account. A
// number belongs to one account; TrunkSid, if set, must be the account's.
func (s *Store) CreatePhoneNumber(ctx context.Context, n PhoneNumber) (PhoneNumber, error) {
	if err := CheckE164("PhoneNumber", n.PhoneNumber); err != nil {
		return PhoneNumber{}, err
	}
	if err := checkNumber(&n); err != nil {
		return PhoneNumber{}, err
	}
	err := s.write(ctx, func(w *wtx) error {
		var other string
		err := w.queryRow(`SELECT sid FROM phone_numbers WHERE phone_number = ?`, n.PhoneNumber).Scan(&other)
		if err == nil {
			return conflict(CodePhoneUnavailable, "PhoneNumber", "PhoneNumber %s is not available", n.PhoneNumber)
		}
		if err != sql.ErrNoRows {
			return err
		}
		if n.TrunkSid != "" {
			if _, err := trunkTx(w, n.AccountSid, n.TrunkSid); err != nil {
				return err
			}
		}
		if err := otherAccountsCallerIDs(w, n.AccountSid, n.PhoneNumber); err != nil {
			return err
		}
		n.Sid, n.Created, n.Updated = NewSid(PrefixPhoneNumber), w.now, w.now
		if _, err := w.exec(`INSERT INTO phone_numbers (sid, account_sid, phone_number, friendly_name, trunk_sid, voice_url, voice_method,
			voice_fallback_url, voice_fallback_method, status_callback, status_callback_method, voice_caller_id_lookup,
			sms_url, sms_method, created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			n.Sid, n.AccountSid, n.PhoneNumber, n.FriendlyName, nullIfEmpty(n.TrunkSid), n.VoiceURL, n.VoiceMethod,
			n.VoiceFallbackURL, n.VoiceFallbackMethod, n.StatusCallback, n.StatusCallbackMethod, n.VoiceCallerIDLookup,
			n.SmsURL, n.SmsMethod, w.now.UnixMicro(), w.now.UnixMicro()); err != nil {
			return err
		}
		w.changed(n.AccountSid, "phone_number", n.Sid, "create")
		return nil
	})
	return orZero(n, err)
}

const numberWhere = ` WHERE n.sid = ? AND n.account_sid = ?`

// PhoneNumber fetches one of account's numbers.
func (s *Store) PhoneNumber(ctx context.Context, account, sid string) (PhoneNumber, error) {
	return get(ctx, s, "IncomingPhoneNumber", sid, `SELECT `+numberCols+` FROM phone_numbers n`+numberWhere, []any{sid, account}, scanNumber)
}

// PhoneNumberByE164 finds a number in any account: the signalling's lookup
// for an origination call's DID.
func (s *Store) PhoneNumberByE164(ctx context.Context, e164 string) (PhoneNumber, error) {
	return get(ctx, s, "IncomingPhoneNumber", e164, `SELECT `+numberCols+` FROM phone_numbers n WHERE n.phone_number = ?`, []any{e164}, scanNumber)
}

func numberTx(w *wtx, account, sid string) (PhoneNumber, error) {
	return getTx(w, "IncomingPhoneNumber", sid, `SELECT `+numberCols+` FROM phone_numbers n`+numberWhere, []any{sid, account}, scanNumber)
}

// moveNumber checks a number's move from old's account to n.AccountSid:
// both under one main account (an operator moves numbers among its own
// tenants, never to another operator's). The old account's trunk does not
// follow the number.
func moveNumber(w *wtx, n *PhoneNumber, old PhoneNumber) error {
	if !ValidSid(PrefixAccount, n.AccountSid) {
		return invalid("AccountSid", "AccountSid must be AC followed by 32 hex digits")
	}
	from, err := rootAccount(w, old.AccountSid)
	if err != nil {
		return err
	}
	to, err := rootAccount(w, n.AccountSid)
	if isNotFound(err) || (err == nil && to != from) {
		return invalid("AccountSid", "AccountSid %s is not this account's main account or one of its subaccounts", n.AccountSid)
	}
	if err != nil {
		return err
	}
	if n.TrunkSid == old.TrunkSid {
		n.TrunkSid = ""
	}
	// The number is the new account's DID now: a caller ID of the same
	// number in that account is redundant, and one in the old account
	// would let it keep presenting a number it no longer has.
	if _, err := w.exec(`DELETE FROM outgoing_caller_ids WHERE (account_sid = ? OR account_sid = ?) AND phone_number = ?`,
		n.AccountSid, old.AccountSid, n.PhoneNumber); err != nil {
		return err
	}
	return otherAccountsCallerIDs(w, n.AccountSid, n.PhoneNumber)
}

// rootAccount is the main account sid is, or belongs to.
func rootAccount(w *wtx, sid string) (string, error) {
	accts, err := accountAndParent(w, sid)
	if err != nil {
		return "", err
	}
	return accts[len(accts)-1], nil
}

// otherAccountsCallerIDs refuses to make phone account's DID while another
// account presents it as a verified caller ID: the operator must take that
// caller ID away first (DeleteCallerID), so a number never identifies two
// tenants' calls.
func otherAccountsCallerIDs(w *wtx, account, phone string) error {
	var other string
	err := w.queryRow(`SELECT account_sid FROM outgoing_caller_ids WHERE phone_number = ? AND account_sid <> ? AND verified = ? LIMIT 1`,
		phone, account, true).Scan(&other)
	switch {
	case err == sql.ErrNoRows:
		return nil
	case err != nil:
		return err
	}
	return conflict(CodePhoneUnavailable, "PhoneNumber", "PhoneNumber %s is a verified caller ID of account %s", phone, other)
}

func (w *wtx) saveNumber(n PhoneNumber) error {
	_, err := w.exec(`UPDATE phone_numbers SET account_sid = ?, friendly_name = ?, trunk_sid = ?, voice_url = ?, voice_method = ?, voice_fallback_url = ?,
		voice_fallback_method = ?, status_callback = ?, status_callback_method = ?, voice_caller_id_lookup = ?, sms_url = ?, sms_method = ?,
		updated_us = ? WHERE sid = ?`, n.AccountSid, n.FriendlyName, nullIfEmpty(n.TrunkSid), n.VoiceURL, n.VoiceMethod, n.VoiceFallbackURL,
		n.VoiceFallbackMethod, n.StatusCallback, n.StatusCallbackMethod, n.VoiceCallerIDLookup, n.SmsURL, n.SmsMethod,
		n.Updated.UnixMicro(), n.Sid)
	if err == nil {
		w.changed(n.AccountSid, "phone_number", n.Sid, "update")
	}
	return err
}

// UpdatePhoneNumber applies fn to one of account's numbers. fn may set
// TrunkSid to another of the account's trunks (moving the number: it is on
// one trunk at most) or to "" (no trunk); the number itself cannot change.
// fn may also set AccountSid, which moves the number to that account: it
// must belong to the same main account (the main account or one of its
// subaccounts), the number leaves its trunk unless fn names one of the new
// account's trunks, and the new account must not hold it as a caller ID
// of its own (it is a DID now).
func (s *Store) UpdatePhoneNumber(ctx context.Context, account, sid string, fn func(*PhoneNumber) error) (PhoneNumber, error) {
	var n PhoneNumber
	err := s.write(ctx, func(w *wtx) error {
		old, err := numberTx(w, account, sid)
		if err != nil {
			return err
		}
		n = old
		if err := fn(&n); err != nil {
			return err
		}
		n.Sid, n.PhoneNumber, n.Created, n.Updated = old.Sid, old.PhoneNumber, old.Created, w.now
		if err := checkNumber(&n); err != nil {
			return err
		}
		if n.AccountSid != old.AccountSid {
			if err := moveNumber(w, &n, old); err != nil {
				return err
			}
		}
		if n.TrunkSid != "" && (n.TrunkSid != old.TrunkSid || n.AccountSid != old.AccountSid) {
			if _, err := trunkTx(w, n.AccountSid, n.TrunkSid); err != nil {
				return err
			}
		}
		if n.AccountSid != old.AccountSid {
			w.changed(old.AccountSid, "phone_number", n.Sid, "delete")
		}
		return w.saveNumber(n)
	})
	return orZero(n, err)
}

// DeletePhoneNumber releases one of account's numbers.
func (s *Store) DeletePhoneNumber(ctx context.Context, account, sid string) error {
	return s.write(ctx, func(w *wtx) error {
		if err := w.execOne("IncomingPhoneNumber", sid, `DELETE FROM phone_numbers WHERE sid = ? AND account_sid = ?`, sid, account); err != nil {
			return err
		}
		w.changed(account, "phone_number", sid, "delete")
		return nil
	})
}

// NumberFilter narrows ListPhoneNumbers: PhoneNumber matches any part of
// the number, FriendlyName exactly.
type NumberFilter struct {
	PhoneNumber  string
	FriendlyName string
}

// ListPhoneNumbers lists account's numbers.
func (s *Store) ListPhoneNumbers(ctx context.Context, account string, f NumberFilter, p Page) ([]PhoneNumber, string, error) {
	spec := listSpec{from: "phone_numbers n", pfx: "n.", cols: numberCols}
	spec.and("n.account_sid = ?", account)
	if f.PhoneNumber != "" {
		spec.and("n.phone_number LIKE ?", "%"+likeEscape(f.PhoneNumber)+"%")
	}
	if f.FriendlyName != "" {
		spec.and("n.friendly_name = ?", f.FriendlyName)
	}
	return list(ctx, s, spec, p, scanNumber)
}

// likeEscape drops LIKE's wildcards from user input (numbers have none).
func likeEscape(v string) string {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] != '%' && v[i] != '_' && v[i] != '\\' {
			out = append(out, v[i])
		}
	}
	return string(out)
}

// AssociatePhoneNumber puts one of account's numbers on one of its trunks.
// A number already on another trunk is a conflict (disassociate it
// first); on this trunk already, nothing changes.
func (s *Store) AssociatePhoneNumber(ctx context.Context, account, trunk, sid string) (PhoneNumber, error) {
	var n PhoneNumber
	err := s.write(ctx, func(w *wtx) error {
		if _, err := trunkTx(w, account, trunk); err != nil {
			return err
		}
		var err error
		if n, err = numberTx(w, account, sid); err != nil {
			return err
		}
		switch n.TrunkSid {
		case trunk:
			return nil
		case "":
		default:
			return conflict(CodeInvalidParameter, "PhoneNumberSid", "PhoneNumber %s is already associated with trunk %s", n.PhoneNumber, n.TrunkSid)
		}
		n.TrunkSid, n.Updated = trunk, w.now
		return w.saveNumber(n)
	})
	return orZero(n, err)
}

// DisassociatePhoneNumber takes a number off a trunk; it stays in the
// account.
func (s *Store) DisassociatePhoneNumber(ctx context.Context, account, trunk, sid string) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := numberTx(w, account, sid)
		if err != nil {
			return err
		}
		if n.TrunkSid != trunk {
			return notFound("PhoneNumber", sid)
		}
		n.TrunkSid, n.Updated = "", w.now
		return w.saveNumber(n)
	})
}

// TrunkPhoneNumber fetches a number associated with a trunk.
func (s *Store) TrunkPhoneNumber(ctx context.Context, account, trunk, sid string) (PhoneNumber, error) {
	return get(ctx, s, "PhoneNumber", sid, `SELECT `+numberCols+` FROM phone_numbers n`+numberWhere+` AND n.trunk_sid = ?`,
		[]any{sid, account, trunk}, scanNumber)
}

// ListTrunkPhoneNumbers lists the numbers associated with a trunk.
func (s *Store) ListTrunkPhoneNumbers(ctx context.Context, account, trunk string, p Page) ([]PhoneNumber, string, error) {
	if _, err := s.Trunk(ctx, account, trunk); err != nil {
		return nil, "", err
	}
	spec := listSpec{from: "phone_numbers n", pfx: "n.", cols: numberCols}
	spec.and("n.account_sid = ? AND n.trunk_sid = ?", account, trunk)
	return list(ctx, s, spec, p, scanNumber)
}

// CallerID is a caller ID an account may present (Twilio's
// OutgoingCallerId). Only verified ones are listed and used.
type CallerID struct {
	Sid            string
	AccountSid     string
	PhoneNumber    string
	FriendlyName   string
	Verified       bool
	ValidationCode string
	Created        time.Time
	Updated        time.Time
}

func (c CallerID) key() (int64, string) { return c.Created.UnixMicro(), c.Sid }

const callerCols = `c.sid, c.account_sid, c.phone_number, c.friendly_name, c.verified, c.validation_code, c.created_us, c.updated_us`

func scanCaller(r scanner) (CallerID, error) {
	var c CallerID
	var cr, up int64
	err := r.Scan(&c.Sid, &c.AccountSid, &c.PhoneNumber, &c.FriendlyName, &c.Verified, &c.ValidationCode, &cr, &up)
	c.Created, c.Updated = fromMicros(cr), fromMicros(up)
	return c, err
}

func validationCode() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1000000))
	return fmt.Sprintf("%06d", n.Int64())
}

// RequestCallerID starts validation of phone for account: verified
// immediately when verified is true (an operator or a full account vouches
// for it), otherwise pending with a 6-digit ValidationCode that
// otherAccountsDID refuses a caller ID that is another account's DID: a
// tenant must not present (and so be trusted as) another tenant's number.
// The account's own DIDs need no caller ID but may have one.
func otherAccountsDID(w *wtx, account, phone string) error {
	var owner string
	err := w.queryRow(`SELECT account_sid FROM phone_numbers WHERE phone_number = ?`, phone).Scan(&owner)
	switch {
	case err == sql.ErrNoRows || (err == nil && owner == account):
		return nil
	case err != nil:
		return err
	}
	return conflict(CodeCallerIDIsDID, "PhoneNumber", "PhoneNumber %s is another account's number and cannot be its caller ID", phone)
}

// VerifyCallerID confirms. A number already verified is a conflict.
func (s *Store) RequestCallerID(ctx context.Context, account, phone, name string, verified bool) (CallerID, error) {
	if err := CheckE164("PhoneNumber", phone); err != nil {
		return CallerID{}, err
	}
	if err := CheckFriendlyName(name); err != nil {
		return CallerID{}, err
	}
	if name == "" {
		name = phone
	}
	var c CallerID
	err := s.write(ctx, func(w *wtx) error {
		if err := otherAccountsDID(w, account, phone); err != nil {
			return err
		}
		old, err := getTx(w, "OutgoingCallerId", phone, `SELECT `+callerCols+` FROM outgoing_caller_ids c WHERE c.account_sid = ? AND c.phone_number = ?`,
			[]any{account, phone}, scanCaller)
		switch {
		case err == nil && old.Verified:
			return conflict(CodeCallerIDExists, "PhoneNumber", "Phone number %s is already verified", phone)
		case err == nil:
			c = old
			c.FriendlyName, c.Verified, c.ValidationCode, c.Updated = name, verified, validationCode(), w.now
			if _, err := w.exec(`UPDATE outgoing_caller_ids SET friendly_name = ?, verified = ?, validation_code = ?, updated_us = ? WHERE sid = ?`,
				c.FriendlyName, c.Verified, c.ValidationCode, w.now.UnixMicro(), c.Sid); err != nil {
				return err
			}
			w.changed(account, "outgoing_caller_id", c.Sid, "update")
			return nil
		case !isNotFound(err):
			return err
		}
		c = CallerID{Sid: NewSid(PrefixCallerID), AccountSid: account, PhoneNumber: phone, FriendlyName: name,
			Verified: verified, ValidationCode: validationCode(), Created: w.now, Updated: w.now}
		if _, err := w.exec(`INSERT INTO outgoing_caller_ids (sid, account_sid, phone_number, friendly_name, verified, validation_code, created_us, updated_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, c.Sid, account, phone, name, verified, c.ValidationCode, w.now.UnixMicro(), w.now.UnixMicro()); err != nil {
			return err
		}
		w.changed(account, "outgoing_caller_id", c.Sid, "create")
		return nil
	})
	return orZero(c, err)
}

// VerifyCallerID confirms a pending caller ID with the code the callee
// entered.
func (s *Store) VerifyCallerID(ctx context.Context, account, phone, code string) error {
	return s.write(ctx, func(w *wtx) error {
		c, err := getTx(w, "OutgoingCallerId", phone, `SELECT `+callerCols+` FROM outgoing_caller_ids c WHERE c.account_sid = ? AND c.phone_number = ?`,
			[]any{account, phone}, scanCaller)
		if err != nil {
			return err
		}
		if c.Verified {
			return nil
		}
		if code == "" || code != c.ValidationCode {
			return invalid("ValidationCode", "the validation code does not match")
		}
		if err := otherAccountsDID(w, account, phone); err != nil {
			return err
		}
		if _, err := w.exec(`UPDATE outgoing_caller_ids SET verified = ?, validation_code = '', updated_us = ? WHERE sid = ?`, true, w.now.UnixMicro(), c.Sid); err != nil {
			return err
		}
		w.changed(account, "outgoing_caller_id", c.Sid, "update")
		return nil
	})
}

const callerWhere = ` WHERE c.sid = ? AND c.account_sid = ? AND c.verified = ?`

// CallerID fetches one of account's verified caller IDs.
func (s *Store) CallerID(ctx context.Context, account, sid string) (CallerID, error) {
	return get(ctx, s, "OutgoingCallerId", sid, `SELECT `+callerCols+` FROM outgoing_caller_ids c`+callerWhere, []any{sid, account, true}, scanCaller)
}

// IsVerifiedCallerID reports whether phone is a verified caller ID of
// account.
func (s *Store) IsVerifiedCallerID(ctx context.Context, account, phone string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM outgoing_caller_ids WHERE account_sid = ? AND phone_number = ? AND verified = ?`),
		account, phone, true).Scan(&n)
	return n > 0, err
}

// RenameCallerID changes a verified caller ID's friendly name.
func (s *Store) RenameCallerID(ctx context.Context, account, sid, name string) (CallerID, error) {
	if err := CheckFriendlyName(name); err != nil {
		return CallerID{}, err
	}
	var c CallerID
	err := s.write(ctx, func(w *wtx) error {
		var err error
		if c, err = getTx(w, "OutgoingCallerId", sid, `SELECT `+callerCols+` FROM outgoing_caller_ids c`+callerWhere, []any{sid, account, true}, scanCaller); err != nil {
			return err
		}
		c.FriendlyName, c.Updated = name, w.now
		if _, err := w.exec(`UPDATE outgoing_caller_ids SET friendly_name = ?, updated_us = ? WHERE sid = ?`, name, w.now.UnixMicro(), sid); err != nil {
			return err
		}
		w.changed(account, "outgoing_caller_id", sid, "update")
		return nil
	})
	return orZero(c, err)
}

// DeleteCallerID removes one of account's caller IDs.
func (s *Store) DeleteCallerID(ctx context.Context, account, sid string) error {
	return s.write(ctx, func(w *wtx) error {
		if err := w.execOne("OutgoingCallerId", sid, `DELETE FROM outgoing_caller_ids WHERE sid = ? AND account_sid = ? AND verified = ?`, sid, account, true); err != nil {
			return err
		}
		w.changed(account, "outgoing_caller_id", sid, "delete")
		return nil
	})
}

// ListCallerIDs lists account's verified caller IDs.
func (s *Store) ListCallerIDs(ctx context.Context, account string, f NumberFilter, p Page) ([]CallerID, string, error) {
	spec := listSpec{from: "outgoing_caller_ids c", pfx: "c.", cols: callerCols}
	spec.and("c.account_sid = ? AND c.verified = ?", account, true)
	if f.PhoneNumber != "" {
		spec.and("c.phone_number LIKE ?", "%"+likeEscape(f.PhoneNumber)+"%")
	}
	if f.FriendlyName != "" {
		spec.and("c.friendly_name = ?", f.FriendlyName)
	}
	return list(ctx, s, spec, p, scanCaller)
}
