// Package storetest opens throwaway stores on both backends for tests: a
// SQLite file in the test's temp dir, and a fresh schema in the PostgreSQL
// named by XTRUNK_TEST_POSTGRES (make postgres starts one). Without that
// variable the PostgreSQL half skips, or fails when
// XTRUNK_REQUIRE_PRIVILEGED=1 (make test, CI), so the suite can never pass
// on SQLite alone there.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

// Backends are the backend names Run iterates over.
var Backends = []string{"sqlite", "postgres"}

// Run runs fn as a subtest per backend.
func Run(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range Backends {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

// DSN returns a fresh database for backend: a new SQLite file, or a new
// PostgreSQL schema (dropped when the test ends). It skips or fails the
// test as described in the package doc when PostgreSQL is not available.
func DSN(t testing.TB, backend string) string {
	t.Helper()
	switch backend {
	case "sqlite":
		return "sqlite:" + filepath.Join(t.TempDir(), "xtrunk.db")
	case "postgres":
		base := os.Getenv("XTRUNK_TEST_POSTGRES")
		if base == "" {
			if os.Getenv("XTRUNK_REQUIRE_PRIVILEGED") == "1" {
				t.Fatal("XTRUNK_TEST_POSTGRES is not set (make postgres starts a throwaway server); required under XTRUNK_REQUIRE_PRIVILEGED=1")
			}
			t.Skip("XTRUNK_TEST_POSTGRES not set: run make postgres")
		}
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var b [6]byte
		rand.Read(b[:])
		schema := "t_" + hex.EncodeToString(b[:])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			t.Fatalf("postgres at XTRUNK_TEST_POSTGRES: %v", err)
		}
		t.Cleanup(func() {
			db, err := sql.Open("pgx", base)
			if err != nil {
				return
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
		})
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	t.Fatalf("unknown backend %q", backend)
	return ""
}

// Open opens a fresh store on backend, closed when the test ends.
func Open(t testing.TB, backend string, opts store.Options) *store.Store {
	t.Helper()
	return OpenDSN(t, DSN(t, backend), opts)
}

// OpenDSN opens dsn (a second handle on the same database acts like
// another process), closed when the test ends.
func OpenDSN(t testing.TB, dsn string, opts store.Options) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, dsn, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Exec runs query straight on dsn's database, behind the store's back,
// and returns the number of rows it changed: for tests that plant rows the
// store's rules refuse today (an entry an older release wrote, a path
// edited on disk). SQL stays inside control/store; tests elsewhere call
// this.
func Exec(t testing.TB, dsn, query string) int64 {
	t.Helper()
	driver, src := "pgx", dsn
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		driver, src = "sqlite", path
	}
	db, err := sql.Open(driver, src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := db.ExecContext(ctx, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
