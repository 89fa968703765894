package store

import (
	"context"
	"net/netip"
	"time"
)

// IPAddress is one entry of an IP access control list: an address, or a
// range when CIDRPrefixLength is shorter than the address.
type IPAddress struct {
	Sid              string
	AccountSid       string
	ListSid          string
	FriendlyName     string
	IPAddress        string
	CIDRPrefixLength int
	Created          time.Time
	Updated          time.Time
}

// Prefix is the range the entry admits.
func (a IPAddress) Prefix() (netip.Prefix, error) {
	addr, err := netip.ParseAddr(a.IPAddress)
	if err != nil {
		return netip.Prefix{}, err
	}
	return addr.Prefix(a.CIDRPrefixLength)
}

func (a IPAddress) key() (int64, string) { return a.Created.UnixMicro(), a.Sid }

const ipCols = `i.sid, i.account_sid, i.acl_sid, i.friendly_name, i.ip_address, i.cidr_prefix_length, i.created_us, i.updated_us`

func scanIP(r scanner) (IPAddress, error) {
	var a IPAddress
	var c, u int64
	err := r.Scan(&a.Sid, &a.AccountSid, &a.ListSid, &a.FriendlyName, &a.IPAddress, &a.CIDRPrefixLength, &c, &u)
	a.Created, a.Updated = fromMicros(c), fromMicros(u)
	return a, err
}

func checkIP(a *IPAddress) error {
	if err := CheckFriendlyName(a.FriendlyName); err != nil {
		return err
	}
	ip, cidr, err := ParseIPAddress(a.IPAddress, a.CIDRPrefixLength)
	if err != nil {
		return err
	}
	a.IPAddress, a.CIDRPrefixLength = ip, cidr
	return nil
}

