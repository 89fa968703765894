package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Call directions (Twilio's names for trunking calls).
const (
	DirectionTerminating = "trunking-terminating" // customer → PSTN
	DirectionOriginating = "trunking-originating" // PSTN → customer
)

// Call statuses of a finished call.
var CallStatuses = []string{"completed", "busy", "failed", "no-answer", "canceled"}

// Call is a CDR: one finished call through a trunk.
type Call struct {
	Sid             string // CA...; generated when empty
	AccountSid      string
	TrunkSid        string
	ParentCallSid   string
	PhoneNumberSid  string
	Direction       string
	From            string
	To              string
	CallerName      string
	ForwardedFrom   string
	Status          string
	Start           time.Time
	Answer          time.Time // zero when never answered
	End             time.Time
	Duration        int // seconds answered, rounded (AnsweredSeconds)
	SIPResponseCode int // final SIP status
	HangupCause     string
	Edge            string
	Quality         []LegQuality
	Created         time.Time
	Updated         time.Time

	// RedirectedTo is the target a 3xx of the customer's PBX sent the
	// call to (origination, REQUIREMENTS §3.7), "" when not redirected.
	RedirectedTo string
	// EdgeNote says where an origination call with ;edge= left from when
	// that was not as asked (an unknown, dead or unreachable edge: the
	// receiving edge dialled itself), or that it was handed over.
	EdgeNote string
}

// AnsweredSeconds is a Call's Duration: the seconds from answer to end,
// rounded to the nearest (a half second up), as the CDR writer and the
// leftovers finished at a restart both count them. An answered call
// shorter than half a second counts 0, as Twilio's can. A call never
// answered counts 0.
func AnsweredSeconds(answer, end time.Time) int {
	if answer.IsZero() || !end.After(answer) {
		return 0
	}
	return int((end.Sub(answer) + time.Second/2) / time.Second)
}

// LegQuality is one call leg's media statistics (from the relay's NG
// delete reply).
type LegQuality struct {
	Leg             string  `json:"leg"` // "customer" or "carrier"
	PacketsReceived uint64  `json:"packets_received"`
	PacketsSent     uint64  `json:"packets_sent"`
	BytesReceived   uint64  `json:"bytes_received"`
	BytesSent       uint64  `json:"bytes_sent"`
	PacketsLost     int64   `json:"packets_lost"`
	JitterMs        float64 `json:"jitter_ms"`
	// MOS is the E-model's estimate (ITU-T G.107, signalling/mos.go) from
	// the leg's loss, jitter and codec; 0 when not computed (rows
	// written before it was).
	MOS float64 `json:"mos,omitempty"`
}

func (c Call) key() (int64, string) { return c.Created.UnixMicro(), c.Sid }

const callCols = `sid, account_sid, trunk_sid, parent_call_sid, phone_number_sid, direction, from_number, to_number, caller_name,
	forwarded_from, status, start_us, answer_us, end_us, duration, sip_response_code, hangup_cause, edge, quality, created_us, updated_us, redirected_to, edge_note`

func scanCall(r scanner) (Call, error) {
	var c Call
	var start, answer, end, cr, up int64
	var quality string
	err := r.Scan(&c.Sid, &c.AccountSid, &c.TrunkSid, &c.ParentCallSid, &c.PhoneNumberSid, &c.Direction, &c.From, &c.To, &c.CallerName,
		&c.ForwardedFrom, &c.Status, &start, &answer, &end, &c.Duration, &c.SIPResponseCode, &c.HangupCause, &c.Edge, &quality, &cr, &up, &c.RedirectedTo, &c.EdgeNote)
	if err != nil {
		return c, err
	}
	c.Start, c.Answer, c.End, c.Created, c.Updated = fromMicros(start), fromMicros(answer), fromMicros(end), fromMicros(cr), fromMicros(up)
	if quality != "" {
		if err := json.Unmarshal([]byte(quality), &c.Quality); err != nil {
			return c, fmt.Errorf("quality of %s: %w", c.Sid, err)
		}
	}
	return c, nil
}

// InsertCall records a CDR (the signalling calls it when a call ends). CDRs
// are not part of the change feed.
func (s *Store) InsertCall(ctx context.Context, c Call) (Call, error) {
	c, args, err := prepCall(c, now())
	if err != nil {
		return Call{}, err
	}
	if _, err := s.execWrite(ctx, insertCallSQL, args...); err != nil {
		return Call{}, classify(fmt.Errorf("store: insert call: %w", err))
	}
	return c, nil
}

// InsertCalls records several CDRs in one transaction, so calls that end
// together cost one commit (one fsync on SQLite) instead of one each. All
// are written or none; they come back with their sids and times set.
func (s *Store) InsertCalls(ctx context.Context, cs []Call) ([]Call, error) {
	return s.writeCalls(ctx, cs, func(Call) string { return insertCallSQL })
}

// writeCalls runs query(c) (an insert or an upsert of callCols) for each
// c of cs in one transaction.
func (s *Store) writeCalls(ctx context.Context, cs []Call, query func(Call) string) ([]Call, error) {
	t := now()
	out := make([]Call, len(cs))
	args := make([][]any, len(cs))
	for i, c := range cs {
		var err error
		if out[i], args[i], err = prepCall(c, t); err != nil {
			return nil, fmt.Errorf("call %d of %d: %w", i+1, len(cs), err)
		}
	}
	if len(cs) == 0 {
		return out, nil
	}
	if !s.pg {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, classify(fmt.Errorf("store: begin: %w", err))
	}
	stmts := map[string]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	for i, a := range args {
		q := query(out[i])
		stmt := stmts[q]
		if stmt == nil {
			if stmt, err = tx.PrepareContext(ctx, s.q(q)); err != nil {
				tx.Rollback()
				return nil, classify(fmt.Errorf("store: insert calls: %w", err))
			}
			stmts[q] = stmt
		}
		if _, err := stmt.ExecContext(ctx, a...); err != nil {
			tx.Rollback()
			return nil, classify(fmt.Errorf("store: insert calls: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, classify(fmt.Errorf("store: commit calls: %w", err))
	}
	return out, nil
}

const insertCallSQL = `INSERT INTO calls (` + callCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// prepCall validates a CDR, fills its sid and times (created at t) and
// returns the insert's arguments; times come back at the store's
// precision.
func prepCall(c Call, t time.Time) (Call, []any, error) {
	if c.Sid == "" {
		c.Sid = NewSid(PrefixCall)
	}
	if !ValidSid(PrefixCall, c.Sid) {
		return Call{}, nil, invalid("Sid", "call sid %q is not CA followed by 32 hex digits", c.Sid)
	}
	if err := oneOf("Direction", c.Direction, []string{DirectionTerminating, DirectionOriginating}); err != nil {
		return Call{}, nil, err
	}
	if err := oneOf("Status", c.Status, allCallStatuses); err != nil {
		return Call{}, nil, err
	}
	for _, f := range [][2]string{{"From", c.From}, {"To", c.To}, {"CallerName", c.CallerName}, {"ForwardedFrom", c.ForwardedFrom}, {"HangupCause", c.HangupCause}, {"Edge", c.Edge}, {"RedirectedTo", c.RedirectedTo}, {"EdgeNote", c.EdgeNote}} {
		if err := CheckText(f[0], f[1], 256); err != nil {
			return Call{}, nil, err
		}
	}
	var quality []byte
	if len(c.Quality) > 0 {
		quality, _ = json.Marshal(c.Quality)
	}
	c.Created, c.Updated = t, t
	args := []any{c.Sid, c.AccountSid, c.TrunkSid, c.ParentCallSid, c.PhoneNumberSid, c.Direction, c.From, c.To, c.CallerName,
		c.ForwardedFrom, c.Status, toMicros(c.Start), toMicros(c.Answer), toMicros(c.End), c.Duration, c.SIPResponseCode,
		c.HangupCause, c.Edge, string(quality), t.UnixMicro(), t.UnixMicro(), c.RedirectedTo, c.EdgeNote}
	c.Start, c.Answer, c.End = fromMicros(toMicros(c.Start)), fromMicros(toMicros(c.Answer)), fromMicros(toMicros(c.End))
	return c, args, nil
}

// Call fetches one of account's CDRs.
func (s *Store) Call(ctx context.Context, account, sid string) (Call, error) {
	return get(ctx, s, "Call", sid, `SELECT `+callCols+` FROM calls WHERE sid = ? AND account_sid = ?`, []any{sid, account}, scanCall)
}

// CallFilter narrows ListCalls (exact matches).
type CallFilter struct {
	To, From, Status, TrunkSid string
}

// ListCalls lists account's CDRs, newest first.
func (s *Store) ListCalls(ctx context.Context, account string, f CallFilter, p Page) ([]Call, string, error) {
	spec := listSpec{from: "calls", cols: callCols, desc: true}
	spec.and("account_sid = ?", account)
	for _, c := range [][2]string{{"to_number", f.To}, {"from_number", f.From}, {"status", f.Status}, {"trunk_sid", f.TrunkSid}} {
		if c[1] != "" {
			spec.and(c[0]+" = ?", c[1])
		}
	}
	return list(ctx, s, spec, p, scanCall)
}

// Recording is a call recording's metadata. MediaFile is the name (never
// a path) of the WAV file the relay wrote in its recording directory: the
// API opens only that name in its --recording-dir, so nothing a relay's
// reply says can point it at another file.
type Recording struct {
	Sid        string // RE...; generated when empty
	AccountSid string
	CallSid    string
	TrunkSid   string
	Channels   int    // 1 mono, 2 dual
	Source     string // "Trunking"
	Status     string // "completed"
	Duration   int    // seconds
	Start      time.Time
	MediaFile  string // "" when there is none
	Created    time.Time
	Updated    time.Time
}

func (r Recording) key() (int64, string) { return r.Created.UnixMicro(), r.Sid }

const recordingCols = `sid, account_sid, call_sid, trunk_sid, channels, source, status, duration, start_us, media_path, created_us, updated_us`

func scanRecording(r scanner) (Recording, error) {
	var x Recording
	var start, cr, up int64
	err := r.Scan(&x.Sid, &x.AccountSid, &x.CallSid, &x.TrunkSid, &x.Channels, &x.Source, &x.Status, &x.Duration, &start, &x.MediaFile, &cr, &up)
	x.Start, x.Created, x.Updated = fromMicros(start), fromMicros(cr), fromMicros(up)
	return x, err
}

// InsertRecording records a finished recording (the signalling calls it
// with the relay's file).
func (s *Store) InsertRecording(ctx context.Context, r Recording) (Recording, error) {
	if r.Sid == "" {
		r.Sid = NewSid(PrefixRecording)
	}
	if !ValidSid(PrefixRecording, r.Sid) {
		return Recording{}, invalid("Sid", "recording sid %q is not RE followed by 32 hex digits", r.Sid)
	}
	if r.Channels != 1 && r.Channels != 2 {
		return Recording{}, invalid("Channels", "Channels must be 1 or 2")
	}
	if r.Source == "" {
		r.Source = "Trunking"
	}
	if r.Status == "" {
		r.Status = "completed"
	}
	if r.MediaFile != "" && !ValidRecordingFile(r.MediaFile) {
		return Recording{}, invalid("MediaFile", "MediaFile %q is not a recording file name (letters, digits, '-' and '_', ending .wav)", r.MediaFile)
	}
	t := now()
	r.Created, r.Updated = t, t
	_, err := s.execWrite(ctx, `INSERT INTO recordings (`+recordingCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Sid, r.AccountSid, r.CallSid, r.TrunkSid, r.Channels, r.Source, r.Status, r.Duration, toMicros(r.Start), r.MediaFile,
		t.UnixMicro(), t.UnixMicro())
	if err != nil {
		return Recording{}, classify(fmt.Errorf("store: insert recording: %w", err))
	}
	r.Start = fromMicros(toMicros(r.Start))
	return r, nil
}

// MaxRecordingFile is the longest recording file name accepted.
const MaxRecordingFile = 200

// ValidRecordingFile reports whether name is a recording file's name as
// the relay makes them (relay/record: the call's ID, a time, a channel
// suffix): letters, digits, '-' and '_', then ".wav". No '/', no "..", no
// leading dot: a name, never a path.
func ValidRecordingFile(name string) bool {
	base, ok := strings.CutSuffix(name, ".wav")
	if !ok || base == "" || len(name) > MaxRecordingFile {
		return false
	}
	for i := 0; i < len(base); i++ {
		c := base[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Recording fetches one of account's recordings.
func (s *Store) Recording(ctx context.Context, account, sid string) (Recording, error) {
	return get(ctx, s, "Recording", sid, `SELECT `+recordingCols+` FROM recordings WHERE sid = ? AND account_sid = ?`, []any{sid, account}, scanRecording)
}

// DeleteRecording deletes a recording's metadata and returns it, so the
// caller can remove the media file.
func (s *Store) DeleteRecording(ctx context.Context, account, sid string) (Recording, error) {
	r, err := s.Recording(ctx, account, sid)
	if err != nil {
		return Recording{}, err
	}
	res, err := s.execWrite(ctx, `DELETE FROM recordings WHERE sid = ? AND account_sid = ?`, sid, account)
	if err != nil {
		return Recording{}, fmt.Errorf("store: delete recording: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Recording{}, notFound("Recording", sid)
	}
	return r, nil
}

// ListRecordings lists account's recordings, newest first; callSid ""
// lists all.
func (s *Store) ListRecordings(ctx context.Context, account, callSid string, p Page) ([]Recording, string, error) {
	spec := listSpec{from: "recordings", cols: recordingCols, desc: true}
	spec.and("account_sid = ?", account)
	if callSid != "" {
		spec.and("call_sid = ?", callSid)
	}
	return list(ctx, s, spec, p, scanRecording)
}

// execWrite runs one autocommit write outside the change feed. On SQLite it
// queues behind this process's other writers instead of spinning on the
// database lock.
func (s *Store) execWrite(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if !s.pg {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	return s.db.ExecContext(ctx, s.q(query), args...)
}
