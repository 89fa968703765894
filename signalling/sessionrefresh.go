package signalling

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The session timers' moving parts (sessiontimer.go has the negotiation):
// the watcher that refreshes the legs the edge refreshes and ends the
// call when a leg's session expires, and the hooks the in-dialog code
// (dialog.go) calls on every refresh either way.

// timerAction is what the watcher does next on a leg.
type timerAction int

const (
	actNone timerAction = iota
	actRefresh
	actExpire
)

// next is the earliest thing to do on either leg, and when.
func (st *sessionTimers) next() (timerAction, bool, time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.nextLocked()
}

func (st *sessionTimers) nextLocked() (timerAction, bool, time.Time) {
	act, toA, at := actNone, false, time.Time{}
	for _, leg := range []struct {
		toA bool
		l   legTimer
	}{{true, st.a}, {false, st.b}} {
		if leg.l.interval <= 0 {
			continue
		}
		if at.IsZero() || leg.l.expireAt.Before(at) {
			act, toA, at = actExpire, leg.toA, leg.l.expireAt
		}
		if leg.l.edgeRefreshes && !leg.l.refreshAt.IsZero() && leg.l.refreshAt.Before(at) {
			act, toA, at = actRefresh, leg.toA, leg.l.refreshAt
		}
	}
	return act, toA, at
}

// armLocked sets the watcher's timer for the earliest thing to do, or
// stops it when there is nothing (or no watcher). Under st.mu.
func (st *sessionTimers) armLocked() {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if st.fire == nil {
		return
	}
	if act, _, at := st.nextLocked(); act != actNone {
		st.timer = time.AfterFunc(time.Until(at), st.fire)
	}
}

// rearm is armLocked for callers not holding st.mu.
func (st *sessionTimers) rearm() {
	st.mu.Lock()
	st.armLocked()
	st.mu.Unlock()
}

// stopWatch disarms the watcher for good: the call is over, and a timer
// left armed would keep it in memory until the session would have
// expired.
func (st *sessionTimers) stopWatch() {
	if st == nil {
		return
	}
	st.mu.Lock()
	st.fire = nil
	st.armLocked()
	st.mu.Unlock()
}

// retryAt moves a leg's next refresh to at (not past its expiry: then
// the expiry ends the call).
func (st *sessionTimers) retryAt(toA bool, at time.Time) {
	st.mu.Lock()
	l := st.leg(toA)
	if l.interval > 0 {
		l.refreshAt = at
	}
	st.mu.Unlock()
}

// snapshot is a leg's timer now.
func (st *sessionTimers) snapshot(toA bool) legTimer {
	st.mu.Lock()
	defer st.mu.Unlock()
	return *st.leg(toA)
}

// watchSessionTimers runs from the answer to the end of the call: it
// refreshes the legs the edge refreshes and ends the call when a leg's
// session expires unrefreshed. A timer, not a goroutine per call: it
// fires at the earliest thing to do on either leg (sessionTimerFired),
// and every change to a leg's times re-arms it (set); closeWith stops it.
func (c *call) watchSessionTimers() {
	if c.st == nil {
		return
	}
	c.st.mu.Lock()
	// A call that ended meanwhile (a BYE right after the answer) arms
	// nothing: closeWith cancels its context before stopWatch takes mu.
	if c.ctx.Err() == nil {
		c.st.fire = c.sessionTimerFired
		c.st.armLocked()
	}
	c.st.mu.Unlock()
}

// sessionTimerFired does what is due, if it still is (a refresh may have
// come meanwhile), and arms the timer for what comes next.
func (c *call) sessionTimerFired() {
	// closeWith cancels the call's context first and closes done last,
	// seconds later (BYEs, the relay, the CDR): a timer firing in
	// between, or a second one already running, does nothing.
	if c.ctx.Err() != nil {
		return
	}
	act, toA, at := c.st.next()
	if act == actNone {
		return
	}
	if time.Until(at) > 0 {
		c.st.rearm()
		return
	}
	switch act {
	case actExpire:
		c.sessionEnded(toA, reasonSessionExpired)
		return
	case actRefresh:
		c.refresh(toA)
	}
	c.st.rearm()
}

