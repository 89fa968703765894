package signalling

import (
	"context"
	"time"

	"github.com/emiago/sipgo"

	"github.com/xtrunk/xtrunk/control/ng"
)

// A disaster-recovery <Dial> after <Play> (or anything else that answered
// the carrier's leg): the relay session that <Play> answered against a
// placeholder party is made anew toward the dialled leg (drRun.reoffer),
// and once that leg answers, the carrier's leg is re-INVITEd with the
// relay's new SDP for it, instead of being answered a second time.

// drBridging reports whether the <Dial> leg being placed is to be bridged
// to an A-leg that is answered already.
func (c *call) drBridging() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drLeg != nil && c.drLeg.bridge
}

// drBridge completes a bridged <Dial> leg after its 200 (answered200
// calls it): relay answer, ACK, re-INVITE of the A-leg. A refused
// re-INVITE ends the new leg and is a failure of the dial.
func (c *call) drBridge(b *sipgo.DialogClientSession) (int, string, error) {
	res := b.InviteResponse
	toTag, _ := res.To().Params.Get("tag")
	sdp, err := c.s.mediaAnswer(c.ctx, c, toTag, msgSource(res), res.Body())
	if err != nil {
		c.log.Error().Err(err).Msg("disaster recovery: relay answer for the bridged leg failed")
		_ = b.Ack(c.ctx)
		_ = b.Bye(c.ctx)
		status, reason, _ := relayRefusal(err, false)
		return status, reason, nil
	}
	if err := b.Ack(c.ctx); err != nil {
		c.log.Warn().Err(err).Msg("ACK to B-leg failed")
	}
	c.mu.Lock()
	c.bTag, c.sdpToA = toTag, sdp
	c.mu.Unlock()
	ares, err := c.sendReinvite(c.ctx, true, sdp)
	if err != nil || !ares.IsSuccess() {
		c.log.Warn().Err(err).Msg("disaster recovery: re-INVITE of the carrier's leg failed")
		ctx, cancel := c.s.within(byeTimeout)
		defer cancel()
		_ = b.Bye(ctx)
		return 500, "Server Internal Error", nil
	}
	c.log.Info().Msg("disaster recovery bridged the answered call")
	return 200, "OK", nil
}

// stopMedia ends what <Play> left playing before the call moves on.
func (r *drRun) stopMedia() {
	c := r.c
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	if _, err := c.s.ng.Do(ctx, ng.StopMedia{CallID: c.id, Party: ng.PartySelect{FromTag: c.fromTag}}.Dict()); err != nil {
		c.log.Debug().Err(err).Msg("relay stop media")
	}
}
