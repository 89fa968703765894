package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// Paging limits (Twilio's).
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Page selects one page of a list. Lists are ordered by creation (oldest
// first; calls and recordings newest first), ties broken by sid, and paged
// by keyset: Token is the position after the last row of the previous page,
// so rows created or deleted meanwhile never shift a page.
type Page struct {
	Size   int    // 1..1000; 0 means 50
	Token  string // Next of the previous page; wins over Offset
	Offset int    // rows to skip when there is no Token (Twilio's Page × PageSize)
}

// ValidPageToken reports whether tok is a token this store hands out.
func ValidPageToken(tok string) bool {
	_, _, err := parseToken(tok)
	return err == nil
}

// A token is "PA" + 16 hex digits of the creation time + the row's sid.
func makeToken(us int64, sid string) string {
	return fmt.Sprintf("PA%016x%s", uint64(us), sid)
}

func parseToken(tok string) (int64, string, error) {
	if len(tok) != 2+16+34 || tok[:2] != "PA" {
		return 0, "", invalid("PageToken", "PageToken is invalid")
	}
	us, err := strconv.ParseUint(tok[2:18], 16, 64)
	sid := tok[18:]
	if err != nil || !ValidSid(sid[:2], sid) {
		return 0, "", invalid("PageToken", "PageToken is invalid")
	}
	return int64(us), sid, nil
}

type keyed interface {
	key() (int64, string)
}

// listSpec is a SELECT over one table (or join) with conditions.
type listSpec struct {
	from  string // table or join, aliased so created_us/sid resolve (prefix)
	pfx   string // column prefix, e.g. "t."
	cols  string
	where []string
	args  []any
	desc  bool
}

func (l *listSpec) and(cond string, args ...any) {
	l.where = append(l.where, cond)
	l.args = append(l.args, args...)
}

type scanner interface {
	Scan(dest ...any) error
}

func list[T keyed](ctx context.Context, s *Store, spec listSpec, p Page, scan func(scanner) (T, error)) ([]T, string, error) {
	size := p.Size
	if size <= 0 {
		size = DefaultPageSize
	}
	if size > MaxPageSize {
		size = MaxPageSize
	}
	where, args := append([]string(nil), spec.where...), append([]any(nil), spec.args...)
	cmp, order := ">", "ASC"
	if spec.desc {
		cmp, order = "<", "DESC"
	}
	offset := 0
	if p.Token != "" {
		us, sid, err := parseToken(p.Token)
		if err != nil {
			return nil, "", err
		}
		where = append(where, fmt.Sprintf("(%screated_us, %ssid) %s (?, ?)", spec.pfx, spec.pfx, cmp))
		args = append(args, us, sid)
	} else if p.Offset > 0 {
		offset = p.Offset
	}
	query := "SELECT " + spec.cols + " FROM " + spec.from
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += fmt.Sprintf(" ORDER BY %screated_us %s, %ssid %s LIMIT %d OFFSET %d", spec.pfx, order, spec.pfx, order, size+1, offset)
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list: %w", err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", fmt.Errorf("store: list: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: list: %w", err)
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		us, sid := out[size-1].key()
		next = makeToken(us, sid)
	}
	return out, next, nil
}

// get runs a single-row query and maps no rows to ErrNotFound.
func get[T any](ctx context.Context, s *Store, what, sid string, query string, args []any, scan func(scanner) (T, error)) (T, error) {
	v, err := scan(s.db.QueryRowContext(ctx, s.q(query), args...))
	return found(v, err, what, sid)
}

// getTx is get inside a write transaction.
func getTx[T any](w *wtx, what, sid string, query string, args []any, scan func(scanner) (T, error)) (T, error) {
	v, err := scan(w.QueryRowContext(w.ctx, w.s.q(query), args...))
	return found(v, err, what, sid)
}

// found is a single-row scan's result with no rows as what's sid not
// found.
func found[T any](v T, err error, what, sid string) (T, error) {
	if err == sql.ErrNoRows {
		var zero T
		return zero, notFound(what, sid)
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("store: %s: %w", what, err)
	}
	return v, nil
}

// orZero is v, or with err the zero value: a failed write hands back
// nothing half made.
func orZero[T any](v T, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// execOne runs a statement that must touch a row (a DELETE by sid): none
// is what's sid not found.
func (w *wtx) execOne(what, sid, query string, args ...any) error {
	res, err := w.exec(query, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound(what, sid)
	}
	return nil
}