// sessionEnded ends the call for a session timer on one leg: BYE on both.
func (c *call) sessionEnded(toA bool, reason HangupReason) {
	c.log.Info().Bool("leg_a", toA).Str("reason", string(reason)).Msg("session timer ends the call")
	c.s.metrics.sessionTimerEnded(c.p.trunk.Sid)
	c.closeWith(endedBy(hangupSystem, 0, reason))
}

// refresh sends one session refresh to a leg the edge refreshes: UPDATE
// without a body when the peer allows it, else a re-INVITE with the SDP
// that leg already has (same o= version: nothing changes). A timeout, 408
// or 481 ends the call (RFC 4028 §10, RFC 3261 §12.2.1.2); 422 is tried
// again at once with the peer's Min-SE; other refusals again shortly,
// until the session expires.
func (c *call) refresh(toA bool) {
	now := time.Now()
	c.st.retryAt(toA, now.Add(refreshRetry)) // unless the refresh below succeeds
	if !c.reinvite.TryLock() {
		return // a re-INVITE under way: it refreshes the legs it crosses
	}
	defer c.reinvite.Unlock()
	l := c.st.snapshot(toA)
	deadline := now.Add(maxRefreshWait)
	if l.expireAt.Before(deadline) {
		deadline = l.expireAt // the session is over then anyway
	}
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	var res *sip.Response
	var err error
	if l.update {
		res, err = c.sendUpdate(ctx, toA)
		if err == nil && (res.StatusCode == 405 || res.StatusCode == 501) {
			c.st.noUpdate(toA) // it said it allows UPDATE; it does not: re-INVITE from now on
			res, err = c.sendReinvite(ctx, toA, c.sdpTo(toA))
		}
	} else {
		res, err = c.sendReinvite(ctx, toA, c.sdpTo(toA))
	}
	log := c.log.With().Bool("leg_a", toA).Logger()
	switch {
	case err != nil:
		if c.ctx.Err() != nil {
			return // the call ended meanwhile
		}
		log.Warn().Err(err).Msg("session refresh got no answer")
		c.sessionEnded(toA, reasonRefreshFailed+": no answer")
	case res.IsSuccess():
		log.Debug().Msg("session refreshed")
	case res.StatusCode == 408 || res.StatusCode == 481:
		log.Warn().Int("status", res.StatusCode).Msg("session refresh refused: the dialog is gone")
		c.sessionEnded(toA, reasonRefreshFailed+": "+HangupReason(res.Reason))
	case res.StatusCode == 422 && c.st.raiseInterval(toA, res):
		c.st.retryAt(toA, now) // again with the peer's Min-SE
	default:
		log.Info().Int("status", res.StatusCode).Msg("session refresh refused; trying again")
	}
}

// sdpTo is the SDP the edge last sent to a leg.
func (c *call) sdpTo(toA bool) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if toA {
		return c.sdpToA
	}
	return c.sdpToB
}

// noUpdate stops refreshing a leg with UPDATE.
func (st *sessionTimers) noUpdate(toA bool) {
	st.mu.Lock()
	st.leg(toA).update = false
	st.mu.Unlock()
}

// raiseInterval takes a 422 to a refresh: the leg's interval becomes the
// peer's Min-SE (false when the 422 names none, or no larger one).
func (st *sessionTimers) raiseInterval(toA bool, res *sip.Response) bool {
	o, err := readTimerOffer(res)
	st.mu.Lock()
	defer st.mu.Unlock()
	l := st.leg(toA)
	m := time.Duration(o.minSE) * time.Second
	if err != nil || m <= l.interval {
		return false
	}
	l.interval = m
	return true
}

