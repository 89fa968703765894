package signalling

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/route"
)

// noResponseTimeout is how long a gateway or origination URI may stay
// silent before the next one is tried (REQUIREMENTS §3.3).
const noResponseTimeout = 4 * time.Second

// finalResponseWait bounds how long ending a call waits for its final
// response to the A-leg to be sent.
const finalResponseWait = 2 * time.Second

// plan is what admission decided about a call, in either direction: the
// trunk, the numbers for the CDR, where the B-leg may go and how its
// INVITE is shaped.
type plan struct {
	dir       string // store.DirectionTerminating or store.DirectionOriginating
	trunk     store.Trunk
	from, to  string // caller and called number (E.164) for the CDR
	phoneSid  string // the DID's sid (origination)
	diversion string // the dialed number, for Diversion (origination)
	maxFwd    uint32
	conc      bool // holds a concurrency slot on the trunk
	bCarrier  bool // the B-leg goes to a carrier too (a transfer to a number, refer.go)
	// fromEdge is the edge that handed this origination call over
	// (handover.go): it writes the CDR, and the call is not handed on.
	fromEdge string
	// targets are the B-leg's candidates (carrier gateways or origination
	// URIs); the call orders them by priority and weight.
	targets []route.Target[dest]
}

// customerIsA reports whether the A-leg (the inbound INVITE) is the
// customer's: true for termination, false for origination.
func (p *plan) customerIsA() bool { return p.dir == store.DirectionTerminating }

// call is one call through the B2BUA: the inbound dialog (A-leg: the
// customer's on termination, the carrier's on origination), the outbound
// one (B-leg), the relay session between them, and its own context.
// Every ending goes through closeWith.
type call struct {
	s *Server
	// id is the edge's own ID for the call (newLegID): the relay
	// session's call-id and the key of Server.calls. aCallID is the
	// A-leg's Call-ID as the peer chose it, aSrc where its INVITE came
	// from: with fromTag they say which in-dialog requests are this
	// call's (Server.dialogOf).
	id      string
	aCallID string
	aSrc    netip.Addr
	log     zerolog.Logger
	p       *plan

	ctx    context.Context
	cancel context.CancelFunc

	a       *sipgo.DialogServerSession
	aUA     *sipgo.DialogUA // the A-leg's Contact and client (addr.go)
	aTx     sip.ServerTransaction
	fromTag string // A-leg From tag: the relay session's offer tag

	mu        sync.Mutex
	b         *sipgo.DialogClientSession
	bCallID   string
	bTag      string // B-leg To tag: the relay session's answer tag
	early     bool   // early media sent to the A-leg
	answered  bool
	recording bool
	recStart  time.Time // when the relay began recording, for the Recording's start time
	sdpToA    []byte    // the SDP last sent to each leg (for offerless re-INVITEs)
	sdpToB    []byte
	finalHdrs []sip.Header // headers of an unanswered call's final response (Retry-After)
	sdpFromA  []byte       // the A-leg's SDP last seen, when a re-INVITE changed it (refer.go)
	reinvite  sync.Mutex   // one re-INVITE at a time

	// Origination's one 3xx redirect (redirect.go) and the caller's CNAM
	// name toward the PBX (cnam.go), under mu.
	redir    redirectState
	cnamName string
	// edgeNote is the CDR's note on the ;edge= of the last target dialled
	// (handover.go), under mu.
	edgeNote    string
	edgeRefused string // the last B-leg refusal by a named edge itself (handover.go)

	// Under mu: the CDR's Call SID once a disaster-recovery request or
	// a transfer has named it (callSid), and the disaster-recovery
	// <Dial> leg being placed (drtwiml.go).
	sid   string
	drLeg *drDialLeg

	ladder ladder // the SIP messages so far, for the console (admin.go)

	start, answer time.Time
	qualityAt     time.Time // the live row's quality last refreshed (livequality.go), under mu
	once          sync.Once
	done          chan struct{}

	st *sessionTimers // RFC 4028, both legs (sessiontimer.go); nil: none
	// Transfers (refer.go). transferred: the A-leg belongs to a
	// transfer's call now, never BYE it (under mu). parentSid, set at
	// creation, marks a call made by a transfer: its A-leg is already
	// answered; a transfer's call links to its parent by the parent's
	// sid (callSid).
	parentSid   string
	transferred bool
	// transferring: a REFER was accepted and its transfer runs;
	// transferorGone: the transferor hung up meanwhile (both under mu).
	transferring, transferorGone bool
}

