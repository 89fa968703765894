package signalling

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/signalling/route"
)

// Who ended a call, for the CDR.
const (
	hangupCaller = "caller"
	hangupCallee = "callee"
	hangupSystem = "system"
)

// noResponseTimeout is how long a carrier gateway may stay silent before
// the next one is tried (REQUIREMENTS §3.3).
const noResponseTimeout = 4 * time.Second

// call is one termination call: the customer's dialog (A-leg), the
// carrier's (B-leg), the relay session between them, and its own context.
// Every ending goes through closeWith.
type call struct {
	s   *Server
	id  string // A-leg Call-ID
	log zerolog.Logger
	ad  admitted

	ctx    context.Context
	cancel context.CancelFunc

	a       *sipgo.DialogServerSession
	aTx     sip.ServerTransaction
	fromTag string // A-leg From tag: the relay session's key with id

	mu       sync.Mutex
	b        *sipgo.DialogClientSession
	bCallID  string
	answered bool

	start, answer time.Time
	once          sync.Once
	done          chan struct{}
}

func (s *Server) newCall(req *sip.Request, tx sip.ServerTransaction, ad admitted, log zerolog.Logger) (*call, error) {
	a, err := s.dialogUA.ReadInvite(req, tx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &call{s: s, id: req.CallID().Value(), log: log.With().Str("trunk", ad.tc.Trunk.Sid).Logger(), ad: ad,
		ctx: ctx, cancel: cancel, a: a, aTx: tx, start: time.Now(), done: make(chan struct{})}
	if tag, ok := req.From().Params.Get("tag"); ok {
		c.fromTag = tag
	}
	s.addCall(c)
	return c, nil
}

// run sets the call up and then waits for its end; it is the INVITE
// handler's goroutine.
func (c *call) run() {
	_ = c.a.Respond(100, "Trying", nil)
	// A CANCEL from the customer ends the call before the answer. sipgo
	// answers it (200, then 487) itself; OnCancel tells us at once, while
	// the transaction's end comes only after Timer I (5 s on UDP) and is
	// the fallback for any other way the A-leg transaction dies.
	unanswered := func() {
		c.mu.Lock()
		answered := c.answered
		c.mu.Unlock()
		if !answered {
			c.closeWith(487, "Request Terminated", hangupCaller)
		}
	}
	c.aTx.OnCancel(func(*sip.Request) { go unanswered() })
	go func() {
		select {
		case <-c.aTx.Done():
			unanswered()
		case <-c.done:
		}
	}()
	c.log.Info().Str("from", c.ad.callerID).Str("to", c.ad.to).Msg("termination call admitted")
	offer, err := c.s.mediaOffer(c.ctx, c)
	if err != nil {
		c.log.Error().Err(err).Msg("relay offer failed")
		c.closeWith(503, "Media Relay Unavailable", hangupSystem)
		<-c.done
		return
	}
	status, reason := c.dialCarriers(offer)
	if status != 200 {
		c.closeWith(status, reason, hangupCallee)
	}
	<-c.done
}

// dialCarriers tries the carrier gateways in route order; it returns 200
// once the call is answered, else the final status for the customer.
func (c *call) dialCarriers(offer []byte) (int, string) {
	status, reason := 503, "Service Unavailable"
	for _, t := range c.s.orderCarriers() {
		if c.ctx.Err() != nil {
			return 487, "Request Terminated"
		}
		st, rs, err := c.dial(t.Value, offer)
		log := c.log.With().Str("carrier", t.Value.String()).Logger()
		if err == nil && st == 200 {
			return 200, "OK"
		}
		if err != nil {
			log.Warn().Err(err).Msg("carrier attempt failed")
			if c.ctx.Err() != nil {
				return 487, "Request Terminated"
			}
			continue // no response: a failover
		}
		log.Info().Int("status", st).Msg("carrier refused")
		status, reason = st, rs
		if !route.Failover(st) {
			return st, rs
		}
	}
	return status, reason
}

// dial places the B-leg toward one carrier gateway. err is set when the
// gateway gave no final answer (silence past 4 s, transport error).
func (c *call) dial(gw sip.Uri, offer []byte) (int, string, error) {
	ruri := sip.Uri{Scheme: "sip", User: c.ad.to, Host: gw.Host, Port: gw.Port, UriParams: gw.UriParams}
	req := sip.NewRequest(sip.INVITE, ruri)
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: c.ad.callerID, Host: c.s.dialogUA.ContactHDR.Address.Host}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(&from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: c.ad.to, Host: gw.Host, Port: gw.Port}})
	bID := sip.GenerateTagN(24)
	cid := sip.CallIDHeader(bID)
	req.AppendHeader(&cid)
	mf := sip.MaxForwardsHeader(c.ad.maxFwd)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)

	actx, acancel := context.WithCancelCause(c.ctx)
	defer acancel(nil)
	b, err := c.s.dialogUA.WriteInvite(actx, req)
	if err != nil {
		return 0, "", err
	}
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
	err = b.WaitAnswer(actx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		heardOnce.Do(func() { close(heard) })
		if res.StatusCode == 180 || res.StatusCode == 183 {
			_ = c.a.Respond(180, "Ringing", nil) // early media comes in a later slice
		}
		return nil
	}})
	var de *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &de):
		c.s.removeLeg(bID, c)
		return de.Res.StatusCode, de.Res.Reason, nil
	case err != nil:
		c.s.removeLeg(bID, c)
		return 0, "", err
	}
	return c.answered200(b)
}