// sendUpdate sends an UPDATE without a body to a leg (a refresh) and
// returns its final response.
func (c *call) sendUpdate(ctx context.Context, toA bool) (*sip.Response, error) {
	req, b, err := c.inDialogRequest(sip.UPDATE, toA, nil)
	if err != nil {
		return nil, err
	}
	var res *sip.Response
	if toA {
		res, err = c.a.Do(ctx, req)
	} else {
		res, err = b.Do(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	c.st.responded(toA, res)
	return res, nil
}

// requestHeaders adds the session timer headers of a leg to an in-dialog
// INVITE or UPDATE the edge sends on it: every such request refreshes the
// session (§7.4).
func (st *sessionTimers) requestHeaders(toA bool, req *sip.Request) {
	if st == nil {
		return
	}
	st.mu.Lock()
	l := *st.leg(toA)
	minSE := st.minSE
	if !toA {
		minSE = st.bMinSE
	}
	st.mu.Unlock()
	for _, h := range timerHeaders(l, true, false) {
		req.AppendHeader(h)
	}
	if l.interval > 0 {
		req.AppendHeader(st.minSEHeader(minSE))
	}
}

// responded takes the final response to a request of requestHeaders: a
// 2xx restarts the leg's interval with what it says (§7.2; none: the
// timer is off on that leg).
func (st *sessionTimers) responded(toA bool, res *sip.Response) {
	if st == nil || !res.IsSuccess() {
		return
	}
	o, err := readTimerOffer(res)
	if err != nil {
		o = timerOffer{}
	}
	st.set(toA, uacTimer(o, st.snapshot(toA)))
}

// refuseRefresh answers 422 (with Min-SE) or 400 to an in-dialog INVITE
// or UPDATE whose session timer headers the edge cannot take; true when
// it did.
func (st *sessionTimers) refuseRefresh(req *sip.Request, tx sip.ServerTransaction) bool {
	if st == nil {
		return false
	}
	o, err := readTimerOffer(req)
	if err != nil {
		respond(tx, req, 400, "Bad Session-Expires or Min-SE", nil)
		return true
	}
	if _, _, small := uasTimer(o, st.minSE, 0, legTimer{}); small {
		respond(tx, req, 422, "Session Interval Too Small", []sip.Header{st.minSEHeader(st.minSE)})
		return true
	}
	return false
}

// refreshedBy takes a refresh from a leg's peer that the edge accepts
// (its 2xx is about to go): the leg's timer is renegotiated and
// restarted; it returns the headers for the 2xx.
func (st *sessionTimers) refreshedBy(fromA bool, req *sip.Request) []sip.Header {
	if st == nil {
		return nil
	}
	o, err := readTimerOffer(req)
	if err != nil {
		return nil // refused before (refuseRefresh)
	}
	cur := st.snapshot(fromA)
	l, require, _ := uasTimer(o, st.minSE, 0, cur)
	st.set(fromA, l)
	return timerHeaders(l, false, require)
}

// sessionTimersOf starts a call's session timers from its INVITE:
// refusals are 422 with Min-SE for a Session-Expires below
// --session-min-se, 400 for a malformed one.
func (s *Server) sessionTimersOf(req *sip.Request) (*sessionTimers, *refusal, []sip.Header) {
	st := s.newSessionTimers()
	if ref, hdrs := st.readInvite(req); ref != nil {
		return nil, ref, hdrs
	}
	return st, nil, nil
}

// respondAnswer sends the A-leg the 2xx to its INVITE, with the relay's
// SDP and the A-leg's session timer, once the B-leg answered with bRes.
func (c *call) respondAnswer(bRes *sip.Response, sdp []byte) error {
	if sdp == nil {
		return errors.New("no SDP for the answer")
	}
	res := sip.NewSDPResponseFromRequest(c.a.InviteRequest, sdp)
	if c.st != nil {
		for _, h := range c.st.answered(bRes) {
			res.AppendHeader(h)
		}
	}
	return c.a.WriteResponse(res)
}