// newCall makes the call, with its session timers (st, nil: none), and
// registers it: from then on anything may end it (closeWith), so every
// field closeWith reads is set here, before addCall.
func (s *Server) newCall(req *sip.Request, tx sip.ServerTransaction, p *plan, st *sessionTimers, log zerolog.Logger) (*call, error) {
	ua := s.legUA(req.Transport(), peerOfSource(req))
	a, err := ua.ReadInvite(req, tx)
	if err != nil {
		return nil, err
	}
	if p.customerIsA() {
		// the edge's requests to the PBX (BYE, re-INVITE…) go to the
		// Contact it wrote: vetted as any target a tenant names, but for
		// the address the PBX sent its INVITE from (a PBX on loopback
		// beside the edge, admitted by its IP ACL, is answered there)
		src, _ := sourceAddr(req)
		check := s.tenantDialCheck(p.trunk.Sid, viaContact)
		a.InviteRequest.SetDialCheck(func(to netip.Addr) error {
			if to.Unmap() == src {
				return nil
			}
			return check(to)
		})
	}
	ctx, cancel := context.WithCancel(s.lifetime())
	id := newLegID()
	src, _ := sourceAddr(req)
	c := &call{s: s, id: id, aCallID: req.CallID().Value(), aSrc: src, p: p,
		log: log.With().Str("call", id).Str("trunk", p.trunk.Sid).Str("direction", p.dir).Logger(),
		ctx: ctx, cancel: cancel, a: a, aUA: ua, aTx: tx, st: st, start: time.Now(), done: make(chan struct{})}
	c.fromTag = fromTagOf(req)
	c.sip("A", "in", "INVITE %s", req.Recipient.String())
	if err := s.addCall(c); err != nil {
		cancel()
		return nil, err
	}
	s.writeLive(c)
	return c, nil
}

// run sets the call up and then waits for its end; it is the INVITE
// handler's goroutine.
func (c *call) run() {
	_ = c.a.Respond(100, "Trying", nil)
	defer c.watchATx()()
	c.log.Info().Str("from", c.p.from).Str("to", c.p.to).Msg("call admitted")
	targets := c.s.order(c.p.targets)
	waitCNAM := c.startCNAM() // while the relay prepares the media
	offer, err := c.s.mediaOffer(c.ctx, c, targets)
	if err != nil {
		c.log.Error().Err(err).Msg("relay offer failed")
		status, reason, hdrs := relayRefusal(err, false)
		c.mu.Lock()
		c.finalHdrs = hdrs
		c.mu.Unlock()
		c.closeWith(endedBy(hangupSystem, sipStatus(status), HangupReason(reason)))
		<-c.done
		return
	}
	c.mu.Lock()
	c.sdpToB = offer
	c.mu.Unlock()
	waitCNAM()
	status, reason := c.dialTargets(offer, targets)
	e := endedBy(hangupCallee, sipStatus(status), HangupReason(reason))
	if status != 200 && c.wantsDR(status) {
		e = c.disasterRecovery(offer, status, reason)
	}
	switch {
	case e.Status == 200:
		c.watchMedia()
		c.watchSessionTimers()
	case e.Status > 0:
		c.closeWith(e)
	} // 0: disaster recovery ended the call
	<-c.done
}