// answered200 completes the call after the carrier's 200: relay answer,
// ACK to the carrier, 200 with the relay's SDP to the customer.
func (c *call) answered200(b *sipgo.DialogClientSession) (int, string, error) {
	res := b.InviteResponse
	toTag, _ := res.To().Params.Get("tag")
	sdp, err := c.s.mediaAnswer(c.ctx, c, toTag, res.Body())
	if err != nil {
		c.log.Error().Err(err).Msg("relay answer failed")
		_ = b.Ack(c.ctx)
		_ = b.Bye(c.ctx)
		return 503, "Media Relay Unavailable", nil
	}
	if err := b.Ack(c.ctx); err != nil {
		c.log.Warn().Err(err).Msg("ACK to carrier failed")
	}
	c.mu.Lock()
	c.answered = true
	c.answer = time.Now()
	c.mu.Unlock()
	if err := c.a.RespondSDP(sdp); err != nil {
		// The customer went away (CANCEL crossed the 200).
		c.log.Warn().Err(err).Msg("200 to customer failed")
		c.closeWith(487, "Request Terminated", hangupCaller)
		return 200, "OK", nil
	}
	c.log.Info().Msg("call answered")
	return 200, "OK", nil
}

// closeWith ends the call once, whichever way: a final status to the
// customer if it was never answered, BYE to the legs still up, relay
// delete, limits released, CDR written.
func (c *call) closeWith(status int, reason, by string) {
	c.once.Do(func() {
		c.mu.Lock()
		answered, b, bID := c.answered, c.b, c.bCallID
		c.mu.Unlock()
		c.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if answered {
			if by != hangupCaller {
				if err := c.a.Bye(ctx); err != nil {
					c.log.Debug().Err(err).Msg("BYE to customer")
				}
			}
			if by != hangupCallee && b != nil {
				if err := b.Bye(ctx); err != nil {
					c.log.Debug().Err(err).Msg("BYE to carrier")
				}
			}
		} else if status > 0 {
			go func() { _ = c.a.Respond(status, reason, nil) }()
		}
		quality := c.s.mediaDelete(ctx, c)
		c.s.conc.Release(c.ad.tc.Trunk.Sid)
		c.s.removeCall(c)
		if bID != "" {
			c.s.removeLeg(bID, c)
		}
		end := time.Now()
		finalStatus := status
		if answered {
			finalStatus = 200
		}
		c.log.Info().Int("status", finalStatus).Str("reason", reason).Str("hangup_by", by).Msg("call ended")
		c.s.writeCDR(ctx, c, finalStatus, reason, by, end, quality)
		close(c.done)
	})
}
