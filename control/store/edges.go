package store

import (
	"context"
	"fmt"
	"time"
)

// Edge is one xtrunk site's signalling as registered in the shared store
// (REQUIREMENTS §3.6, §6): its name (--edge), the SIP address other edges
// hand calls over to, when it started and its last heartbeat. An edge
// whose heartbeat is old is dead; the store only keeps the times, the
// signalling decides what "old" is.
type Edge struct {
	Name       string
	SIPAddress string // HOST:PORT or a sip: URI (;transport=)
	Started    time.Time
	Heartbeat  time.Time
}

// MaxEdgeName bounds an edge's name (a DNS label: it is part of the
// localized termination host).
const MaxEdgeName = 63

// CheckEdgeName accepts a DNS label: lower-case letters, digits and
// dashes, not at either end.
func CheckEdgeName(name string) error {
	if name == "" || len(name) > MaxEdgeName || name[0] == '-' || name[len(name)-1] == '-' {
		return invalid("Edge", "edge name %q must be a DNS label of 1-%d characters", name, MaxEdgeName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return invalid("Edge", "edge name %q: only a-z, 0-9 and '-'", name)
		}
	}
	return nil
}

// HeartbeatEdge registers e (a new edge) or refreshes it: its address and
// heartbeat are replaced, its start time kept unless Started is set.
// Heartbeats are not provisioning: they bypass the writers' lock and the
// change feed, so they never invalidate the edges' caches.
func (s *Store) HeartbeatEdge(ctx context.Context, e Edge) error {
	if err := CheckEdgeName(e.Name); err != nil {
		return err
	}
	if err := CheckText("SipAddress", e.SIPAddress, 256); err != nil {
		return err
	}
	if e.SIPAddress == "" {
		return invalid("SipAddress", "edge %s has no SIP address", e.Name)
	}
	hb := toMicros(e.Heartbeat)
	if e.Heartbeat.IsZero() {
		hb = time.Now().UnixMicro()
	}
	started := toMicros(e.Started)
	if e.Started.IsZero() {
		started = hb
	}
	// ON CONFLICT … DO UPDATE is the same upsert on SQLite (3.24+) and
	// PostgreSQL; excluded.* is the row that was refused.
	q := `INSERT INTO edges (name, sip_address, started_us, heartbeat_us) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET sip_address = excluded.sip_address, heartbeat_us = excluded.heartbeat_us`
	if !e.Started.IsZero() {
		q += `, started_us = excluded.started_us`
	}
	if !s.pg {
		s.wmu.Lock() // SQLite has one writer: queue behind this process's own
		defer s.wmu.Unlock()
	}
	if _, err := s.db.ExecContext(ctx, s.q(q), e.Name, e.SIPAddress, started, hb); err != nil {
		return classify(fmt.Errorf("store: edge %s heartbeat: %w", e.Name, err))
	}
	return nil
}

// EdgeDown zeroes name's heartbeat (a clean shutdown), so that other
// edges stop handing calls over to it at once rather than after their
// dead-edge timeout.
func (s *Store) EdgeDown(ctx context.Context, name string) error {
	if !s.pg {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE edges SET heartbeat_us = 0 WHERE name = ?`), name); err != nil {
		return classify(fmt.Errorf("store: edge %s down: %w", name, err))
	}
	return nil
}

// maxEdges bounds ListEdges: sites are a handful, a table that grew past
// this is not read whole into every edge.
const maxEdges = 1000

// ListEdges is every registered edge, by name.
func (s *Store) ListEdges(ctx context.Context) ([]Edge, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT name, sip_address, started_us, heartbeat_us FROM edges ORDER BY name LIMIT ?`), maxEdges)
	if err != nil {
		return nil, classify(fmt.Errorf("store: edges: %w", err))
	}
	defer rows.Close()
	var out []Edge
	for rows.Next() {
		var e Edge
		var st, hb int64
		if err := rows.Scan(&e.Name, &e.SIPAddress, &st, &hb); err != nil {
			return nil, fmt.Errorf("store: edges: %w", err)
		}
		e.Started, e.Heartbeat = fromMicros(st), fromMicros(hb)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("store: edges: %w", err))
	}
	return out, nil
}
