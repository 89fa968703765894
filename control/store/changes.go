package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Change says one resource changed at revision Rev. Kind is one of
// account, trunk, origination_url, ip_access_control_list, ip_address,
// credential_list, credential, phone_number, outgoing_caller_id; Op is
// create, update or delete. Attaching or detaching a list is an update of
// the trunk; deleting a trunk also reports its origination URLs deleted
// and its numbers updated. CDRs and recordings are not in the feed.
type Change struct {
	Rev        int64
	AccountSid string
	Kind       string
	Sid        string
	Op         string
	At         time.Time
}

// Revision is the newest revision (0 for a store that never changed).
// Revisions grow in commit order on both backends, so a reader that has
// applied everything up to R misses nothing by asking ChangesSince(R).
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(rev), 0) FROM changes`).Scan(&rev)
	if err != nil {
		return 0, fmt.Errorf("store: revision: %w", err)
	}
	return rev, nil
}

// ChangesSince returns up to limit changes after rev, oldest first
// (limit <= 0: 1000).
func (s *Store) ChangesSince(ctx context.Context, rev int64, limit int) ([]Change, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT rev, account_sid, kind, sid, op, at_us FROM changes WHERE rev > ? ORDER BY rev LIMIT ?`), rev, limit)
	if err != nil {
		return nil, fmt.Errorf("store: changes: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		var at int64
		if err := rows.Scan(&c.Rev, &c.AccountSid, &c.Kind, &c.Sid, &c.Op, &at); err != nil {
			return nil, fmt.Errorf("store: changes: %w", err)
		}
		c.At = fromMicros(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Watch returns a channel that delivers the store's revision: at once,
// then whenever it moves, coalesced (a slow reader gets the newest value).
// Commits in this process wake it immediately, other processes' commits
// through LISTEN/NOTIFY on PostgreSQL and through polling
// (Options.PollInterval) on SQLite. The channel closes when ctx ends or
// the store closes.
func (s *Store) Watch(ctx context.Context) <-chan int64 {
	out := make(chan int64, 1)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wake <-chan struct{}
	if s.pg {
		wake = s.listen(ctx)
	}
	go func() {
		defer close(out)
		defer cancel()
		tick := time.NewTicker(s.opts.PollInterval)
		defer tick.Stop()
		last := int64(-1)
		for {
			s.bmu.Lock()
			bump := s.bump
			s.bmu.Unlock()
			if rev, err := s.Revision(ctx); err == nil && rev != last {
				last = rev
				select {
				case <-out: // drop the stale value nobody read
				default:
				}
				out <- rev
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-bump:
			case <-wake:
			}
		}
	}()
	return out
}

// listen holds a LISTEN connection (reconnecting) and signals on every
// notification, and after every (re)connect since changes may have been
// missed meanwhile.
func (s *Store) listen(ctx context.Context) <-chan struct{} {
	wake := make(chan struct{}, 1)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	go func() {
		for ctx.Err() == nil {
			conn, err := pgx.Connect(ctx, s.dsn)
			if err == nil {
				_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize())
				if err == nil {
					signal()
					for {
						if _, err = conn.WaitForNotification(ctx); err != nil {
							break
						}
						signal()
					}
				}
				conn.Close(context.Background())
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return wake
}