// watchATx ends the call when its A-leg INVITE transaction is cancelled
// or dies before the answer. sipgo answers a CANCEL (200, then 487)
// itself; OnCancel tells us at once, while the transaction's end comes
// only after Timer I (5 s on UDP) and is the fallback for any other way
// it dies. Callbacks, not a goroutine per call parked on Done; they must
// not call into the transaction (sipgo holds it), hence the goroutine.
// They reach the call through a reference the returned release drops
// once the call is over: sipgo keeps an answered call's transaction, and
// its callbacks, 32 s (Timer L on UDP), and the call need not stay in
// memory that long.
func (c *call) watchATx() (release func()) {
	var ref atomic.Pointer[call]
	ref.Store(c)
	unanswered := func() {
		c := ref.Load()
		if c == nil {
			return // over
		}
		c.mu.Lock()
		answered := c.answered
		c.mu.Unlock()
		if !answered {
			c.closeWith(endedBy(hangupCaller, 487, reasonTerminated))
		}
	}
	c.aTx.OnCancel(func(*sip.Request) { go unanswered() })
	if !c.aTx.OnTerminate(func(string, error) {
		if ref.Load() != nil {
			go unanswered()
		}
	}) {
		go unanswered() // terminated already
	}
	return func() { ref.Store(nil) }
}

// dialTargets tries the B-leg's targets, in route order; it returns 200
// once the call is answered, else the final status for the A-leg.
func (c *call) dialTargets(offer []byte, targets []route.Target[dest]) (int, string) {
	status, reason := 503, "Service Unavailable"
	if len(targets) == 0 {
		return 480, "Temporarily Unavailable"
	}
	toCarrier := c.p.customerIsA()
	for i, t := range targets {
		if c.ctx.Err() != nil {
			return 487, "Request Terminated"
		}
		gw := gatewayLabel(t.Value)
		sent := time.Now()
		st, rs, err := c.dialFrom(t.Value, offer)
		if err != nil && errors.Is(err, ErrTargetRefused) {
			// a tenant's target at an address the edge does not call
			// (tenantDialCheck): nothing was sent, so no attempt is
			// counted; the status stays what the targets before it said
			c.log.Warn().Stringer("target", t.Value).Err(err).Msg("target not dialled")
			continue
		}
		if c.ctx.Err() == nil { // a caller's CANCEL is not the gateway's failure
			c.s.metrics.targetTried(toCarrier, gw, st, time.Since(sent))
		}
		if err == nil && st >= 300 && st < 400 && !c.p.customerIsA() {
			st, rs, err = c.followRedirect(t.Value, offer, c.log.With().Stringer("target", t.Value).Logger())
		}
		if err == nil && st == 200 {
			return 200, "OK"
		}
		if i < len(targets)-1 && c.ctx.Err() == nil && (err != nil || route.Failover(st)) {
			c.s.metrics.failedOver(c.p.dir, gw)
		}
		if err != nil && errors.Is(err, ErrTargetRefused) { // the redirect's target (followRedirect)
			c.log.Warn().Stringer("target", t.Value).Err(err).Msg("redirect target not dialled")
			continue
		}
		if err != nil {
			c.log.Warn().Stringer("target", t.Value).Err(err).Msg("attempt failed")
			if c.ctx.Err() != nil {
				return 487, "Request Terminated"
			}
			status, reason = 408, "Request Timeout"
			continue // no response: a failover
		}
		c.log.Info().Stringer("target", t.Value).Int("status", st).Msg("target refused")
		status, reason = st, rs
		if !route.Failover(st) {
			return st, rs
		}
	}
	return status, reason
}

// dial places the B-leg toward one target. err is set when the target
// gave no final answer (silence past 4 s, transport error).
func (c *call) dial(target dest, offer []byte) (int, string, error) {
	req, ua := c.s.outboundInvite(c, target, c.s.peerOfDest(c.ctx, target))
	again := func() (int, string, error) { return c.dial(target, offer) }
	return c.dialRequest(req, ua, offer, again)
}

