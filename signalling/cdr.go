package signalling

import (
	"context"
	"path"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/store"
)

// writeCDR hands the finished call's CDR, and its recording when the
// relay made one, to the CDR writer.
func (s *Server) writeCDR(c *call, status int, e Ending, end time.Time, del deleted) {
	if c.p.fromEdge != "" {
		return // a hand-over: the edge the carrier called writes the call's one CDR
	}
	c.mu.Lock()
	answer, recStart := c.answer, c.recStart
	c.mu.Unlock()
	sid := c.callSid()
	rec := store.Call{
		Sid:             sid,
		ParentCallSid:   c.parentSid,
		AccountSid:      c.p.trunk.AccountSid,
		TrunkSid:        c.p.trunk.Sid,
		PhoneNumberSid:  c.p.phoneSid,
		Direction:       c.p.dir,
		From:            c.p.from,
		To:              c.p.to,
		CallerName:      c.callerName(),
		ForwardedFrom:   c.p.diversion,
		RedirectedTo:    c.redirectedTo(),
		EdgeNote:        c.edgeNoteValue(),
		Status:          callStatus(status, answer),
		Start:           c.start,
		Answer:          answer,
		End:             end,
		SIPResponseCode: status,
		HangupCause:     e.hangupCause(),
		Edge:            s.cfg.Edge,
		Quality:         withMOS(del.quality, c.codec()),
	}
	rec.Duration = store.AnsweredSeconds(answer, end)
	s.cdrs.add(cdrItem{call: rec, rec: recordingOf(c, rec.Sid, del.recording, recStart, answer), log: c.log})
}

// finishLeftovers ends the live-call rows a previous run of this edge
// left (it died with calls up): they are no longer live.
func (s *Server) finishLeftovers(ctx context.Context, st *store.Store, edge string) {
	if n, err := st.FinishLiveCalls(ctx, edge, time.Now(), hangupCause(hangupSystem, reasonRestart)); err != nil {
		s.log.Warn().Err(err).Msg("live calls of a previous run not finished")
	} else if n > 0 {
		s.log.Warn().Int64("calls", n).Msg("live calls of a previous run finished")
	}
}

// writeLive writes the call's live row (status ringing before the answer,
// in-progress after): at admission and at the answer, through the CDR
// writer's batches, so that the API lists calls while they happen. The
// CDR at the end replaces it.
func (s *Server) writeLive(c *call) {
	if c.p.fromEdge != "" {
		return // a hand-over: the edge the carrier called keeps the call's row
	}
	row := s.liveRow(c)
	s.cdrs.add(cdrItem{call: row, log: c.log})
}

// liveRow is the call's live row as it stands: ringing before the
// answer, in-progress after.
func (s *Server) liveRow(c *call) store.Call {
	c.mu.Lock()
	answer := c.answer
	c.mu.Unlock()
	status := store.CallRinging
	if !answer.IsZero() {
		status = store.CallInProgress
	}
	return store.Call{
		Sid: c.callSid(), ParentCallSid: c.parentSid, AccountSid: c.p.trunk.AccountSid, TrunkSid: c.p.trunk.Sid,
		PhoneNumberSid: c.p.phoneSid, Direction: c.p.dir, From: c.p.from, To: c.p.to, ForwardedFrom: c.p.diversion,
		Status: status, Start: c.start, Answer: answer, Edge: s.cfg.Edge,
	}
}

// recordingOf is the Recording row for the relay's "recording" entry of a
// delete reply (nil when there is none or it failed).
func recordingOf(c *call, callSid string, rd *ng.Recording, recStart, answer time.Time) *store.Recording {
	if rd == nil {
		return nil
	}
	if rd.Error != "" {
		c.log.Error().Str("error", rd.Error).Msg("relay recording failed")
		return nil
	}
	if len(rd.Files) == 0 {
		return nil
	}
	channels := 1
	if c.p.trunk.RecordingMode == "record-from-answer-dual" || c.p.trunk.RecordingMode == "record-from-ringing-dual" {
		channels = 2
	}
	r := &store.Recording{
		AccountSid: c.p.trunk.AccountSid,
		CallSid:    callSid,
		TrunkSid:   c.p.trunk.Sid,
		Channels:   channels,
		Source:     "Trunking",
		Status:     "completed",
		Duration:   int((max(rd.DurationMs, 0) + 500) / 1000),
		Start:      recStart,
		MediaFile:  recordingFile(c, rd.Files[0]),
	}
	if r.Start.IsZero() {
		r.Start = answer
	}
	if r.Start.IsZero() {
		r.Start = c.start
	}
	return r
}

