package signalling

import (
	"context"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

// writeCDR records the finished call in the store's Calls.
func (s *Server) writeCDR(ctx context.Context, c *call, status int, reason, by string, end time.Time, quality []store.LegQuality) {
	c.mu.Lock()
	answer := c.answer
	c.mu.Unlock()
	rec := store.Call{
		AccountSid:      c.ad.tc.Trunk.AccountSid,
		TrunkSid:        c.ad.tc.Trunk.Sid,
		Direction:       store.DirectionTerminating,
		From:            c.ad.callerID,
		To:              c.ad.to,
		Status:          callStatus(status, answer),
		Start:           c.start,
		Answer:          answer,
		End:             end,
		SIPResponseCode: status,
		HangupCause:     by + ": " + reason,
		Edge:            s.cfg.Edge,
		Quality:         quality,
	}
	if !answer.IsZero() {
		rec.Duration = int(end.Sub(answer).Round(time.Second) / time.Second)
	}
	if _, err := s.st.InsertCall(ctx, rec); err != nil {
		c.log.Error().Err(err).Msg("CDR not written")
	}
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
