package store

import (
	"context"
	"time"
)

// NamedList is an IP access control list or a credential list: a named
// container of IP addresses or credentials that trunks attach.
type NamedList struct {
	Sid          string
	AccountSid   string
	FriendlyName string
	Created      time.Time
	Updated      time.Time
	TrunkSid     string // set when read through a trunk attachment
}

// IPAccessControlList holds IP addresses / CIDR ranges.
type IPAccessControlList = NamedList

// CredentialList holds SIP digest credentials.
type CredentialList = NamedList

func (l NamedList) key() (int64, string) { return l.Created.UnixMicro(), l.Sid }

// listKind describes the two kinds of NamedList.
type listKind struct {
	table, assoc, assocCol, prefix, kind, what string
}

var (
	aclKind = listKind{"ip_access_control_lists", "trunk_ip_access_control_lists", "acl_sid", PrefixIPACL, "ip_access_control_list", "IpAccessControlList"}
	clKind  = listKind{"credential_lists", "trunk_credential_lists", "list_sid", PrefixCredentialList, "credential_list", "CredentialList"}
)

const namedListCols = `l.sid, l.account_sid, l.friendly_name, l.created_us, l.updated_us`

func scanNamedList(r scanner) (NamedList, error) {
	var l NamedList
	var c, u int64
	err := r.Scan(&l.Sid, &l.AccountSid, &l.FriendlyName, &c, &u)
	l.Created, l.Updated = fromMicros(c), fromMicros(u)
	return l, err
}

func (s *Store) createList(ctx context.Context, k listKind, account, name string) (NamedList, error) {
	if err := CheckFriendlyName(name); err != nil {
		return NamedList{}, err
	}
	var l NamedList
	err := s.write(ctx, func(w *wtx) error {
		l = NamedList{Sid: NewSid(k.prefix), AccountSid: account, FriendlyName: name, Created: w.now, Updated: w.now}
		if _, err := w.exec(`INSERT INTO `+k.table+` (sid, account_sid, friendly_name, created_us, updated_us) VALUES (?, ?, ?, ?, ?)`,
			l.Sid, account, name, w.now.UnixMicro(), w.now.UnixMicro()); err != nil {
			return err
		}
		w.changed(account, k.kind, l.Sid, "create")
		return nil
	})
	return l, err
}

func (s *Store) getList(ctx context.Context, k listKind, account, sid string) (NamedList, error) {
	return get(ctx, s, k.what, sid, `SELECT `+namedListCols+` FROM `+k.table+` l WHERE l.sid = ? AND l.account_sid = ?`, []any{sid, account}, scanNamedList)
}

func listTx(w *wtx, k listKind, account, sid string) (NamedList, error) {
	return getTx(w, k.what, sid, `SELECT `+namedListCols+` FROM `+k.table+` l WHERE l.sid = ? AND l.account_sid = ?`, []any{sid, account}, scanNamedList)
}

func (s *Store) renameList(ctx context.Context, k listKind, account, sid, name string) (NamedList, error) {
	if err := CheckFriendlyName(name); err != nil {
		return NamedList{}, err
	}
	var l NamedList
	err := s.write(ctx, func(w *wtx) error {
		var err error
		if l, err = listTx(w, k, account, sid); err != nil {
			return err
		}
		l.FriendlyName, l.Updated = name, w.now
		if _, err := w.exec(`UPDATE `+k.table+` SET friendly_name = ?, updated_us = ? WHERE sid = ?`, name, w.now.UnixMicro(), sid); err != nil {
			return err
		}
		w.changed(account, k.kind, sid, "update")
		return nil
	})
	return l, err
}