// cdrItem is one finished call for the store.
type cdrItem struct {
	call store.Call
	rec  *store.Recording
	log  zerolog.Logger
}

// cdrWriter writes CDRs and live-call rows off the calls' path, in
// batches: what queues up within cdrLinger of a batch's first row (or
// while the previous commit ran) goes in one commit, so calls cost a
// commit (fsync) per batch instead of one each. close flushes it.
//
// Queuing never waits: a call's setup must not stall behind the store
// (a full channel here held 200s to the PBX for up to 170 ms while a
// commit ran through a GC cycle). The queue is a slice, as long as the
// backlog: past cdrQueueMax rows, live rows (a snapshot the CDR will
// replace anyway) are dropped and counted; CDRs are always queued.
type cdrWriter struct {
	life context.Context // the server's: batches end with it
	st   *store.Store
	log  zerolog.Logger
	// upsert writes rows: st.UpsertCalls (a test holds it up to play a
	// store that falls behind).
	upsert func(context.Context, []store.Call) ([]store.Call, error)
	wake   chan struct{} // cap 1: rows are queued, or closing
	done   chan struct{}

	mu      sync.Mutex
	pending []cdrItem
	closed  bool
	// failed counts a CDR not written (xtrunk_sip_cdr_write_failures_total).
	failed func()
	// dropped counts a live row not queued (xtrunk_sip_cdr_live_rows_dropped_total).
	dropped func()
}

// cdrBatch bounds one commit.
const cdrBatch = 256

// cdrQueueMax is the backlog (rows) past which live rows are dropped:
// 30 s of 1,000 CPS' rows, a store that slow or gone.
const cdrQueueMax = 1 << 16

func newCDRWriter(life context.Context, st *store.Store, log zerolog.Logger) *cdrWriter {
	w := &cdrWriter{life: life, st: st, log: log, upsert: st.UpsertCalls, wake: make(chan struct{}, 1), done: make(chan struct{}),
		failed: func() {}, dropped: func() {}}
	go w.run()
	return w
}

// add queues a CDR or live row without waiting; after close it is written
// at once.
func (w *cdrWriter) add(it cdrItem) {
	switch w.queue(it, cdrQueueMax) {
	case cdrFull:
		w.dropped()
	case cdrClosed:
		// A call that ended after Close (it outlived closeWithWait) still
		// gets its CDR, though the server's life may be over.
		w.flushIn(context.WithoutCancel(w.life), []cdrItem{it})
	}
}

// What queue did with a row.
const (
	cdrQueued = iota
	cdrFull   // a live row, and the backlog at the limit
	cdrClosed // the writer is closed
)

// queue adds it unless the writer is closed, or it is a live row and
// limit rows wait already.
func (w *cdrWriter) queue(it cdrItem, limit int) int {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return cdrClosed
	}
	if len(w.pending) >= limit && live(it.call.Status) {
		w.mu.Unlock()
		return cdrFull
	}
	w.pending = append(w.pending, it)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return cdrQueued
}

// backlog is how many rows wait (xtrunk_sip_cdr_queue_rows).
func (w *cdrWriter) backlog() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// cdrLinger is how long a batch waits for more rows after its first:
// each commit costs its WAL page writes and an fsync whatever it holds,
// so at hundreds of calls per second a commit per row or two (what came
// during the previous commit) spent a seventh of xtrunk sip's CPU. Rows
// reach the store at most this much later.
const cdrLinger = 50 * time.Millisecond

