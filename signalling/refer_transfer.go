package signalling

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/route"
)

// transferRingTimeout bounds a transfer's call to its target, from the
// INVITE to the answer: a transferee is not left waiting forever.
const transferRingTimeout = 60 * time.Second

// transfer carries out an accepted REFER from the B-leg of c (the
// transferor): a new call from the transferee (c's A-leg) to the target,
// with its own relay session; c itself changes nothing until the target
// has answered and the transferee has taken the new media address
// (re-INVITE), then ends with BYE to the transferor only. A failure
// leaves c as it was. The caller holds c.reinvite.
func (c *call) transfer(tt transferTarget) {
	parent := c.callSid()
	c.mu.Lock()
	b := c.b
	c.mu.Unlock()
	defer c.transferDone()
	log := c.log.With().Str("refer_to", tt.refer).Logger()
	log.Info().Msg("transfer accepted")
	c.notifyRefer(b, 100, "Trying", false)

	p, targets, status, reason := c.transferPlan(tt)
	if status != 0 {
		log.Info().Int("status", status).Str("reason", reason).Msg("transfer refused by termination rules")
		c.s.metrics.transfers.WithLabelValues(c.p.trunk.Sid, transferFailed).Inc()
		c.notifyRefer(b, status, reason, true)
		return
	}
	t := c.newTransferCall(p, parent)
	log.Info().Str("transfer_call", t.id).Msg("transfer call placed")
	stop := make(chan struct{})
	go func() { // the original call ends (either side hangs up): so does the attempt
		select {
		case <-c.done:
			t.cancel()
		case <-stop:
		}
	}()
	ring := time.AfterFunc(transferRingTimeout, t.cancel)
	status, reason = t.placeTransfer(targets, p.bCarrier)
	ring.Stop()
	close(stop)
	if status != 200 {
		log.Info().Int("status", status).Str("reason", reason).Msg("transfer failed: the call stays up")
		t.closeWith(endedBy(hangupTransfer, sipStatus(status), HangupReason(reason)))
		c.s.metrics.transfers.WithLabelValues(c.p.trunk.Sid, transferFailed).Inc()
		c.notifyRefer(b, status, reason, true)
		return
	}
	select {
	case <-c.done:
		// A BYE crossed the transfer: the transferee's call is over (or
		// the transferor's BYE ended it), and the target's with it.
		t.closeWith(endedBy(hangupCaller, 0, reasonBye))
		c.notifyRefer(b, 487, "Request Terminated", true)
		return
	default:
	}
	// The transferee's requests go to the new call from now on, and
	// whatever ends c (our BYE, or the transferor's own after the final
	// NOTIFY) leaves the transferee alone.
	c.mu.Lock()
	c.transferred = true
	c.mu.Unlock()
	c.s.replaceCall(c, t)
	c.notifyRefer(b, 200, "OK", true)
	c.mu.Lock()
	gone := c.transferorGone
	c.mu.Unlock()
	if gone {
		c.closeWith(endedBy(hangupCallee, 0, reasonBye)) // nobody left to BYE on c
	} else {
		c.closeWith(endedBy(hangupTransfer, 0, reasonTransferred))
	}
	c.s.metrics.transfers.WithLabelValues(c.p.trunk.Sid, transferCompleted).Inc()
	log.Info().Str("transfer_call", t.id).Msg("transfer completed")
	t.watchMedia()
}

// transferDone ends a transfer's hold on c: if the transferor hung up
// during a transfer that failed, the transferee is alone and the call
// ends (BYE to the transferee).
func (c *call) transferDone() {
	c.mu.Lock()
	gone, moved := c.transferorGone, c.transferred
	c.transferring = false
	c.mu.Unlock()
	if gone && !moved {
		c.closeWith(endedBy(hangupCallee, 0, reasonTransferFailed))
	}
}

