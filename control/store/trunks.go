package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Trunk is an Elastic SIP trunk.
type Trunk struct {
	Sid                    string
	AccountSid             string
	FriendlyName           string
	DomainName             string // termination SIP URI host; "" for none
	DisasterRecoveryURL    string
	DisasterRecoveryMethod string // GET or POST
	TransferMode           string // disable-all, enable-all, sip-only
	TransferCallerID       string // from-transferee, from-transferor
	Secure                 bool   // TLS + SRTP
	CnamLookupEnabled      bool
	SymmetricRTPEnabled    bool
	RecordingMode          string
	RecordingTrim          string
	Created                time.Time
	Updated                time.Time

	// Derived from the attached lists (read-only).
	HasIPACL          bool
	HasCredentialList bool
}

// AuthTypes is Twilio's auth_type_set: which of IP_ACL and CREDENTIAL_LIST
// the trunk enforces.
func (t Trunk) AuthTypes() []string {
	out := []string{}
	if t.HasCredentialList {
		out = append(out, "CREDENTIAL_LIST")
	}
	if t.HasIPACL {
		out = append(out, "IP_ACL")
	}
	return out
}

func (t Trunk) key() (int64, string) { return t.Created.UnixMicro(), t.Sid }

// NewTrunk returns a trunk with Twilio's defaults, for CreateTrunk.
func NewTrunk(account string) Trunk {
	return Trunk{
		AccountSid:             account,
		DisasterRecoveryMethod: "POST",
		TransferMode:           "disable-all",
		TransferCallerID:       "from-transferee",
		RecordingMode:          "do-not-record",
		RecordingTrim:          "do-not-trim",
	}
}

const trunkCols = `t.sid, t.account_sid, t.friendly_name, t.domain_name, t.disaster_recovery_url, t.disaster_recovery_method,
	t.transfer_mode, t.transfer_caller_id, t.secure, t.cnam_lookup_enabled, t.symmetric_rtp_enabled,
	t.recording_mode, t.recording_trim, t.created_us, t.updated_us,
	EXISTS (SELECT 1 FROM trunk_ip_access_control_lists x WHERE x.trunk_sid = t.sid),
	EXISTS (SELECT 1 FROM trunk_credential_lists y WHERE y.trunk_sid = t.sid)`

func scanTrunk(r scanner) (Trunk, error) {
	var t Trunk
	var domain sql.NullString
	var c, u int64
	err := r.Scan(&t.Sid, &t.AccountSid, &t.FriendlyName, &domain, &t.DisasterRecoveryURL, &t.DisasterRecoveryMethod,
		&t.TransferMode, &t.TransferCallerID, &t.Secure, &t.CnamLookupEnabled, &t.SymmetricRTPEnabled,
		&t.RecordingMode, &t.RecordingTrim, &c, &u, &t.HasIPACL, &t.HasCredentialList)
	t.DomainName, t.Created, t.Updated = domain.String, fromMicros(c), fromMicros(u)
	return t, err
}

func (s *Store) checkTrunk(t *Trunk) error {
	if err := CheckFriendlyName(t.FriendlyName); err != nil {
		return err
	}
	if t.DomainName != "" {
		d, err := CheckDomainName(t.DomainName, s.opts.Domain)
		if err != nil {
			return err
		}
		t.DomainName = d
	}
	if err := CheckHTTPURL("DisasterRecoveryUrl", t.DisasterRecoveryURL); err != nil {
		return err
	}
	m, err := CheckHTTPMethod("DisasterRecoveryMethod", t.DisasterRecoveryMethod)
	if err != nil {
		return err
	}
	t.DisasterRecoveryMethod = m
	if err := oneOf("TransferMode", t.TransferMode, TransferModes); err != nil {
		return err
	}
	if err := oneOf("TransferCallerId", t.TransferCallerID, TransferCallerIDs); err != nil {
		return err
	}
	if err := oneOf("Mode", t.RecordingMode, RecordingModes); err != nil {
		return err
	}
	return oneOf("Trim", t.RecordingTrim, RecordingTrims)
}

