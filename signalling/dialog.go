package signalling

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// reinviteTimeout bounds a re-INVITE end to end: the other leg's answer
// (Timer B) and the relay's.
const reinviteTimeout = 32 * time.Second

// onAck hands the A-leg's ACK for our 200 to its dialog; ACKs for 2xx to
// re-INVITEs end here too (nothing to do for them).
func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if c, fromA := s.dialogOf(req); c != nil && fromA {
		_ = c.a.ReadAck(req, tx)
	}
}

// onBye ends a call from either side.
func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c, fromA := s.dialogOf(req)
	if c == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	if fromA {
		if err := c.a.ReadBye(req, tx); err != nil {
			respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
			return
		}
		c.sip("A", "in", "BYE")
		c.closeWith(endedBy(hangupCaller, 0, reasonBye))
		return
	}
	c.mu.Lock()
	b := c.b
	c.mu.Unlock()
	if b == nil || b.ReadBye(req, tx) != nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	if c.transferorLeft() {
		return // a transfer in progress outlives its transferor (refer.go)
	}
	c.sip("B", "in", "BYE")
	c.closeWith(endedBy(hangupCallee, 0, reasonBye))
}

// onReinvite handles an INVITE inside the dialog of a call in progress,
// from either leg: hold, resume, codec change, session refresh.
func (s *Server) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	if c, fromA := s.inDialogCall(req, tx); c != nil {
		c.reinviteFrom(fromA, req, tx)
	}
}

// inDialogCall finds the call of an in-dialog request and which leg sent
// it; with no such call it answers 481 and returns nil.
func (s *Server) inDialogCall(req *sip.Request, tx sip.ServerTransaction) (*call, bool) {
	c, fromA := s.dialogOf(req)
	if c == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return nil, false
	}
	return c, fromA
}

// readInDialog checks an in-dialog request against the sending leg's
// dialog (CSeq order) and returns the B-leg; it answers and returns nil
// when the call is not answered (unanswered) or the request is out of
// order.
func (c *call) readInDialog(fromA bool, req *sip.Request, tx sip.ServerTransaction, unanswered int, reason string) *sipgo.DialogClientSession {
	c.mu.Lock()
	answered, b := c.answered, c.b
	c.mu.Unlock()
	if !answered || b == nil {
		respond(tx, req, unanswered, reason, nil)
		return nil
	}
	var err error
	if fromA {
		err = c.a.ReadRequest(req, tx)
	} else {
		err = b.ReadRequest(req, tx)
	}
	if err != nil {
		respond(tx, req, 500, "Server Internal Error", []sip.Header{sip.NewHeader("Retry-After", "1")})
		return nil
	}
	return b
}

// remoteTarget is where in-dialog requests to a leg go: its Contact.
func (c *call) remoteTarget(toA bool, b *sipgo.DialogClientSession) (sip.Uri, error) {
	var cont *sip.ContactHeader
	if toA {
		cont = c.a.InviteRequest.Contact()
	} else {
		cont = b.InviteResponse.Contact()
	}
	if cont == nil {
		return sip.Uri{}, errors.New("the leg has no Contact")
	}
	return cont.Address, nil
}

// reinviteFrom carries a re-INVITE from one leg (fromA) to the other
// through the relay: the offer is re-offered to the relay, sent on as a
// re-INVITE, and the other leg's answer comes back through the relay.
// An offerless re-INVITE (a session refresh) is answered at once with the
// SDP this leg last had from us.
func (c *call) reinviteFrom(fromA bool, req *sip.Request, tx sip.ServerTransaction) {
	if !c.reinvite.TryLock() {
		c.log.Debug().Bool("from_a", fromA).Msg("re-INVITE while another is in progress: 491")
		respond(tx, req, 491, "Request Pending", nil) // glare, RFC 3261 §14.2
		return
	}
	defer c.reinvite.Unlock()
	if c.readInDialog(fromA, req, tx, 491, "Request Pending") == nil {
		return
	}
	if ref, hdr := unsupported(req); ref != nil {
		respond(tx, req, ref.status, ref.reason, hdr)
		return
	}
	if c.st.refuseRefresh(req, tx) {
		return
	}
	log := c.log.With().Bool("from_a", fromA).Logger()
	if len(req.Body()) == 0 {
		var sdp []byte // an UPDATE without an offer gets a 200 without an answer
		if req.Method == sip.INVITE {
			sdp = c.sdpTo(fromA)
		}
		c.respondSDP(tx, req, sdp, fromA)
		return
	}
	customer := fromA == c.p.customerIsA()
	if customer && c.p.trunk.Secure && !sdpEncrypted(req.Body()) {
		respond(tx, req, 488, "Secure trunk requires SRTP", nil)
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil))
	ctx, cancel := context.WithTimeout(c.ctx, reinviteTimeout)
	defer cancel()
	relayRefused := func(err error, what string) {
		log.Warn().Err(err).Msg("relay refused the re-INVITE's " + what)
		status, reason, hdrs := relayRefusal(err, true)
		respond(tx, req, status, reason, hdrs)
	}
	out, err := c.s.mediaReoffer(ctx, c, fromA, msgSource(req), req.Body())
	if err != nil {
		relayRefused(err, "offer")
		return
	}
	res, err := c.sendReinvite(ctx, !fromA, out)
	if err != nil {
		log.Warn().Err(err).Msg("re-INVITE to the other leg got no answer")
		respond(tx, req, 408, "Request Timeout", nil)
		return
	}
	if !res.IsSuccess() {
		log.Info().Int("status", res.StatusCode).Msg("re-INVITE refused by the other leg")
		respond(tx, req, res.StatusCode, res.Reason, nil)
		return
	}
	ans, err := c.s.mediaReanswer(ctx, c, fromA, msgSource(res), res.Body())
	if err != nil {
		relayRefused(err, "answer")
		return
	}
	c.mu.Lock()
	if fromA {
		c.sdpToA, c.sdpToB, c.sdpFromA = ans, out, req.Body()
	} else {
		c.sdpToB, c.sdpToA, c.sdpFromA = ans, out, res.Body()
	}
	c.mu.Unlock()
	c.respondSDP(tx, req, ans, fromA)
	log.Info().Msg("re-INVITE done")
}

