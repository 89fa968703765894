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
	if !answer.IsZero() {
		rec.Duration = int(end.Sub(answer).Round(time.Second) / time.Second)
	}
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
type cdrWriter struct {
	life context.Context // the server's: batches end with it
	st   *store.Store
	log  zerolog.Logger
	ch   chan cdrItem
	done chan struct{}

	mu     sync.Mutex
	closed bool
	// failed counts a CDR not written (xtrunk_sip_cdr_write_failures_total).
	failed func()
}

// cdrBatch bounds one commit.
const cdrBatch = 256

func newCDRWriter(life context.Context, st *store.Store, log zerolog.Logger) *cdrWriter {
	w := &cdrWriter{life: life, st: st, log: log, ch: make(chan cdrItem, 4*cdrBatch), done: make(chan struct{}), failed: func() {}}
	go w.run()
	return w
}

// add queues a CDR; after close it is written at once.
func (w *cdrWriter) add(it cdrItem) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		// A call that ended after Close (it outlived closeWithWait) still
		// gets its CDR, though the server's life may be over.
		w.flushIn(context.WithoutCancel(w.life), []cdrItem{it})
		return
	}
	w.ch <- it // under mu so close cannot close ch in between; blocks only when the store falls behind
	w.mu.Unlock()
}

// cdrLinger is how long a batch waits for more rows after its first:
// each commit costs its WAL page writes and an fsync whatever it holds,
// so at hundreds of calls per second a commit per row or two (what came
// during the previous commit) spent a seventh of xtrunk sip's CPU. Rows
// reach the store at most this much later.
const cdrLinger = 50 * time.Millisecond

func (w *cdrWriter) run() {
	defer close(w.done)
	batch := make([]cdrItem, 0, cdrBatch)
	linger := time.NewTimer(cdrLinger)
	linger.Stop()
	for it := range w.ch {
		batch = append(batch[:0], it)
		linger.Reset(cdrLinger)
	more:
		for len(batch) < cdrBatch {
			select {
			case it, ok := <-w.ch:
				if !ok {
					break more // closing: write what there is now
				}
				batch = append(batch, it)
			case <-linger.C:
				break more
			}
		}
		linger.Stop()
		w.flush(coalesce(batch))
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
	if _, err := w.st.UpsertCalls(ctx, calls); err != nil {
		w.log.Warn().Err(err).Int("calls", len(batch)).Msg("CDR batch failed; writing one by one")
		for _, it := range batch {
			if _, err := w.st.UpsertCalls(ctx, []store.Call{it.call}); err != nil {
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
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
	w.mu.Unlock()
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