// deleteList deletes a list, its entries and its trunk attachments (the
// trunks then enforce what remains attached).
func (s *Store) deleteList(ctx context.Context, k listKind, account, sid string) error {
	return s.write(ctx, func(w *wtx) error {
		if _, err := listTx(w, k, account, sid); err != nil {
			return err
		}
		trunks, err := sids(w, `SELECT trunk_sid FROM `+k.assoc+` WHERE `+k.assocCol+` = ?`, sid)
		if err != nil {
			return err
		}
		if _, err := w.exec(`DELETE FROM `+k.table+` WHERE sid = ?`, sid); err != nil {
			return err
		}
		for _, t := range trunks {
			w.changed(account, "trunk", t, "update")
		}
		w.changed(account, k.kind, sid, "delete")
		return nil
	})
}

func (s *Store) listLists(ctx context.Context, k listKind, account string, p Page) ([]NamedList, string, error) {
	spec := listSpec{from: k.table + " l", pfx: "l.", cols: namedListCols}
	spec.and("l.account_sid = ?", account)
	return list(ctx, s, spec, p, scanNamedList)
}

func (s *Store) attachList(ctx context.Context, k listKind, account, trunk, sid string) (NamedList, error) {
	var l NamedList
	err := s.write(ctx, func(w *wtx) error {
		if _, err := trunkTx(w, account, trunk); err != nil {
			return err
		}
		var err error
		if l, err = listTx(w, k, account, sid); err != nil {
			return err
		}
		var n int
		if err := w.queryRow(`SELECT COUNT(*) FROM `+k.assoc+` WHERE trunk_sid = ? AND `+k.assocCol+` = ?`, trunk, sid).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return conflict(CodeInvalidParameter, k.what+"Sid", "%s %s is already associated with trunk %s", k.what, sid, trunk)
		}
		if _, err := w.exec(`INSERT INTO `+k.assoc+` (trunk_sid, `+k.assocCol+`, account_sid, created_us) VALUES (?, ?, ?, ?)`,
			trunk, sid, account, w.now.UnixMicro()); err != nil {
			return err
		}
		w.changed(account, "trunk", trunk, "update")
		return nil
	})
	l.TrunkSid = trunk
	return l, err
}

func (s *Store) detachList(ctx context.Context, k listKind, account, trunk, sid string) error {
	return s.write(ctx, func(w *wtx) error {
		if err := w.execOne(k.what, sid, `DELETE FROM `+k.assoc+` WHERE trunk_sid = ? AND `+k.assocCol+` = ? AND account_sid = ?`, trunk, sid, account); err != nil {
			return err
		}
		w.changed(account, "trunk", trunk, "update")
		return nil
	})
}

func (s *Store) trunkList(ctx context.Context, k listKind, account, trunk, sid string) (NamedList, error) {
	l, err := get(ctx, s, k.what, sid, `SELECT `+namedListCols+` FROM `+k.assoc+` m JOIN `+k.table+` l ON l.sid = m.`+k.assocCol+
		` WHERE m.trunk_sid = ? AND m.`+k.assocCol+` = ? AND m.account_sid = ?`, []any{trunk, sid, account}, scanNamedList)
	l.TrunkSid = trunk
	return l, err
}

func (s *Store) trunkLists(ctx context.Context, k listKind, account, trunk string, p Page) ([]NamedList, string, error) {
	if _, err := s.Trunk(ctx, account, trunk); err != nil {
		return nil, "", err
	}
	spec := listSpec{from: k.assoc + " m JOIN " + k.table + " l ON l.sid = m." + k.assocCol, pfx: "l.", cols: namedListCols}
	spec.and("m.trunk_sid = ? AND m.account_sid = ?", trunk, account)
	out, next, err := list(ctx, s, spec, p, scanNamedList)
	for i := range out {
		out[i].TrunkSid = trunk
	}
	return out, next, err
}

// CreateIPAccessControlList creates an empty IP ACL.
func (s *Store) CreateIPAccessControlList(ctx context.Context, account, name string) (IPAccessControlList, error) {
	return s.createList(ctx, aclKind, account, name)
}

// IPAccessControlList fetches one of account's IP ACLs.
func (s *Store) IPAccessControlList(ctx context.Context, account, sid string) (IPAccessControlList, error) {
	return s.getList(ctx, aclKind, account, sid)
}