// CreateIPAddress adds an entry to one of the account's IP ACLs.
// CIDRPrefixLength 0 means the whole address (32 or 128).
func (s *Store) CreateIPAddress(ctx context.Context, a IPAddress) (IPAddress, error) {
	if err := checkIP(&a); err != nil {
		return IPAddress{}, err
	}
	err := s.write(ctx, func(w *wtx) error {
		if _, err := listTx(w, aclKind, a.AccountSid, a.ListSid); err != nil {
			return err
		}
		a.Sid, a.Created, a.Updated = NewSid(PrefixIPAddress), w.now, w.now
		if _, err := w.exec(`INSERT INTO ip_addresses (sid, account_sid, acl_sid, friendly_name, ip_address, cidr_prefix_length, created_us, updated_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, a.Sid, a.AccountSid, a.ListSid, a.FriendlyName, a.IPAddress, a.CIDRPrefixLength,
			w.now.UnixMicro(), w.now.UnixMicro()); err != nil {
			return err
		}
		w.changed(a.AccountSid, "ip_address", a.Sid, "create")
		return nil
	})
	return orZero(a, err)
}

const ipWhere = ` WHERE i.sid = ? AND i.acl_sid = ? AND i.account_sid = ?`

// IPAddress fetches one entry.
func (s *Store) IPAddress(ctx context.Context, account, acl, sid string) (IPAddress, error) {
	return get(ctx, s, "IpAddress", sid, `SELECT `+ipCols+` FROM ip_addresses i`+ipWhere, []any{sid, acl, account}, scanIP)
}

// UpdateIPAddress applies fn and saves after the create checks.
func (s *Store) UpdateIPAddress(ctx context.Context, account, acl, sid string, fn func(*IPAddress) error) (IPAddress, error) {
	var a IPAddress
	err := s.write(ctx, func(w *wtx) error {
		old, err := getTx(w, "IpAddress", sid, `SELECT `+ipCols+` FROM ip_addresses i`+ipWhere, []any{sid, acl, account}, scanIP)
		if err != nil {
			return err
		}
		a = old
		if err := fn(&a); err != nil {
			return err
		}
		a.Sid, a.AccountSid, a.ListSid, a.Created, a.Updated = old.Sid, old.AccountSid, old.ListSid, old.Created, w.now
		if err := checkIP(&a); err != nil {
			return err
		}
		if _, err := w.exec(`UPDATE ip_addresses SET friendly_name = ?, ip_address = ?, cidr_prefix_length = ?, updated_us = ? WHERE sid = ?`,
			a.FriendlyName, a.IPAddress, a.CIDRPrefixLength, w.now.UnixMicro(), sid); err != nil {
			return err
		}
		w.changed(account, "ip_address", sid, "update")
		return nil
	})
	return orZero(a, err)
}

// DeleteIPAddress removes one entry.
func (s *Store) DeleteIPAddress(ctx context.Context, account, acl, sid string) error {
	return s.write(ctx, func(w *wtx) error {
		if err := w.execOne("IpAddress", sid, `DELETE FROM ip_addresses WHERE sid = ? AND acl_sid = ? AND account_sid = ?`, sid, acl, account); err != nil {
			return err
		}
		w.changed(account, "ip_address", sid, "delete")
		return nil
	})
}

// ListIPAddresses lists the entries of one of account's IP ACLs.
func (s *Store) ListIPAddresses(ctx context.Context, account, acl string, p Page) ([]IPAddress, string, error) {
	if _, err := s.IPAccessControlList(ctx, account, acl); err != nil {
		return nil, "", err
	}
	spec := listSpec{from: "ip_addresses i", pfx: "i.", cols: ipCols}
	spec.and("i.acl_sid = ? AND i.account_sid = ?", acl, account)
	return list(ctx, s, spec, p, scanIP)
}

// TrunkIPAddresses returns every entry of every IP ACL attached to trunk:
// what the signalling admits termination traffic from.
func (s *Store) TrunkIPAddresses(ctx context.Context, trunk string) ([]IPAddress, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+ipCols+` FROM ip_addresses i JOIN trunk_ip_access_control_lists m ON m.acl_sid = i.acl_sid
		WHERE m.trunk_sid = ? ORDER BY i.created_us, i.sid`), trunk)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []IPAddress
	for rows.Next() {
		a, err := scanIP(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Credential is a SIP digest credential. Only the HA1 hashes are kept:
// HA1MD5 for MD5 digest, HA1SHA256 for SHA-256 (RFC 8760), both over
// username:Realm:password.
type Credential struct {
	Sid        string
	AccountSid string
	ListSid    string
	Username   string
	Realm      string
	HA1MD5     string
	HA1SHA256  string
	Created    time.Time
	Updated    time.Time
}

func (c Credential) key() (int64, string) { return c.Created.UnixMicro(), c.Sid }

const credCols = `c.sid, c.account_sid, c.list_sid, c.username, c.realm, c.ha1_md5, c.ha1_sha256, c.created_us, c.updated_us`

func scanCred(r scanner) (Credential, error) {
	var c Credential
	var cr, up int64
	err := r.Scan(&c.Sid, &c.AccountSid, &c.ListSid, &c.Username, &c.Realm, &c.HA1MD5, &c.HA1SHA256, &cr, &up)
	c.Created, c.Updated = fromMicros(cr), fromMicros(up)
	return c, err
}

// CreateCredential adds username/password to one of account's credential
// lists. The password must be strong (CheckPassword) and is kept only as
// digest hashes for the store's realm.
func (s *Store) CreateCredential(ctx context.Context, account, list, username, password string) (Credential, error) {
	if err := CheckUsername(username); err != nil {
		return Credential{}, err
	}
	if err := CheckPassword(password); err != nil {
		return Credential{}, err
	}
	realm := s.opts.Realm
	c := Credential{AccountSid: account, ListSid: list, Username: username, Realm: realm,
		HA1MD5: HA1MD5(username, realm, password), HA1SHA256: HA1SHA256(username, realm, password)}
	err := s.write(ctx, func(w *wtx) error {
		if _, err := listTx(w, clKind, account, list); err != nil {
			return err
		}
		var n int
		if err := w.queryRow(`SELECT COUNT(*) FROM credentials WHERE list_sid = ? AND username = ?`, list, username).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return conflict(CodeInvalidParameter, "Username", "Username %s already exists in credential list %s", username, list)
		}
		c.Sid, c.Created, c.Updated = NewSid(PrefixCredential), w.now, w.now
		if _, err := w.exec(`INSERT INTO credentials (sid, account_sid, list_sid, username, realm, ha1_md5, ha1_sha256, created_us, updated_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.Sid, account, list, username, realm, c.HA1MD5, c.HA1SHA256,
			w.now.UnixMicro(), w.now.UnixMicro()); err != nil {
			return err
		}
		w.changed(account, "credential", c.Sid, "create")
		return nil
	})
	return orZero(c, err)
}

const credWhere = ` WHERE c.sid = ? AND c.list_sid = ? AND c.account_sid = ?`

// Credential fetches one credential (hashes included).
func (s *Store) Credential(ctx context.Context, account, list, sid string) (Credential, error) {
	return get(ctx, s, "Credential", sid, `SELECT `+credCols+` FROM credentials c`+credWhere, []any{sid, list, account}, scanCred)
}

// SetCredentialPassword replaces a credential's password (hashes).
func (s *Store) SetCredentialPassword(ctx context.Context, account, list, sid, password string) (Credential, error) {
	if err := CheckPassword(password); err != nil {
		return Credential{}, err
	}
	var c Credential
	err := s.write(ctx, func(w *wtx) error {
		var err error
		if c, err = getTx(w, "Credential", sid, `SELECT `+credCols+` FROM credentials c`+credWhere, []any{sid, list, account}, scanCred); err != nil {
			return err
		}
		c.Realm = s.opts.Realm
		c.HA1MD5, c.HA1SHA256, c.Updated = HA1MD5(c.Username, c.Realm, password), HA1SHA256(c.Username, c.Realm, password), w.now
		if _, err := w.exec(`UPDATE credentials SET realm = ?, ha1_md5 = ?, ha1_sha256 = ?, updated_us = ? WHERE sid = ?`,
			c.Realm, c.HA1MD5, c.HA1SHA256, w.now.UnixMicro(), sid); err != nil {
			return err
		}
		w.changed(account, "credential", sid, "update")
		return nil
	})
	return orZero(c, err)
}

// DeleteCredential removes one credential.
func (s *Store) DeleteCredential(ctx context.Context, account, list, sid string) error {
	return s.write(ctx, func(w *wtx) error {
		if err := w.execOne("Credential", sid, `DELETE FROM credentials WHERE sid = ? AND list_sid = ? AND account_sid = ?`, sid, list, account); err != nil {
			return err
		}
		w.changed(account, "credential", sid, "delete")
		return nil
	})
}

// ListCredentials lists the credentials of one of account's lists.
func (s *Store) ListCredentials(ctx context.Context, account, listSid string, p Page) ([]Credential, string, error) {
	if _, err := s.CredentialList(ctx, account, listSid); err != nil {
		return nil, "", err
	}
	spec := listSpec{from: "credentials c", pfx: "c.", cols: credCols}
	spec.and("c.list_sid = ? AND c.account_sid = ?", listSid, account)
	return list(ctx, s, spec, p, scanCred)
}

// TrunkCredentials returns the credentials named username in every
// credential list attached to trunk: what a digest response is checked
// against.
func (s *Store) TrunkCredentials(ctx context.Context, trunk, username string) ([]Credential, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+credCols+` FROM credentials c JOIN trunk_credential_lists m ON m.list_sid = c.list_sid
		WHERE m.trunk_sid = ? AND c.username = ? ORDER BY c.created_us, c.sid`), trunk, username)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Credential
	for rows.Next() {
		c, err := scanCred(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