// dialRequest sends the B-leg INVITE req (no body yet) with offer through
// ua and waits for its answer, as dial says. again places the INVITE
// anew after a 422 whose Min-SE the session timers take (nil: no retry).
func (c *call) dialRequest(req *sip.Request, ua *sipgo.DialogUA, offer []byte, again func() (int, string, error)) (int, string, error) {
	c.drShape(req) // a disaster-recovery <Dial>'s caller ID and number
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	bID := req.CallID().Value()

	actx, acancel := context.WithCancelCause(c.ctx)
	defer acancel(nil)
	b, err := ua.WriteInvite(actx, req)
	if err != nil {
		return 0, "", err
	}
	c.sip("B", "out", "INVITE %s", req.Recipient.String())
	c.mu.Lock()
	c.b, c.bCallID = b, bID
	c.mu.Unlock()
	c.s.addLeg(bID, c)

	heard := make(chan struct{})
	var heardOnce sync.Once
	timer := time.AfterFunc(noResponseTimeout, func() {
		select {
		case <-heard:
		default:
			acancel(sipgo.WaitAnswerForceCancelErr)
		}
	})
	defer timer.Stop()
	if ring := c.drRing(); ring > 0 { // <Dial timeout>: CANCEL after it
		rt := time.AfterFunc(ring, func() { acancel(errDialTimeout) })
		defer rt.Stop()
	}
	err = b.WaitAnswer(actx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		heardOnce.Do(func() { close(heard) })
		c.sip("B", "in", "%d %s", res.StatusCode, res.Reason)
		if res.StatusCode > 100 && res.StatusCode < 200 {
			c.provisional(res)
		}
		return nil
	}})
	var de *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &de):
		c.sip("B", "in", "%d %s", de.Res.StatusCode, de.Res.Reason)
		c.s.removeLeg(bID, c)
		if de.Res.StatusCode == 422 && again != nil && c.st.tooSmall(de.Res) {
			return again() // once, with the callee's Min-SE (RFC 4028 §7.3)
		}
		c.noteRedirect(de.Res)
		c.noteEdgeRefused(de.Res)
		return de.Res.StatusCode, de.Res.Reason, nil
	case err != nil:
		c.s.removeLeg(bID, c)
		return 0, "", err
	}
	return c.answered200(b)
}

// provisional relays a B-leg 18x to the A-leg: with SDP it is early media
// (the relay answered, 183 with the relay's SDP), without it a 180.
func (c *call) provisional(res *sip.Response) {
	if c.parentSid != "" {
		return // a transfer's target rings: the transferee's call is long answered
	}
	if len(res.Body()) == 0 {
		c.mu.Lock()
		early := c.early
		c.mu.Unlock()
		if !early { // a 180 after early media would not stop it; say nothing
			_ = c.a.Respond(180, "Ringing", nil)
			c.sip("A", "out", "180 Ringing")
		}
		return
	}
	toTag, _ := res.To().Params.Get("tag")
	sdp, err := c.s.mediaAnswer(c.ctx, c, toTag, msgSource(res), res.Body())
	if err != nil {
		c.log.Warn().Err(err).Msg("relay refused early media")
		_ = c.a.Respond(180, "Ringing", nil)
		return
	}
	c.mu.Lock()
	c.early, c.bTag, c.sdpToA = true, toTag, sdp
	c.mu.Unlock()
	_ = c.a.Respond(183, "Session Progress", sdp, sip.NewHeader("Content-Type", "application/sdp"))
	c.sip("A", "out", "183 Session Progress")
	if c.p.trunk.RecordingMode == "record-from-ringing" || c.p.trunk.RecordingMode == "record-from-ringing-dual" {
		c.s.startRecording(c.ctx, c)
	}
}

// answered200 completes the call after the B-leg's 200: relay answer, ACK
// to the B-leg, 200 with the relay's SDP to the A-leg.
func (c *call) answered200(b *sipgo.DialogClientSession) (int, string, error) {
	res := b.InviteResponse
	toTag, _ := res.To().Params.Get("tag")
	if c.p.trunk.Secure && !c.p.customerIsA() && !sdpEncrypted(res.Body()) {
		// The customer of a Secure trunk answered without SRTP.
		c.log.Warn().Msg("customer answered a Secure trunk's call without SRTP")
		_ = b.Ack(c.ctx)
		_ = b.Bye(c.ctx)
		return 488, "Not Acceptable Here", nil
	}
	if c.drBridging() { // a disaster-recovery <Dial> after <Play> answered the A-leg
		return c.drBridge(b)
	}
	sdp, err := c.s.mediaAnswer(c.ctx, c, toTag, msgSource(res), res.Body())
	if err != nil {
		c.log.Error().Err(err).Msg("relay answer failed")
		_ = b.Ack(c.ctx)
		_ = b.Bye(c.ctx)
		status, reason, hdrs := relayRefusal(err, false)
		c.mu.Lock()
		c.finalHdrs = hdrs
		c.mu.Unlock()
		return status, reason, nil
	}
	if err := b.Ack(c.ctx); err != nil {
		c.log.Warn().Err(err).Msg("ACK to B-leg failed")
	}
	c.sip("B", "out", "ACK")
	c.mu.Lock()
	c.answered = true
	c.answer = time.Now()
	c.bTag, c.sdpToA = toTag, sdp
	c.mu.Unlock()
	if c.p.trunk.RecordingMode == "record-from-answer" || c.p.trunk.RecordingMode == "record-from-answer-dual" {
		c.s.startRecording(c.ctx, c)
	}
	if c.parentSid != "" {
		return c.bridgeTransferee(sdp)
	}
	if err := c.respondAnswer(res, sdp); err != nil {
		// The A-leg went away (CANCEL crossed the 200) or never ACKed.
		c.log.Warn().Err(err).Msg("200 to A-leg failed")
		c.closeWith(endedBy(hangupCaller, 487, reasonTerminated))
		return 200, "OK", nil
	}
	c.sip("A", "out", "200 OK")
	c.s.writeLive(c)
	c.log.Info().Msg("call answered")
	c.s.metrics.callAnswered(c.p.dir, c.p.trunk.Sid, time.Since(c.start))
	return 200, "OK", nil
}