func (w *cdrWriter) run() {
	defer close(w.done)
	var spare []cdrItem
	for range w.wake {
		w.mu.Lock()
		closing := w.closed
		w.mu.Unlock()
		if !closing {
			time.Sleep(cdrLinger)
		}
		w.mu.Lock()
		batch := w.pending
		w.pending, spare = spare[:0], nil
		closing = w.closed
		w.mu.Unlock()
		for rest := batch; len(rest) > 0; {
			n := min(len(rest), cdrBatch)
			w.flush(coalesce(rest[:n]))
			rest = rest[n:]
		}
		clear(batch) // the rows' loggers and recordings go with them
		spare = batch[:0]
		if closing {
			return
		}
	}
}

// coalesce keeps one row per call of a batch: a call's later row
// replaces its earlier live row (ringing, then in-progress, then the CDR
// all queued within one commit are one upsert, not three); a live row
// never replaces the CDR (the store's upsert would not either), and CDRs
// are all kept.
// Order otherwise stays as queued. A call's live rows are a third to two
// thirds of the writer's rows; on short calls most meet in one batch.
func coalesce(batch []cdrItem) []cdrItem {
	if len(batch) < 2 {
		return batch
	}
	at := make(map[string]int, len(batch))
	out := batch[:0]
	for _, it := range batch {
		i, seen := at[it.call.Sid]
		switch {
		case seen && live(out[i].call.Status):
			out[i] = it
		case seen && live(it.call.Status):
			// a late live row after the CDR: the CDR stays
		default: // first of its call, or a second CDR (kept, with its recording)
			at[it.call.Sid] = len(out)
			out = append(out, it)
		}
	}
	return out
}

// live reports whether status is a live row's (not a CDR's).
func live(status string) bool { return status == store.CallRinging || status == store.CallInProgress }

// flush writes a batch in one transaction; if that fails, one by one, so
// one bad row costs only itself.
func (w *cdrWriter) flush(batch []cdrItem) { w.flushIn(w.life, batch) }

// flushIn is flush within parent.
func (w *cdrWriter) flushIn(parent context.Context, batch []cdrItem) {
	ctx, cancel := context.WithTimeout(parent, cdrWriteTimeout)
	defer cancel()
	calls := make([]store.Call, len(batch))
	for i, it := range batch {
		calls[i] = it.call
	}
	// upserts: a CDR replaces its call's live row (writeLive)
	if _, err := w.upsert(ctx, calls); err != nil {
		w.log.Warn().Err(err).Int("calls", len(batch)).Msg("CDR batch failed; writing one by one")
		for _, it := range batch {
			if _, err := w.upsert(ctx, []store.Call{it.call}); err != nil {
				it.log.Error().Err(err).Msg("CDR not written")
				w.failed()
			}
		}
	}
	for _, it := range batch {
		if it.rec == nil {
			continue
		}
		if _, err := w.st.InsertRecording(ctx, *it.rec); err != nil {
			it.log.Error().Err(err).Msg("recording not recorded")
		}
	}
}

// close writes what is queued and returns when it is in the store.
func (w *cdrWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default: // a wake is pending: run sees closed when it takes it
	}
	<-w.done
}

// recordingFile is the name the Recording keeps of the relay's file: the
// last element of the path the relay replied with, when it is a recording
// file's name (store.ValidRecordingFile), else nothing. The API serves the
// name from its own --recording-dir, so a reply naming /etc/passwd or
// ../../x cannot make it open anything else.
func recordingFile(c *call, p string) string {
	name := path.Base(p)
	if !store.ValidRecordingFile(name) {
		c.log.Warn().Str("file", p).Msg("relay named a recording file that is not a recording's name: the Recording has no media")
		return ""
	}
	return name
}

// callStatus is the Calls resource's status for a final SIP code.
func callStatus(code int, answer time.Time) string {
	switch {
	case !answer.IsZero():
		return "completed"
	case code == 486 || code == 600:
		return "busy"
	case code == 487:
		return "canceled"
	case code == 408 || code == 480:
		return "no-answer"
	}
	return "failed"
}