// RenameIPAccessControlList changes an IP ACL's friendly name.
func (s *Store) RenameIPAccessControlList(ctx context.Context, account, sid, name string) (IPAccessControlList, error) {
	return s.renameList(ctx, aclKind, account, sid, name)
}

// DeleteIPAccessControlList deletes an IP ACL, its addresses and its
// trunk attachments.
func (s *Store) DeleteIPAccessControlList(ctx context.Context, account, sid string) error {
	return s.deleteList(ctx, aclKind, account, sid)
}

// ListIPAccessControlLists lists account's IP ACLs.
func (s *Store) ListIPAccessControlLists(ctx context.Context, account string, p Page) ([]IPAccessControlList, string, error) {
	return s.listLists(ctx, aclKind, account, p)
}

// AttachIPAccessControlList attaches one of account's IP ACLs to one of
// its trunks.
func (s *Store) AttachIPAccessControlList(ctx context.Context, account, trunk, sid string) (IPAccessControlList, error) {
	return s.attachList(ctx, aclKind, account, trunk, sid)
}

// DetachIPAccessControlList detaches an IP ACL from a trunk.
func (s *Store) DetachIPAccessControlList(ctx context.Context, account, trunk, sid string) error {
	return s.detachList(ctx, aclKind, account, trunk, sid)
}

// TrunkIPAccessControlList fetches an IP ACL attached to a trunk.
func (s *Store) TrunkIPAccessControlList(ctx context.Context, account, trunk, sid string) (IPAccessControlList, error) {
	return s.trunkList(ctx, aclKind, account, trunk, sid)
}

// ListTrunkIPAccessControlLists lists the IP ACLs attached to a trunk.
func (s *Store) ListTrunkIPAccessControlLists(ctx context.Context, account, trunk string, p Page) ([]IPAccessControlList, string, error) {
	return s.trunkLists(ctx, aclKind, account, trunk, p)
}

// CreateCredentialList creates an empty credential list.
func (s *Store) CreateCredentialList(ctx context.Context, account, name string) (CredentialList, error) {
	return s.createList(ctx, clKind, account, name)
}

// CredentialList fetches one of account's credential lists.
func (s *Store) CredentialList(ctx context.Context, account, sid string) (CredentialList, error) {
	return s.getList(ctx, clKind, account, sid)
}

// RenameCredentialList changes a credential list's friendly name.
func (s *Store) RenameCredentialList(ctx context.Context, account, sid, name string) (CredentialList, error) {
	return s.renameList(ctx, clKind, account, sid, name)
}

// DeleteCredentialList deletes a credential list, its credentials and its
// trunk attachments.
func (s *Store) DeleteCredentialList(ctx context.Context, account, sid string) error {
	return s.deleteList(ctx, clKind, account, sid)
}

// ListCredentialLists lists account's credential lists.
func (s *Store) ListCredentialLists(ctx context.Context, account string, p Page) ([]CredentialList, string, error) {
	return s.listLists(ctx, clKind, account, p)
}

// AttachCredentialList attaches one of account's credential lists to one
// of its trunks.
func (s *Store) AttachCredentialList(ctx context.Context, account, trunk, sid string) (CredentialList, error) {
	return s.attachList(ctx, clKind, account, trunk, sid)
}

// DetachCredentialList detaches a credential list from a trunk.
func (s *Store) DetachCredentialList(ctx context.Context, account, trunk, sid string) error {
	return s.detachList(ctx, clKind, account, trunk, sid)
}

// TrunkCredentialList fetches a credential list attached to a trunk.
func (s *Store) TrunkCredentialList(ctx context.Context, account, trunk, sid string) (CredentialList, error) {
	return s.trunkList(ctx, clKind, account, trunk, sid)
}

// ListTrunkCredentialLists lists the credential lists attached to a trunk.
func (s *Store) ListTrunkCredentialLists(ctx context.Context, account, trunk string, p Page) ([]CredentialList, string, error) {
	return s.trunkLists(ctx, clKind, account, trunk, p)
}