// inDialogRequest builds a request the edge sends in the dialog of the
// A-leg (toA) or the B-leg: to the leg's Contact, with the leg's session
// timer headers and, an INVITE, sdp as its body. b is the B-leg's dialog
// to send it on.
func (c *call) inDialogRequest(method sip.RequestMethod, toA bool, sdp []byte) (req *sip.Request, b *sipgo.DialogClientSession, err error) {
	c.mu.Lock()
	b = c.b
	c.mu.Unlock()
	target, err := c.remoteTarget(toA, b)
	if err != nil {
		return nil, nil, err
	}
	req = sip.NewRequest(method, target)
	if method == sip.INVITE {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(sdp)
	}
	c.st.requestHeaders(toA, req)
	return req, b, nil
}

// sendReinvite sends a re-INVITE with sdp to the A-leg (toA) or the
// B-leg, ACKs a 2xx and returns the final response.
func (c *call) sendReinvite(ctx context.Context, toA bool, sdp []byte) (*sip.Response, error) {
	req, b, err := c.inDialogRequest(sip.INVITE, toA, sdp)
	if err != nil {
		return nil, err
	}
	var txn sip.ClientTransaction
	if toA {
		txn, err = c.a.TransactionRequest(ctx, req)
	} else {
		txn, err = b.TransactionRequest(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	defer txn.Terminate()
	for {
		select {
		case res := <-txn.Responses():
			if res.IsProvisional() {
				continue
			}
			c.st.responded(toA, res)
			if res.IsSuccess() {
				ack := sip.NewRequest(sip.ACK, req.Recipient)
				if toA {
					err = c.a.WriteRequest(ack)
				} else {
					err = b.WriteRequest(ack)
				}
				if err != nil {
					c.log.Warn().Err(err).Msg("ACK for re-INVITE")
				}
			}
			return res, nil
		case <-txn.Done():
			if err := txn.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("re-INVITE transaction ended without a final response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// respondSDP answers an in-dialog INVITE or UPDATE from the A-leg (fromA)
// or the B-leg with 200 and sdp (none: no body), with the Contact that
// leg already has and its session timer (the 200 refreshes it).
func (c *call) respondSDP(tx sip.ServerTransaction, req *sip.Request, sdp []byte, fromA bool) {
	res := sip.NewResponseFromRequest(req, 200, "OK", sdp)
	if sdp != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	for _, h := range c.st.refreshedBy(fromA, req) {
		res.AppendHeader(h)
	}
	cont := c.aUA.ContactHDR
	if !fromA {
		c.mu.Lock()
		if c.b != nil {
			cont = c.b.UA.ContactHDR
		}
		c.mu.Unlock()
	}
	res.AppendHeader(&cont)
	if err := tx.Respond(res); err != nil {
		c.log.Warn().Err(err).Msg("200 to re-INVITE")
	}
}

// onUpdate takes an in-dialog UPDATE (RFC 3311) from either leg: a
// session refresh without a body is answered at once, an offer goes the
// way of a re-INVITE's.
func (s *Server) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	if c, fromA := s.inDialogCall(req, tx); c != nil {
		c.reinviteFrom(fromA, req, tx)
	}
}

// onInfo carries an in-dialog INFO (DTMF, mid-call signals) to the other
// leg and its answer back.
func (s *Server) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	if c, fromA := s.inDialogCall(req, tx); c != nil {
		c.forward(fromA, req, tx)
	}
}

// forward sends a copy of an in-dialog request (method, body, its
// Content-Type) to the other leg and relays the final status back.
func (c *call) forward(fromA bool, req *sip.Request, tx sip.ServerTransaction) {
	b := c.readInDialog(fromA, req, tx, 481, "Call/Transaction Does Not Exist")
	if b == nil {
		return
	}
	target, err := c.remoteTarget(!fromA, b)
	if err != nil {
		respond(tx, req, 500, "Server Internal Error", nil)
		return
	}
	out := sip.NewRequest(req.Method, target)
	if ct := req.ContentType(); ct != nil {
		out.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
	}
	out.SetBody(req.Body())
	ctx, cancel := context.WithTimeout(c.ctx, 32*time.Second)
	defer cancel()
	var res *sip.Response
	if fromA {
		res, err = b.Do(ctx, out)
	} else {
		res, err = c.a.Do(ctx, out)
	}
	if err != nil {
		respond(tx, req, 408, "Request Timeout", nil)
		return
	}
	fwd := sip.NewResponseFromRequest(req, res.StatusCode, res.Reason, res.Body())
	if ct := res.ContentType(); ct != nil {
		fwd.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
	}
	_ = tx.Respond(fwd)
}