// checkDomain enforces uniqueness and the sub-domain rule for domain on
// trunk self (empty for a new trunk) of account.
func (s *Store) checkDomain(w *wtx, account, self, domain string) error {
	var other string
	err := w.queryRow(`SELECT sid FROM trunks WHERE domain_name = ? AND sid <> ?`, domain, self).Scan(&other)
	if err == nil {
		return conflict(CodeDomainTaken, "DomainName", "DomainName %s is already taken", domain)
	}
	if err != sql.ErrNoRows {
		return err
	}
	parent, ok := ParentDomain(domain, s.opts.Domain)
	if !ok {
		return nil
	}
	owners, err := accountAndParent(w, account)
	if err != nil {
		return err
	}
	q := `SELECT COUNT(*) FROM trunks WHERE domain_name = ? AND account_sid IN (?` + strings.Repeat(", ?", len(owners)-1) + `)`
	args := []any{parent}
	for _, o := range owners {
		args = append(args, o)
	}
	var n int
	if err := w.queryRow(q, args...).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return conflict(CodeTrunkDependencies, "DomainName", "DomainName %s is a sub-domain of %s, which does not exist in this account or its parent account", domain, parent)
	}
	return nil
}

func hasSubdomains(w *wtx, domain string) (bool, error) {
	var n int
	err := w.queryRow(`SELECT COUNT(*) FROM trunks WHERE domain_name LIKE ?`, "%."+domain).Scan(&n)
	return n > 0, err
}