// releaseSlot gives the call's concurrency slot back to its trunk.
func (c *call) releaseSlot() {
	if c.p.conc {
		c.s.conc.Release(c.p.trunk.Sid)
	}
}

// closeWith ends the call once, whichever way: a final status to the
// A-leg if it was never answered, BYE to the legs still up, relay delete,
// limits released, CDR written.

func (c *call) closeWith(e Ending) {
	c.once.Do(func() {
		// The call ended now: a leg slow to answer its BYE must not
		// lengthen the CDR's duration (billing) by up to byeTimeout.
		end := time.Now()
		c.mu.Lock()
		answered, b, bID, hdrs, transferred := c.answered, c.b, c.bCallID, c.finalHdrs, c.transferred
		c.mu.Unlock()
		c.cancel()
		ctx, cancel := c.s.hangupWithin()
		defer cancel()
		released := false
		c.sip("-", "-", "end: %s", e.hangupCause())
		if answered {
			var wg sync.WaitGroup
			if e.byeA(transferred) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := c.a.Bye(ctx); err != nil {
						c.log.Debug().Err(err).Msg("BYE to A-leg")
					}
				}()
			}
			if e.byeB() && b != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := b.Bye(ctx); err != nil {
						c.log.Debug().Err(err).Msg("BYE to B-leg")
					}
				}()
			}
			wg.Wait()
		} else if e.respondsA() {
			// The trunk's call slot is free before the caller hears the
			// call is over: a retry right after the answer must not find
			// it taken.
			released = true
			c.releaseSlot()
			// The final response must be sent before the INVITE's handler
			// returns (run waits on c.done): sipgo terminates a transaction
			// that has no final response yet at once, and a response sent
			// after that is lost. Bounded, should the transaction be stuck.
			sent := make(chan struct{})
			go func() { defer close(sent); _ = c.a.Respond(int(e.Status), string(e.Reason), nil, hdrs...) }()
			select {
			case <-sent:
			case <-time.After(finalResponseWait):
			}
		}
		dctx, dcancel := c.s.within(relayDeleteTimeout)
		del := c.s.mediaDelete(dctx, c) // its own time: BYEs that timed out must not cost the CDR its quality
		dcancel()
		if !released {
			c.releaseSlot()
		}
		c.s.removeCall(c)
		if bID != "" {
			c.s.removeLeg(bID, c)
		}
		finalStatus := e.finalStatus(answered)
		c.s.metrics.callEnded(c.p.dir, c.p.trunk.Sid, finalStatus, c.talkTime(end))
		c.s.metrics.quality(c.p.trunk.Sid, del.quality, c.codec())
		c.log.Info().Int("status", finalStatus).Str("reason", string(e.Reason)).Str("hangup_by", string(e.By)).Msg("call ended")
		c.s.writeCDR(c, finalStatus, e, end, del)
		c.st.stopWatch()
		close(c.done)
		c.s.untrack()
	})
}
