package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// migration is one schema version. The SQL is shared by both backends;
// {{ID}} becomes each one's auto-incrementing primary key. Migrations are
// append-only: a released version is never edited, a change is a new one.
type migration struct {
	version int
	name    string
	sql     string
}

var migrations = []migration{
	{1, "initial schema", `
CREATE TABLE accounts (
	sid           TEXT PRIMARY KEY,
	owner_sid     TEXT REFERENCES accounts(sid),
	friendly_name TEXT NOT NULL DEFAULT '',
	status        TEXT NOT NULL,
	type          TEXT NOT NULL,
	auth_token    TEXT NOT NULL,
	created_us    BIGINT NOT NULL,
	updated_us    BIGINT NOT NULL
);
CREATE INDEX accounts_owner ON accounts(owner_sid, created_us, sid);

CREATE TABLE trunks (
	sid                      TEXT PRIMARY KEY,
	account_sid              TEXT NOT NULL REFERENCES accounts(sid),
	friendly_name            TEXT NOT NULL DEFAULT '',
	domain_name              TEXT UNIQUE,
	disaster_recovery_url    TEXT NOT NULL DEFAULT '',
	disaster_recovery_method TEXT NOT NULL DEFAULT 'POST',
	transfer_mode            TEXT NOT NULL DEFAULT 'disable-all',
	transfer_caller_id       TEXT NOT NULL DEFAULT 'from-transferee',
	secure                   BOOLEAN NOT NULL DEFAULT FALSE,
	cnam_lookup_enabled      BOOLEAN NOT NULL DEFAULT FALSE,
	symmetric_rtp_enabled    BOOLEAN NOT NULL DEFAULT FALSE,
	recording_mode           TEXT NOT NULL DEFAULT 'do-not-record',
	recording_trim           TEXT NOT NULL DEFAULT 'do-not-trim',
	created_us               BIGINT NOT NULL,
	updated_us               BIGINT NOT NULL
);
CREATE INDEX trunks_account ON trunks(account_sid, created_us, sid);

CREATE TABLE origination_urls (
	sid           TEXT PRIMARY KEY,
	account_sid   TEXT NOT NULL REFERENCES accounts(sid),
	trunk_sid     TEXT NOT NULL REFERENCES trunks(sid) ON DELETE CASCADE,
	friendly_name TEXT NOT NULL DEFAULT '',
	sip_url       TEXT NOT NULL,
	priority      INTEGER NOT NULL,
	weight        INTEGER NOT NULL,
	enabled       BOOLEAN NOT NULL,
	created_us    BIGINT NOT NULL,
	updated_us    BIGINT NOT NULL
);
CREATE INDEX origination_urls_trunk ON origination_urls(trunk_sid, created_us, sid);

CREATE TABLE ip_access_control_lists (
	sid           TEXT PRIMARY KEY,
	account_sid   TEXT NOT NULL REFERENCES accounts(sid),
	friendly_name TEXT NOT NULL DEFAULT '',
	created_us    BIGINT NOT NULL,
	updated_us    BIGINT NOT NULL
);
CREATE INDEX ip_access_control_lists_account ON ip_access_control_lists(account_sid, created_us, sid);

CREATE TABLE ip_addresses (
	sid                TEXT PRIMARY KEY,
	account_sid        TEXT NOT NULL REFERENCES accounts(sid),
	acl_sid            TEXT NOT NULL REFERENCES ip_access_control_lists(sid) ON DELETE CASCADE,
	friendly_name      TEXT NOT NULL DEFAULT '',
	ip_address         TEXT NOT NULL,
	cidr_prefix_length INTEGER NOT NULL,
	created_us         BIGINT NOT NULL,
	updated_us         BIGINT NOT NULL
);
CREATE INDEX ip_addresses_acl ON ip_addresses(acl_sid, created_us, sid);

CREATE TABLE credential_lists (
	sid           TEXT PRIMARY KEY,
	account_sid   TEXT NOT NULL REFERENCES accounts(sid),
	friendly_name TEXT NOT NULL DEFAULT '',
	created_us    BIGINT NOT NULL,
	updated_us    BIGINT NOT NULL
);
CREATE INDEX credential_lists_account ON credential_lists(account_sid, created_us, sid);

-- Only digest hashes: never the password.
CREATE TABLE credentials (
	sid         TEXT PRIMARY KEY,
	account_sid TEXT NOT NULL REFERENCES accounts(sid),
	list_sid    TEXT NOT NULL REFERENCES credential_lists(sid) ON DELETE CASCADE,
	username    TEXT NOT NULL,
	realm       TEXT NOT NULL,
	ha1_md5     TEXT NOT NULL,
	ha1_sha256  TEXT NOT NULL,
	created_us  BIGINT NOT NULL,
	updated_us  BIGINT NOT NULL,
	UNIQUE (list_sid, username)
);
CREATE INDEX credentials_list ON credentials(list_sid, created_us, sid);

CREATE TABLE trunk_ip_access_control_lists (
	trunk_sid   TEXT NOT NULL REFERENCES trunks(sid) ON DELETE CASCADE,
	acl_sid     TEXT NOT NULL REFERENCES ip_access_control_lists(sid) ON DELETE CASCADE,
	account_sid TEXT NOT NULL REFERENCES accounts(sid),
	created_us  BIGINT NOT NULL,
	PRIMARY KEY (trunk_sid, acl_sid)
);
CREATE INDEX trunk_ip_access_control_lists_acl ON trunk_ip_access_control_lists(acl_sid);

CREATE TABLE trunk_credential_lists (
	trunk_sid   TEXT NOT NULL REFERENCES trunks(sid) ON DELETE CASCADE,
	list_sid    TEXT NOT NULL REFERENCES credential_lists(sid) ON DELETE CASCADE,
	account_sid TEXT NOT NULL REFERENCES accounts(sid),
	created_us  BIGINT NOT NULL,
	PRIMARY KEY (trunk_sid, list_sid)
);
CREATE INDEX trunk_credential_lists_list ON trunk_credential_lists(list_sid);

CREATE TABLE phone_numbers (
	sid                    TEXT PRIMARY KEY,
	account_sid            TEXT NOT NULL REFERENCES accounts(sid),
	phone_number           TEXT NOT NULL UNIQUE,
	friendly_name          TEXT NOT NULL DEFAULT '',
	trunk_sid              TEXT REFERENCES trunks(sid) ON DELETE SET NULL,
	voice_url              TEXT NOT NULL DEFAULT '',
	voice_method           TEXT NOT NULL DEFAULT 'POST',
	voice_fallback_url     TEXT NOT NULL DEFAULT '',
	voice_fallback_method  TEXT NOT NULL DEFAULT 'POST',
	status_callback        TEXT NOT NULL DEFAULT '',
	status_callback_method TEXT NOT NULL DEFAULT 'POST',
	voice_caller_id_lookup BOOLEAN NOT NULL DEFAULT FALSE,
	sms_url                TEXT NOT NULL DEFAULT '',
	sms_method             TEXT NOT NULL DEFAULT 'POST',
	created_us             BIGINT NOT NULL,
	updated_us             BIGINT NOT NULL
);
CREATE INDEX phone_numbers_account ON phone_numbers(account_sid, created_us, sid);
CREATE INDEX phone_numbers_trunk ON phone_numbers(trunk_sid, created_us, sid);

CREATE TABLE outgoing_caller_ids (
	sid             TEXT PRIMARY KEY,
	account_sid     TEXT NOT NULL REFERENCES accounts(sid),
	phone_number    TEXT NOT NULL,
	friendly_name   TEXT NOT NULL DEFAULT '',
	verified        BOOLEAN NOT NULL,
	validation_code TEXT NOT NULL DEFAULT '',
	created_us      BIGINT NOT NULL,
	updated_us      BIGINT NOT NULL,
	UNIQUE (account_sid, phone_number)
);
CREATE INDEX outgoing_caller_ids_account ON outgoing_caller_ids(account_sid, created_us, sid);

-- CDRs, written by the signalling when a call ends. trunk_sid is not a
-- foreign key: a CDR outlives its trunk.
CREATE TABLE calls (
	sid               TEXT PRIMARY KEY,
	account_sid       TEXT NOT NULL REFERENCES accounts(sid),
	trunk_sid         TEXT NOT NULL DEFAULT '',
	parent_call_sid   TEXT NOT NULL DEFAULT '',
	phone_number_sid  TEXT NOT NULL DEFAULT '',
	direction         TEXT NOT NULL,
	from_number       TEXT NOT NULL DEFAULT '',
	to_number         TEXT NOT NULL DEFAULT '',
	caller_name       TEXT NOT NULL DEFAULT '',
	forwarded_from    TEXT NOT NULL DEFAULT '',
	status            TEXT NOT NULL,
	start_us          BIGINT NOT NULL DEFAULT 0,
	answer_us         BIGINT NOT NULL DEFAULT 0,
	end_us            BIGINT NOT NULL DEFAULT 0,
	duration          INTEGER NOT NULL DEFAULT 0,
	sip_response_code INTEGER NOT NULL DEFAULT 0,
	hangup_cause      TEXT NOT NULL DEFAULT '',
	edge              TEXT NOT NULL DEFAULT '',
	quality           TEXT NOT NULL DEFAULT '',
	created_us        BIGINT NOT NULL,
	updated_us        BIGINT NOT NULL
);
CREATE INDEX calls_account ON calls(account_sid, created_us, sid);

CREATE TABLE recordings (
	sid        TEXT PRIMARY KEY,
	account_sid TEXT NOT NULL REFERENCES accounts(sid),
	call_sid   TEXT NOT NULL DEFAULT '',
	trunk_sid  TEXT NOT NULL DEFAULT '',
	channels   INTEGER NOT NULL,
	source     TEXT NOT NULL,
	status     TEXT NOT NULL,
	duration   INTEGER NOT NULL DEFAULT 0,
	start_us   BIGINT NOT NULL DEFAULT 0,
	media_path TEXT NOT NULL DEFAULT '',
	created_us BIGINT NOT NULL,
	updated_us BIGINT NOT NULL
);
CREATE INDEX recordings_account ON recordings(account_sid, created_us, sid);
CREATE INDEX recordings_call ON recordings(call_sid);

-- The change feed: one row per changed resource, in commit order.
CREATE TABLE changes (
	rev         {{ID}},
	account_sid TEXT NOT NULL,
	kind        TEXT NOT NULL,
	sid         TEXT NOT NULL,
	op          TEXT NOT NULL,
	at_us       BIGINT NOT NULL
);
`},
	// Where a 3xx of the customer's PBX redirected an origination call
	// (REQUIREMENTS §3.7); ADD COLUMN with a constant default is the same
	// statement on SQLite and PostgreSQL.
	{2, "calls.redirected_to", `
ALTER TABLE calls ADD COLUMN redirected_to TEXT NOT NULL DEFAULT '';
`},
	// Several edges on one store (REQUIREMENTS §3.6, §6): each xtrunk sip
	// registers its edge (name, the SIP address other edges hand calls
	// over to) and heartbeats; a CDR notes an edge= the call could not
	// leave from.
	{3, "edges", `
CREATE TABLE edges (
	name         TEXT PRIMARY KEY,
	sip_address  TEXT NOT NULL,
	started_us   BIGINT NOT NULL,
	heartbeat_us BIGINT NOT NULL
);
ALTER TABLE calls ADD COLUMN edge_note TEXT NOT NULL DEFAULT '';
`},
}

// SchemaVersion is the version Open migrates to.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

func (s *Store) migrate(ctx context.Context) error {
	// Under the writers' lock, so processes starting together on one
	// PostgreSQL do not race to create the same tables.
	return s.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_us BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("store: migrations table: %w", err)
		}
		var cur int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
			return err
		}
		if cur > SchemaVersion() {
			return fmt.Errorf("store: database schema version %d is newer than this binary's %d", cur, SchemaVersion())
		}
		for _, m := range migrations {
			if m.version <= cur {
				continue
			}
			for _, stmt := range splitSQL(s.ddl(m.sql)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_us) VALUES (?, ?, ?)`),
				m.version, m.name, time.Now().UnixMicro()); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) ddl(src string) string {
	id := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.pg {
		id = "BIGSERIAL PRIMARY KEY"
	}
	return strings.ReplaceAll(src, "{{ID}}", id)
}

// splitSQL splits a migration into statements (no ';' inside literals in
// our DDL) and drops comment-only pieces.
func splitSQL(src string) []string {
	var out []string
	for _, part := range strings.Split(src, ";") {
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.Join(lines, "\n"))
		}
	}
	return out
}
