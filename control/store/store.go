// Package store is xtrunk's provisioning store: accounts, trunks,
// origination URLs, IP access control lists, credential lists, phone
// numbers, verified caller IDs, CDRs and recordings, and a change feed.
//
// One schema with versioned migrations runs on two backends through
// database/sql: an embedded SQLite file (modernc.org/sqlite, pure Go; WAL,
// foreign keys, synchronous=FULL) for a single box, and PostgreSQL
// (jackc/pgx) for several edges sharing one store.
//
// The rules of the provisioning model live here, inside the write
// transactions, so no client can break them: unique termination domains and
// the sub-domain rule, at most ten origination URLs, priority and weight
// ranges, sip: URIs, E.164 numbers, a number on one trunk at most, strong
// SIP passwords stored only as digest HA1 hashes, and account isolation
// (every call names the account it acts for; another account's rows are
// ErrNotFound).
//
// Writes are serialized: an in-process mutex plus BEGIN IMMEDIATE on SQLite
// and a transaction-scoped advisory lock on PostgreSQL. Provisioning is
// low-rate, and serial writes make every check-then-write rule race-free
// across processes and give the change feed revisions in commit order.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Store is a handle on one provisioning database. It is safe for
// concurrent use; several processes may open the same database.
type Store struct {
	db      *sql.DB
	pg      bool
	dsn     string // PostgreSQL DSN for LISTEN connections
	lockKey int64  // PostgreSQL advisory lock serializing writers
	channel string // PostgreSQL NOTIFY channel
	opts    Options

	wmu sync.Mutex // serializes this process's writers

	bmu  sync.Mutex
	bump chan struct{} // closed and replaced on every local commit

	closeOnce sync.Once
	closed    chan struct{}
}

// Options configure a Store.
type Options struct {
	// Domain is the base domain: trunk domain names are {prefix}.pstn.{Domain}.
	Domain string
	// Edges are the edge names allowed in origination URIs' edge= parameter
	// (and in localized termination hosts). Empty: any edge name.
	Edges []string
	// Realm is the SIP digest realm credentials are hashed for. Default:
	// Domain.
	Realm string
	// PollInterval is how often Watch polls the database for other
	// processes' writes (SQLite; on PostgreSQL a fallback to LISTEN).
	// Default 200ms on SQLite, 1s on PostgreSQL.
	PollInterval time.Duration
}

// DefaultDomain is used when Options.Domain is empty.
const DefaultDomain = "localhost"

// Open opens (creating and migrating as needed) the store named by dsn:
// "sqlite:PATH" (or a bare path ending in .db) for the embedded store,
// "postgres://..." or "postgresql://..." for PostgreSQL.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	opts.Domain = strings.ToLower(opts.Domain)
	if opts.Realm == "" {
		opts.Realm = opts.Domain
	}
	s := &Store{opts: opts, bump: make(chan struct{}), closed: make(chan struct{})}
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.pg, s.dsn = true, dsn
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s.db = db
		if s.opts.PollInterval == 0 {
			s.opts.PollInterval = time.Second
		}
	case strings.HasPrefix(dsn, "sqlite:"), strings.HasSuffix(dsn, ".db"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		path = strings.TrimPrefix(path, "//") // sqlite:///abs/path
		if path == "" || strings.ContainsAny(path, "?#") {
			return nil, fmt.Errorf("store: bad sqlite path %q", path)
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("store: %w", err)
			}
		}
		// The file holds auth tokens: owner-only. SQLite gives its -wal and
		// -shm files the database file's mode, so creating it first is enough.
		if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			f.Close()
		} else if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("store: %w", err)
		}
		// WAL so readers never block the writer; FULL so an acknowledged
		// commit survives power loss, not only a crash of this process;
		// IMMEDIATE so a writer takes the lock up front instead of failing
		// to upgrade; a busy timeout for writers in other processes.
		q := "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_txlock=immediate"
		db, err := sql.Open("sqlite", "file:"+path+q)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
		s.db = db
		if s.opts.PollInterval == 0 {
			s.opts.PollInterval = 200 * time.Millisecond
		}
	default:
		return nil, fmt.Errorf("store: unsupported DSN %q (want sqlite:PATH or postgres://...)", redact(dsn))
	}
	if err := s.init(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	if err := s.ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if s.pg {
		var schema string
		if err := s.db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		h := fnv.New64a()
		h.Write([]byte("xtrunk:" + schema))
		s.lockKey = int64(h.Sum64() >> 1)
		s.channel = fmt.Sprintf("xtrunk_changes_%016x", uint64(s.lockKey))
	} else {
		var fk int
		if err := s.db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
			return fmt.Errorf("store: sqlite foreign keys are off (%v)", err)
		}
	}
	return s.migrate(ctx)
}

// sqliteBusy is SQLite's SQLITE_BUSY result code.
const sqliteBusy = 5

// ping opens the first connection. On a new SQLite file, switching it to
// WAL takes an exclusive lock that SQLite does not wait for (no busy
// handler): processes opening the same new file at once get SQLITE_BUSY,
// so that is tried again for up to 10 s.
func (s *Store) ping(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.db.PingContext(ctx)
		var coded interface{ Code() int }
		if err == nil || s.pg || !errors.As(err, &coded) || coded.Code()&0xff != sqliteBusy || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close closes the database; Watch channels close too.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.db.Close()
}

