package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"
)

// Account statuses and types.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusClosed    = "closed"
	TypeFull        = "Full"
	TypeTrial       = "Trial"
)

// Account is a main account (OwnerSid "") or one of its subaccounts.
// AuthToken is the API secret Twilio's clients send as the Basic-auth
// password; like Twilio, the API shows it to the account itself.
type Account struct {
	Sid          string
	OwnerSid     string
	FriendlyName string
	Status       string
	Type         string
	AuthToken    string
	Created      time.Time
	Updated      time.Time
}

func (a Account) key() (int64, string) { return a.Created.UnixMicro(), a.Sid }

const accountCols = `sid, owner_sid, friendly_name, status, type, auth_token, created_us, updated_us`

func scanAccount(r scanner) (Account, error) {
	var a Account
	var owner sql.NullString
	var c, u int64
	err := r.Scan(&a.Sid, &owner, &a.FriendlyName, &a.Status, &a.Type, &a.AuthToken, &c, &u)
	a.OwnerSid, a.Created, a.Updated = owner.String, fromMicros(c), fromMicros(u)
	return a, err
}

// NewAuthToken returns 32 random hex digits (Twilio's auth token shape).
func NewAuthToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validToken: exactly 32 hex digits, the shape of the tokens xtrunk (and
// Twilio) generate. An operator-chosen token like "changeme" or a short
// one would be guessable; 128 random bits are not.
func validToken(t string) bool {
	if len(t) != 32 {
		return false
	}
	_, err := hex.DecodeString(t)
	return err == nil
}

// Bootstrap makes sure the store has its main account. On an empty store
// it creates one with sid and token (both generated when sid is empty) and
// returns created=true. On a store that has accounts it returns the
// account named sid (or the oldest main account when sid is empty); a sid
// the store does not know is an error, so automation never talks to an
// account that is not there. onCreate (may be nil) runs inside the
// transaction that creates the account: if it fails (say, saving the
// generated credentials), the account is not created.
func (s *Store) Bootstrap(ctx context.Context, sid, token, name string, onCreate func(Account) error) (acct Account, created bool, err error) {
	if sid != "" && !ValidSid(PrefixAccount, sid) {
		return Account{}, false, invalid("AccountSid", "account sid %q is not AC followed by 32 hex digits", sid)
	}
	if sid != "" && !validToken(token) {
		return Account{}, false, invalid("AuthToken", "auth token must be 32 hex digits (128 random bits, e.g. `openssl rand -hex 16`)")
	}
	if name == "" {
		name = "xtrunk main account"
	}
	err = s.write(ctx, func(w *wtx) error {
		var n int
		if err := w.queryRow(`SELECT COUNT(*) FROM accounts`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			q := `SELECT ` + accountCols + ` FROM accounts WHERE owner_sid IS NULL ORDER BY created_us, sid LIMIT 1`
			var args []any
			if sid != "" {
				q, args = `SELECT `+accountCols+` FROM accounts WHERE sid = ?`, []any{sid}
			}
			a, err := getTx(w, "Account", sid, q, args, scanAccount)
			if err != nil {
				return fmt.Errorf("store: the store has accounts but not %s: %w", sid, err)
			}
			acct = a
			return nil
		}
		if sid == "" {
			sid, token = NewSid(PrefixAccount), NewAuthToken()
		}
		acct = Account{Sid: sid, FriendlyName: name, Status: StatusActive, Type: TypeFull, AuthToken: token, Created: w.now, Updated: w.now}
		created = true
		if err := insertAccount(w, acct); err != nil {
			return err
		}
		if onCreate != nil {
			return onCreate(acct)
		}
		return nil
	})
	return acct, created, err
}

func insertAccount(w *wtx, a Account) error {
	var owner any
	if a.OwnerSid != "" {
		owner = a.OwnerSid
	}
	_, err := w.exec(`INSERT INTO accounts (`+accountCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		a.Sid, owner, a.FriendlyName, a.Status, a.Type, a.AuthToken, a.Created.UnixMicro(), a.Updated.UnixMicro())
	if err == nil {
		w.changed(a.Sid, "account", a.Sid, "create")
	}
	return err
}

// Account fetches one account.
func (s *Store) Account(ctx context.Context, sid string) (Account, error) {
	return get(ctx, s, "Account", sid, `SELECT `+accountCols+` FROM accounts WHERE sid = ?`, []any{sid}, scanAccount)
}

// CanAccess reports whether actor may act on target's resources: itself,
// or a subaccount it owns.
func (s *Store) CanAccess(ctx context.Context, actor, target string) (bool, error) {
	if actor == target {
		return true, nil
	}
	a, err := s.Account(ctx, target)
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return a.OwnerSid == actor, nil
}

// CreateSubaccount creates a subaccount of owner, which must be a main
// account. typ "" inherits the owner's type; a trial account cannot own a
// full one.
func (s *Store) CreateSubaccount(ctx context.Context, owner, name, typ string) (Account, error) {
	if err := CheckFriendlyName(name); err != nil {
		return Account{}, err
	}
	var a Account
	err := s.write(ctx, func(w *wtx) error {
		o, err := getTx(w, "Account", owner, `SELECT `+accountCols+` FROM accounts WHERE sid = ?`, []any{owner}, scanAccount)
		if err != nil {
			return err
		}
		if o.OwnerSid != "" {
			return conflict(CodeInvalidParameter, "", "a subaccount cannot create subaccounts")
		}
		switch typ {
		case "":
			typ = o.Type
		case TypeFull, TypeTrial:
			if o.Type == TypeTrial && typ == TypeFull {
				return invalid("Type", "a trial account cannot create a full subaccount")
			}
		default:
			return invalid("Type", "Type must be Full or Trial")
		}
		if name == "" {
			name = "SubAccount Created at " + w.now.Format("2006-01-02 15:04 PM")
		}
		a = Account{Sid: NewSid(PrefixAccount), OwnerSid: owner, FriendlyName: name, Status: StatusActive,
			Type: typ, AuthToken: NewAuthToken(), Created: w.now, Updated: w.now}
		return insertAccount(w, a)
	})
	return a, err
}

// UpdateAccount applies fn to the account and saves it. Only FriendlyName
// and Status may change; a main account's status is fixed and a closed
// account stays closed.
func (s *Store) UpdateAccount(ctx context.Context, sid string, fn func(*Account) error) (Account, error) {
	var a Account
	err := s.write(ctx, func(w *wtx) error {
		old, err := getTx(w, "Account", sid, `SELECT `+accountCols+` FROM accounts WHERE sid = ?`, []any{sid}, scanAccount)
		if err != nil {
			return err
		}
		a = old
		if err := fn(&a); err != nil {
			return err
		}
		a.Sid, a.OwnerSid, a.Type, a.AuthToken, a.Created = old.Sid, old.OwnerSid, old.Type, old.AuthToken, old.Created
		if err := CheckFriendlyName(a.FriendlyName); err != nil {
			return err
		}
		if err := oneOf("Status", a.Status, []string{StatusActive, StatusSuspended, StatusClosed}); err != nil {
			return err
		}
		if a.Status != old.Status {
			if old.OwnerSid == "" {
				return conflict(CodeInvalidParameter, "Status", "the main account's status cannot be changed")
			}
			if old.Status == StatusClosed {
				return conflict(CodeInvalidParameter, "Status", "a closed account cannot be reopened")
			}
		}
		a.Updated = w.now
		if _, err := w.exec(`UPDATE accounts SET friendly_name = ?, status = ?, updated_us = ? WHERE sid = ?`,
			a.FriendlyName, a.Status, a.Updated.UnixMicro(), sid); err != nil {
			return err
		}
		w.changed(sid, "account", sid, "update")
		return nil
	})
	return a, err
}

// AccountFilter narrows ListAccounts.
type AccountFilter struct {
	FriendlyName string
	Status       string
}

// ListAccounts lists viewer and the subaccounts it owns.
func (s *Store) ListAccounts(ctx context.Context, viewer string, f AccountFilter, p Page) ([]Account, string, error) {
	spec := listSpec{from: "accounts", cols: accountCols}
	spec.and("(sid = ? OR owner_sid = ?)", viewer, viewer)
	if f.FriendlyName != "" {
		spec.and("friendly_name = ?", f.FriendlyName)
	}
	if f.Status != "" {
		spec.and("status = ?", f.Status)
	}
	return list(ctx, s, spec, p, scanAccount)
}

// Accounts whose rows another account may see: the account itself and its
// parent (for the sub-domain rule).
func accountAndParent(w *wtx, sid string) ([]string, error) {
	var owner sql.NullString
	if err := w.queryRow(`SELECT owner_sid FROM accounts WHERE sid = ?`, sid).Scan(&owner); err != nil {
		if err == sql.ErrNoRows {
			return nil, notFound("Account", sid)
		}
		return nil, err
	}
	if owner.Valid && owner.String != "" {
		return []string{sid, owner.String}, nil
	}
	return []string{sid}, nil
}
