package store

import (
	"context"
	"time"
)

// OriginationURL is where a trunk's origination calls go.
type OriginationURL struct {
	Sid          string
	AccountSid   string
	TrunkSid     string
	FriendlyName string
	SipURL       string
	Priority     int // 0-65535, lower wins
	Weight       int // 1-65535, share among equal priority
	Enabled      bool
	Created      time.Time
	Updated      time.Time
}

func (o OriginationURL) key() (int64, string) { return o.Created.UnixMicro(), o.Sid }

const originationCols = `sid, account_sid, trunk_sid, friendly_name, sip_url, priority, weight, enabled, created_us, updated_us`

func scanOrigination(r scanner) (OriginationURL, error) {
	var o OriginationURL
	var c, u int64
	err := r.Scan(&o.Sid, &o.AccountSid, &o.TrunkSid, &o.FriendlyName, &o.SipURL, &o.Priority, &o.Weight, &o.Enabled, &c, &u)
	o.Created, o.Updated = fromMicros(c), fromMicros(u)
	return o, err
}

func (s *Store) checkOrigination(o *OriginationURL) error {
	if err := CheckFriendlyName(o.FriendlyName); err != nil {
		return err
	}
	if _, err := ParseSipURL(o.SipURL, s.opts.Edges); err != nil {
		return err
	}
	if o.Priority < MinPriority || o.Priority > MaxPriority {
		return invalid("Priority", "Priority must be %d-%d", MinPriority, MaxPriority)
	}
	if o.Weight < MinWeight || o.Weight > MaxWeight {
		return invalid("Weight", "Weight must be %d-%d", MinWeight, MaxWeight)
	}
	return nil
}

// CreateOriginationURL adds o to one of account's trunks (at most
// MaxOriginationURLs per trunk).
func (s *Store) CreateOriginationURL(ctx context.Context, o OriginationURL) (OriginationURL, error) {
	if err := s.checkOrigination(&o); err != nil {
		return OriginationURL{}, err
	}
	err := s.write(ctx, func(w *wtx) error {
		if _, err := trunkTx(w, o.AccountSid, o.TrunkSid); err != nil {
			return err
		}
		var n int
		if err := w.queryRow(`SELECT COUNT(*) FROM origination_urls WHERE trunk_sid = ?`, o.TrunkSid).Scan(&n); err != nil {
			return err
		}
		if n >= MaxOriginationURLs {
			return conflict(CodeInvalidParameter, "SipUrl", "Trunk %s already has the maximum of %d origination URLs", o.TrunkSid, MaxOriginationURLs)
		}
		o.Sid, o.Created, o.Updated = NewSid(PrefixOriginationURL), w.now, w.now
		if _, err := w.exec(`INSERT INTO origination_urls (`+originationCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.Sid, o.AccountSid, o.TrunkSid, o.FriendlyName, o.SipURL, o.Priority, o.Weight, o.Enabled,
			o.Created.UnixMicro(), o.Updated.UnixMicro()); err != nil {
			return err
		}
		w.changed(o.AccountSid, "origination_url", o.Sid, "create")
		return nil
	})
	return orZero(o, err)
}

// OriginationURL fetches one origination URL of account's trunk.
func (s *Store) OriginationURL(ctx context.Context, account, trunk, sid string) (OriginationURL, error) {
	return get(ctx, s, "OriginationUrl", sid, `SELECT `+originationCols+` FROM origination_urls WHERE sid = ? AND trunk_sid = ? AND account_sid = ?`,
		[]any{sid, trunk, account}, scanOrigination)
}

// UpdateOriginationURL applies fn and saves after the create checks.
func (s *Store) UpdateOriginationURL(ctx context.Context, account, trunk, sid string, fn func(*OriginationURL) error) (OriginationURL, error) {
	var o OriginationURL
	err := s.write(ctx, func(w *wtx) error {
		old, err := getTx(w, "OriginationUrl", sid, `SELECT `+originationCols+` FROM origination_urls WHERE sid = ? AND trunk_sid = ? AND account_sid = ?`,
			[]any{sid, trunk, account}, scanOrigination)
		if err != nil {
			return err
		}
		o = old
		if err := fn(&o); err != nil {
			return err
		}
		o.Sid, o.AccountSid, o.TrunkSid, o.Created = old.Sid, old.AccountSid, old.TrunkSid, old.Created
		if err := s.checkOrigination(&o); err != nil {
			return err
		}
		o.Updated = w.now
		if _, err := w.exec(`UPDATE origination_urls SET friendly_name = ?, sip_url = ?, priority = ?, weight = ?, enabled = ?, updated_us = ? WHERE sid = ?`,
			o.FriendlyName, o.SipURL, o.Priority, o.Weight, o.Enabled, o.Updated.UnixMicro(), sid); err != nil {
			return err
		}
		w.changed(account, "origination_url", sid, "update")
		return nil
	})
	return orZero(o, err)
}

// DeleteOriginationURL removes one origination URL.
func (s *Store) DeleteOriginationURL(ctx context.Context, account, trunk, sid string) error {
	return s.write(ctx, func(w *wtx) error {
		if err := w.execOne("OriginationUrl", sid, `DELETE FROM origination_urls WHERE sid = ? AND trunk_sid = ? AND account_sid = ?`, sid, trunk, account); err != nil {
			return err
		}
		w.changed(account, "origination_url", sid, "delete")
		return nil
	})
}

// ListOriginationURLs lists a trunk's origination URLs; the trunk must be
// account's.
func (s *Store) ListOriginationURLs(ctx context.Context, account, trunk string, p Page) ([]OriginationURL, string, error) {
	if _, err := s.Trunk(ctx, account, trunk); err != nil {
		return nil, "", err
	}
	spec := listSpec{from: "origination_urls", cols: originationCols}
	spec.and("trunk_sid = ? AND account_sid = ?", trunk, account)
	return list(ctx, s, spec, p, scanOrigination)
}