// Backend is "sqlite" or "postgres".
func (s *Store) Backend() string {
	if s.pg {
		return "postgres"
	}
	return "sqlite"
}

// Domain is the base domain trunk domain names hang from.
func (s *Store) Domain() string { return s.opts.Domain }

// Edges are the configured edge names.
func (s *Store) Edges() []string { return s.opts.Edges }

// Realm is the digest realm credentials are hashed for.
func (s *Store) Realm() string { return s.opts.Realm }

// IntegrityCheck asks SQLite to verify the database file (PRAGMA
// integrity_check) and returns ErrCorrupt, naming the first problem it
// reports, unless the answer is "ok". PostgreSQL keeps its own pages
// consistent; there it only checks the connection.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	if s.pg {
		return s.db.PingContext(ctx)
	}
	var res string
	if err := s.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("%w: %s", ErrCorrupt, res)
	}
	return nil
}

func redact(dsn string) string {
	if i := strings.Index(dsn, "@"); i >= 0 {
		if j := strings.Index(dsn, "://"); j >= 0 && j < i {
			return dsn[:j+3] + "...@" + dsn[i+1:]
		}
	}
	return dsn
}

// q rewrites '?' placeholders to PostgreSQL's $n.
func (s *Store) q(query string) string {
	if !s.pg {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (s *Store) withTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if s.pg {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// wtx is a write transaction that records what it changed.
type wtx struct {
	*sql.Tx
	s       *Store
	ctx     context.Context
	now     time.Time
	changes []Change
}

func (w *wtx) exec(query string, args ...any) (sql.Result, error) {
	return w.ExecContext(w.ctx, w.s.q(query), args...)
}

func (w *wtx) queryRow(query string, args ...any) *sql.Row {
	return w.QueryRowContext(w.ctx, w.s.q(query), args...)
}

// changed records a change for the feed, committed with the transaction.
func (w *wtx) changed(account, kind, sid, op string) {
	w.changes = append(w.changes, Change{AccountSid: account, Kind: kind, Sid: sid, Op: op, At: w.now})
}

// write runs fn in a serialized write transaction and appends its changes
// to the feed in the same transaction.
func (s *Store) write(ctx context.Context, fn func(w *wtx) error) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	var last int64
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		w := &wtx{Tx: tx, s: s, ctx: ctx, now: now()}
		if err := fn(w); err != nil {
			return err
		}
		for _, c := range w.changes {
			if err := w.queryRow(`INSERT INTO changes (account_sid, kind, sid, op, at_us) VALUES (?, ?, ?, ?, ?) RETURNING rev`,
				c.AccountSid, c.Kind, c.Sid, c.Op, c.At.UnixMicro()).Scan(&last); err != nil {
				return fmt.Errorf("store: change feed: %w", err)
			}
		}
		if s.pg && last > 0 {
			if _, err := w.exec(`SELECT pg_notify(?, ?)`, s.channel, strconv.FormatInt(last, 10)); err != nil {
				return fmt.Errorf("store: notify: %w", err)
			}
		}
		return nil
	})
	if err == nil && last > 0 {
		s.bmu.Lock()
		close(s.bump)
		s.bump = make(chan struct{})
		s.bmu.Unlock()
	}
	return classify(err)
}

// classify turns a constraint violation that slipped past the rules (a
// writer in another process on SQLite, say) into ErrConflict.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	msg := err.Error()
	if strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "SQLSTATE 23505") {
		return &Error{Kind: ErrConflict, Code: CodeInvalidParameter, Msg: "the resource conflicts with an existing one"}
	}
	if strings.Contains(msg, "FOREIGN KEY constraint failed") || strings.Contains(msg, "SQLSTATE 23503") {
		return &Error{Kind: ErrConflict, Code: CodeInvalidParameter, Msg: "the resource refers to one that no longer exists"}
	}
	return err
}

// now is the store's clock: UTC, microsecond precision (what the columns
// hold), so a value read back equals the value written.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// Sid prefixes (Twilio's).
const (
	PrefixAccount        = "AC"
	PrefixTrunk          = "TK"
	PrefixOriginationURL = "OU"
	PrefixIPACL          = "AL"
	PrefixIPAddress      = "IP"
	PrefixCredentialList = "CL"
	PrefixCredential     = "CR"
	PrefixPhoneNumber    = "PN"
	PrefixCallerID       = "PN" // Twilio's OutgoingCallerId sids are PN too
	PrefixCall           = "CA"
	PrefixRecording      = "RE"
)

// NewSid returns prefix + 32 random hex digits.
func NewSid(prefix string) string {
	var b [16]byte
	rand.Read(b[:]) // never fails (Go ≥ 1.24 crashes the program instead)
	return prefix + hex.EncodeToString(b[:])
}

// ValidSid reports whether s is prefix + 32 lower- or upper-case hex digits.
func ValidSid(prefix, s string) bool {
	if len(s) != 34 || s[:2] != prefix {
		return false
	}
	for i := 2; i < 34; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