// transferPlan is the new call's plan and targets: a number goes out
// through the carriers under the termination rules (account active,
// trial accounts to verified numbers only, CPS, concurrency), a SIP URI
// straight to its host. Caller ID per TransferCallerId: the transferee's
// number (the PSTN caller; default) or the transferor's (the DID the PBX
// answered). The transferor's DID goes in Diversion either way, as for a
// forwarded call. status is non-zero when the rules refuse.
func (c *call) transferPlan(tt transferTarget) (*plan, []route.Target[dest], int, string) {
	p := &plan{dir: store.DirectionOriginating, trunk: c.p.trunk, from: c.p.from, to: tt.number,
		phoneSid: c.p.phoneSid, diversion: c.p.to, maxFwd: c.p.maxFwd}
	if c.p.trunk.TransferCallerID == "from-transferor" {
		p.from = c.p.to
	}
	if tt.number == "" {
		if c.s.resolvesToCarrier(c.ctx, tt.uri.Host) {
			return nil, nil, 403, "Refer-To host is a carrier"
		}
		p.to = tt.uri.User
		d := destOfURI(tt.uri)
		d.tenantVia = viaTransfer
		return p, []route.Target[dest]{{Priority: 1, Weight: 1, Value: d}}, 0, ""
	}
	// Toward a carrier neither party is the customer: plain RTP, media
	// where the SDP says.
	p.trunk.Secure, p.trunk.SymmetricRTPEnabled = false, false
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	tc, ok, err := c.s.cache.Trunk(ctx, c.p.trunk.DomainName)
	if err != nil || !ok {
		return nil, nil, 500, "Server Internal Error"
	}
	if !tc.Active {
		return nil, nil, 403, "Account suspended"
	}
	limit := c.s.settings().cfg.DefaultConcurrency
	if tc.Trial {
		verified, err := c.s.st.IsVerifiedCallerID(ctx, c.p.trunk.AccountSid, tt.number)
		if err != nil {
			return nil, nil, 500, "Server Internal Error"
		}
		if !verified {
			return nil, nil, 403, "Trial accounts may only call verified numbers"
		}
		if limit <= 0 || limit > trialConcurrency {
			limit = trialConcurrency
		}
	}
	if !c.s.cps.Allow(c.p.trunk.Sid, c.s.settings().cfg.DefaultCPS) {
		return nil, nil, 503, "Trunk CPS limit exceeded"
	}
	if !c.s.conc.Acquire(c.p.trunk.Sid, limit) {
		return nil, nil, 503, "Trunk concurrency limit exceeded"
	}
	p.conc, p.bCarrier = true, true
	return p, c.s.order(c.s.settings().carriers), 0, ""
}

// newTransferCall is the call a transfer places: c's A-leg (the
// transferee, already answered) and a B-leg to be dialled, under an ID
// (relay session) of its own. It counts as live at once, so that a
// drain waits for it; it is filed as c's A-leg's call only on success.
func (c *call) newTransferCall(p *plan, parent string) *call {
	ctx, cancel := context.WithCancel(c.s.lifetime())
	id := newLegID()
	c.mu.Lock()
	sdpA := c.sdpFromA
	c.mu.Unlock()
	if sdpA == nil {
		sdpA = c.a.InviteRequest.Body()
	}
	t := &call{s: c.s, id: id, aCallID: c.aCallID, aSrc: c.aSrc, p: p,
		log: c.s.log.With().Str("call_id", c.aCallID).Str("call", id).Str("parent_call", c.id).
			Str("trunk", p.trunk.Sid).Str("direction", p.dir).Logger(),
		ctx: ctx, cancel: cancel, a: c.a, aUA: c.aUA, aTx: c.aTx, fromTag: c.fromTag,
		sdpFromA: sdpA, parentSid: parent, start: time.Now(), done: make(chan struct{})}
	c.s.track(t)
	c.s.metrics.callStarted(callLabels(t))
	return t
}