// CreateTrunk validates t (see NewTrunk for defaults) and stores it with a
// new sid.
func (s *Store) CreateTrunk(ctx context.Context, t Trunk) (Trunk, error) {
	if err := s.checkTrunk(&t); err != nil {
		return Trunk{}, err
	}
	err := s.write(ctx, func(w *wtx) error {
		if t.DomainName != "" {
			if err := s.checkDomain(w, t.AccountSid, "", t.DomainName); err != nil {
				return err
			}
		}
		t.Sid, t.Created, t.Updated = NewSid(PrefixTrunk), w.now, w.now
		t.HasIPACL, t.HasCredentialList = false, false
		_, err := w.exec(`INSERT INTO trunks (sid, account_sid, friendly_name, domain_name, disaster_recovery_url,
			disaster_recovery_method, transfer_mode, transfer_caller_id, secure, cnam_lookup_enabled, symmetric_rtp_enabled,
			recording_mode, recording_trim, created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.Sid, t.AccountSid, t.FriendlyName, nullIfEmpty(t.DomainName), t.DisasterRecoveryURL,
			t.DisasterRecoveryMethod, t.TransferMode, t.TransferCallerID, t.Secure, t.CnamLookupEnabled, t.SymmetricRTPEnabled,
			t.RecordingMode, t.RecordingTrim, t.Created.UnixMicro(), t.Updated.UnixMicro())
		if err != nil {
			return err
		}
		w.changed(t.AccountSid, "trunk", t.Sid, "create")
		return nil
	})
	return orZero(t, err)
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Trunk fetches one of account's trunks.
func (s *Store) Trunk(ctx context.Context, account, sid string) (Trunk, error) {
	return get(ctx, s, "Trunk", sid, `SELECT `+trunkCols+` FROM trunks t WHERE t.sid = ? AND t.account_sid = ?`, []any{sid, account}, scanTrunk)
}

// TrunkByDomain finds the trunk whose termination domain is domain (any
// account): the signalling's lookup for a Request-URI host (see
// TerminationHost for localized hosts).
func (s *Store) TrunkByDomain(ctx context.Context, domain string) (Trunk, error) {
	return get(ctx, s, "Trunk", domain, `SELECT `+trunkCols+` FROM trunks t WHERE t.domain_name = ?`, []any{strings.ToLower(domain)}, scanTrunk)
}

func trunkTx(w *wtx, account, sid string) (Trunk, error) {
	return getTx(w, "Trunk", sid, `SELECT `+trunkCols+` FROM trunks t WHERE t.sid = ? AND t.account_sid = ?`, []any{sid, account}, scanTrunk)
}

// UpdateTrunk applies fn to one of account's trunks and saves it after
// the same checks as CreateTrunk (plus: a domain with sub-domains cannot be
// renamed).
func (s *Store) UpdateTrunk(ctx context.Context, account, sid string, fn func(*Trunk) error) (Trunk, error) {
	var t Trunk
	err := s.write(ctx, func(w *wtx) error {
		old, err := trunkTx(w, account, sid)
		if err != nil {
			return err
		}
		t = old
		if err := fn(&t); err != nil {
			return err
		}
		t.Sid, t.AccountSid, t.Created = old.Sid, old.AccountSid, old.Created
		t.HasIPACL, t.HasCredentialList = old.HasIPACL, old.HasCredentialList
		if err := s.checkTrunk(&t); err != nil {
			return err
		}
		if t.DomainName != old.DomainName {
			if old.DomainName != "" {
				has, err := hasSubdomains(w, old.DomainName)
				if err != nil {
					return err
				}
				if has {
					return conflict(CodeTrunkDependencies, "DomainName", "DomainName %s has sub-domains and cannot be renamed", old.DomainName)
				}
			}
			if t.DomainName != "" {
				if err := s.checkDomain(w, account, sid, t.DomainName); err != nil {
					return err
				}
			}
		}
		t.Updated = w.now
		_, err = w.exec(`UPDATE trunks SET friendly_name = ?, domain_name = ?, disaster_recovery_url = ?, disaster_recovery_method = ?,
			transfer_mode = ?, transfer_caller_id = ?, secure = ?, cnam_lookup_enabled = ?, symmetric_rtp_enabled = ?,
			recording_mode = ?, recording_trim = ?, updated_us = ? WHERE sid = ?`,
			t.FriendlyName, nullIfEmpty(t.DomainName), t.DisasterRecoveryURL, t.DisasterRecoveryMethod,
			t.TransferMode, t.TransferCallerID, t.Secure, t.CnamLookupEnabled, t.SymmetricRTPEnabled,
			t.RecordingMode, t.RecordingTrim, t.Updated.UnixMicro(), sid)
		if err != nil {
			return err
		}
		w.changed(account, "trunk", sid, "update")
		return nil
	})
	return orZero(t, err)
}

// DeleteTrunk deletes one of account's trunks with its origination URLs
// and list attachments. Its phone numbers stay in the account, associated
// with no trunk. A trunk whose domain has sub-domains cannot be deleted.
func (s *Store) DeleteTrunk(ctx context.Context, account, sid string) error {
	return s.write(ctx, func(w *wtx) error {
		t, err := trunkTx(w, account, sid)
		if err != nil {
			return err
		}
		if t.DomainName != "" {
			has, err := hasSubdomains(w, t.DomainName)
			if err != nil {
				return err
			}
			if has {
				return conflict(CodeTrunkDependencies, "", "Trunk %s has sub-domains of %s and cannot be deleted", sid, t.DomainName)
			}
		}
		numbers, err := sids(w, `SELECT sid FROM phone_numbers WHERE trunk_sid = ?`, sid)
		if err != nil {
			return err
		}
		if _, err := w.exec(`UPDATE phone_numbers SET trunk_sid = NULL, updated_us = ? WHERE trunk_sid = ?`, w.now.UnixMicro(), sid); err != nil {
			return err
		}
		for _, n := range numbers {
			w.changed(account, "phone_number", n, "update")
		}
		urls, err := sids(w, `SELECT sid FROM origination_urls WHERE trunk_sid = ?`, sid)
		if err != nil {
			return err
		}
		for _, u := range urls {
			w.changed(account, "origination_url", u, "delete")
		}
		if _, err := w.exec(`DELETE FROM trunks WHERE sid = ?`, sid); err != nil {
			return err
		}
		w.changed(account, "trunk", sid, "delete")
		return nil
	})
}

func sids(w *wtx, query string, args ...any) ([]string, error) {
	rows, err := w.QueryContext(w.ctx, w.s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ListTrunks lists account's trunks.
func (s *Store) ListTrunks(ctx context.Context, account string, p Page) ([]Trunk, string, error) {
	spec := listSpec{from: "trunks t", pfx: "t.", cols: trunkCols}
	spec.and("t.account_sid = ?", account)
	return list(ctx, s, spec, p, scanTrunk)
}
