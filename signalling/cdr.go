package signalling

import (
	"context"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

// writeCDR records the finished call in the store's Calls, and its
// recording in Recordings when the relay made one.
func (s *Server) writeCDR(ctx context.Context, c *call, status int, reason, by string, end time.Time, del deleted) {
	c.mu.Lock()
	answer, recStart := c.answer, c.recStart
	c.mu.Unlock()
	rec := store.Call{
		AccountSid:      c.p.trunk.AccountSid,
		TrunkSid:        c.p.trunk.Sid,
		PhoneNumberSid:  c.p.phoneSid,
		Direction:       c.p.dir,
		From:            c.p.from,
		To:              c.p.to,
		ForwardedFrom:   c.p.diversion,
		Status:          callStatus(status, answer),
		Start:           c.start,
		Answer:          answer,
		End:             end,
		SIPResponseCode: status,
		HangupCause:     by + ": " + reason,
		Edge:            s.cfg.Edge,
		Quality:         del.quality,
	}
	if !answer.IsZero() {
		rec.Duration = int(end.Sub(answer).Round(time.Second) / time.Second)
	}
	cdr, err := s.st.InsertCall(ctx, rec)
	if err != nil {
		c.log.Error().Err(err).Msg("CDR not written")
		return
	}
	if del.recording == nil {
		return
	}
	if e := del.recording.Str("error"); e != "" {
		c.log.Error().Str("error", e).Msg("relay recording failed")
		return
	}
	files, _ := del.recording["files"].([]any)
	if len(files) == 0 {
		return
	}
	channels := 1
	if c.p.trunk.RecordingMode == "record-from-answer-dual" || c.p.trunk.RecordingMode == "record-from-ringing-dual" {
		channels = 2
	}
	r := store.Recording{
		AccountSid: c.p.trunk.AccountSid,
		CallSid:    cdr.Sid,
		TrunkSid:   c.p.trunk.Sid,
		Channels:   channels,
		Source:     "Trunking",
		Status:     "completed",
		Duration:   int((num(del.recording["duration ms"]) + 500) / 1000),
		Start:      recStart, // from ringing: before the answer
		MediaPath:  fileName(files[0]),
	}
	if r.Start.IsZero() {
		r.Start = c.start
	}
	if _, err := s.st.InsertRecording(ctx, r); err != nil {
		c.log.Error().Err(err).Msg("recording not recorded")
	}
}

func fileName(v any) string {
	switch f := v.(type) {
	case string:
		return f
	case []byte:
		return string(f)
	}
	return ""
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