// placeTransfer asks the relay for the new session's offer (the
// transferee's SDP in, on the A-leg's interface; out on the target's)
// and dials the targets; answered200 then re-INVITEs the transferee
// (bridgeTransferee). 200 once bridged.
func (t *call) placeTransfer(targets []route.Target[dest], toCarrier bool) (int, string) {
	dirs := t.s.interfaces(t.ctx, t, targets)
	if toCarrier && len(t.s.relayIfaces) == 0 {
		dirs[1] = t.s.cfg.RelayCarrierIface
	}
	t.mu.Lock()
	sdpA := t.sdpFromA
	t.mu.Unlock()
	offer, err := t.s.offerAnswer(t.ctx, t, false, t.fromTag, "", t.aSrc, sdpA, false, dirs)
	if err != nil {
		t.log.Error().Err(err).Msg("relay offer for the transfer failed")
		status, reason, _ := relayRefusal(err, false)
		return status, reason
	}
	t.mu.Lock()
	t.sdpToB = offer
	t.mu.Unlock()
	return t.dialTargets(offer, targets)
}

// bridgeTransferee completes a transfer's call once the target answered
// (answered200 calls it with the relay's SDP for the transferee): the
// transferee's media moves to the new relay session by a re-INVITE. A
// refusal is the transfer's failure (the target then gets BYE).
func (t *call) bridgeTransferee(sdp []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(t.ctx, reinviteTimeout)
	defer cancel()
	res, err := t.sendReinvite(ctx, true, sdp)
	if err != nil {
		t.log.Warn().Err(err).Msg("re-INVITE to the transferee got no answer")
		return 408, "Request Timeout", nil
	}
	if !res.IsSuccess() {
		t.log.Info().Int("status", res.StatusCode).Msg("transferee refused the re-INVITE")
		return 488, "Not Acceptable Here", nil
	}
	t.mu.Lock()
	if len(res.Body()) > 0 {
		t.sdpFromA = res.Body()
	}
	t.mu.Unlock()
	t.log.Info().Msg("transferee bridged to the target")
	t.s.metrics.callAnswered(t.p.dir, t.p.trunk.Sid, time.Since(t.start))
	return 200, "OK", nil
}

// notifyRefer tells the transferor how the transfer goes (RFC 3515 §2.4.4):
// NOTIFY in its dialog with the target's status as a message/sipfrag; the
// final one ends the implicit subscription.
func (c *call) notifyRefer(b *sipgo.DialogClientSession, status int, reason string, final bool) {
	c.mu.Lock()
	gone := c.transferorGone
	c.mu.Unlock()
	if b == nil || gone {
		return
	}
	target, err := c.remoteTarget(false, b)
	if err != nil {
		return
	}
	req := sip.NewRequest(sip.NOTIFY, target)
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	cont := b.UA.ContactHDR
	req.AppendHeader(&cont)
	req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag"))
	req.SetBody([]byte("SIP/2.0 " + strconv.Itoa(status) + " " + sipfragReason(reason) + "\r\n"))
	ctx, cancel := c.s.within(notifyTimeout)
	defer cancel()
	res, err := b.Do(ctx, req)
	switch {
	case err != nil:
		c.log.Debug().Err(err).Msg("NOTIFY to the transferor")
	case !res.IsSuccess():
		c.log.Debug().Int("status", res.StatusCode).Msg("NOTIFY refused by the transferor")
	}
}

// sipfragReason is a reason phrase fit for a sipfrag status line: a
// peer's text without control characters, at most 64 bytes.
func sipfragReason(r string) string {
	r = strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return -1
		}
		return c
	}, r)
	if len(r) > 64 {
		r = r[:64]
	}
	if r == "" {
		r = "Unknown"
	}
	return r
}

// replaceCall files t as the call of old's A-leg (its in-dialog requests
// now go to t) and under t's ID.
func (s *Server) replaceCall(old, t *call) {
	s.mu.Lock()
	s.calls[t.id] = t
	if s.byA[old.aCallID] == old {
		s.byA[old.aCallID] = t
	}
	s.mu.Unlock()
}

// resolvesToCarrier reports whether a SIP target's host name resolves to
// an address in --carrier-source (carrierHost has seen literals and
// gateway names already). A lookup that fails is no verdict: the INVITE
// would fail the same way.
func (s *Server) resolvesToCarrier(ctx context.Context, host string) bool {
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil || len(s.settings().carrierNets) == 0 {
		return false
	}
	for _, a := range s.resolveHost(ctx, host) {
		if s.inCarrierNets(a) {
			return true
		}
	}
	return false
}
