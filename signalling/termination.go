package signalling

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/signalling/auth"
	"github.com/xtrunk/xtrunk/signalling/sipmsg"
)

// silent is the refusal that sends nothing (unknown domain).
var silent = &refusal{}

// admitted is what the termination checks leave for the call.
type admitted struct {
	tc       *TrunkConfig
	callerID string
	to       string
	maxFwd   uint32
}

// admit runs the termination checks of REQUIREMENTS §2 in order. The
// concurrency slot it takes on success is the caller's to release.
func (s *Server) admit(ctx context.Context, req *sip.Request, log zerolog.Logger) (admitted, *refusal, []sip.Header) {
	tc, ok, err := s.cache.Trunk(ctx, req.Recipient.Host)
	if err != nil {
		log.Error().Err(err).Msg("trunk lookup failed")
		return admitted{}, &refusal{500, "Server Internal Error"}, nil
	}
	if !ok {
		return admitted{}, silent, nil
	}
	t := tc.Trunk
	if !t.HasIPACL && !t.HasCredentialList {
		// A trunk nobody can authenticate to takes no calls: open
		// termination would be toll fraud waiting to happen.
		return admitted{}, &refusal{403, "Trunk has no IP ACL or credential list"}, nil
	}
	if t.HasIPACL {
		src, err := netip.ParseAddrPort(req.Source())
		if err != nil || !tc.Allowed(src.Addr()) {
			return admitted{}, &refusal{403, "Forbidden"}, nil
		}
	}
	if t.HasCredentialList {
		if ref, hdr := s.authenticate(ctx, req, tc); ref != nil {
			return admitted{}, ref, hdr
		}
	}
	if !sipmsg.IsE164(req.Recipient.User) {
		return admitted{}, &refusal{400, "Bad Request"}, nil
	}
	number, _, ok := sipmsg.CallerID(req)
	if !ok {
		return admitted{}, &refusal{403, "Caller ID is not a number"}, nil
	}
	allowed, err := tc.CallerAllowed(ctx, s.st, number)
	if err != nil {
		log.Error().Err(err).Msg("caller ID lookup failed")
		return admitted{}, &refusal{500, "Server Internal Error"}, nil
	}
	if !allowed {
		return admitted{}, &refusal{403, "Caller ID is not a DID or verified caller ID of the account"}, nil
	}
	mf, err := sipmsg.CheckMaxForwards(req)
	if err != nil {
		return admitted{}, &refusal{483, "Too Many Hops"}, nil
	}
	if !s.cps.Allow(t.Sid, s.cfg.DefaultCPS) {
		return admitted{}, &refusal{503, "Trunk CPS limit exceeded"}, nil
	}
	if !s.conc.Acquire(t.Sid, s.cfg.DefaultConcurrency) {
		return admitted{}, &refusal{503, "Trunk concurrency limit exceeded"}, nil
	}
	return admitted{tc: tc, callerID: number, to: req.Recipient.User, maxFwd: mf}, nil, nil
}

// authenticate checks Proxy-Authorization; without valid credentials it
// returns a 407 with a fresh challenge (stale=true for an expired nonce).
func (s *Server) authenticate(ctx context.Context, req *sip.Request, tc *TrunkConfig) (*refusal, []sip.Header) {
	h := req.GetHeader("Proxy-Authorization")
	stale := false
	if h != nil {
		lookup := func(user string) (auth.Secret, bool) { return tc.Secret(ctx, s.st, user) }
		_, err := s.verifier.Verify(auth.Request{Method: string(req.Method), Header: h.Value()}, lookup)
		if err == nil {
			return nil, nil
		}
		if errors.Is(err, auth.ErrMalformed) {
			return &refusal{400, "Bad Request"}, nil
		}
		stale = errors.Is(err, auth.ErrStale)
	}
	ch := sip.NewHeader("Proxy-Authenticate", s.verifier.Challenge(auth.MD5, stale))
	return &refusal{407, "Proxy Authentication Required"}, []sip.Header{ch}
}

// onInvite admits a new call or hands a re-INVITE to its call.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	callID := req.CallID().Value()
	log := s.log.With().Str("call_id", callID).Logger()
	if to := req.To(); to != nil && to.Params != nil && to.Params.Has("tag") {
		// In-dialog re-INVITE: not in this slice.
		respond(tx, req, 501, "Not Implemented", nil)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	ad, ref, hdrs := s.admit(ctx, req, log)
	cancel()
	if ref != nil {
		if ref == silent {
			log.Debug().Str("host", req.Recipient.Host).Msg("unknown domain: ignored")
			return
		}
		log.Info().Int("status", ref.status).Str("reason", ref.reason).Str("src", req.Source()).Msg("termination refused")
		respond(tx, req, ref.status, ref.reason, hdrs)
		return
	}
	c, err := s.newCall(req, tx, ad, log)
	if err != nil {
		s.conc.Release(ad.tc.Trunk.Sid)
		// sipgo refuses to make a dialog of an INVITE without a usable
		// Contact: the request's fault.
		log.Info().Err(err).Msg("INVITE not usable as a dialog")
		respond(tx, req, 400, "Bad Request", nil)
		return
	}
	c.run()
}

// onRegister refuses registrations to a trunk; unknown domains get
// nothing.
func (s *Server) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, ok, err := s.cache.Trunk(ctx, req.Recipient.Host); err != nil || !ok {
		return
	}
	respond(tx, req, 403, "Forbidden", nil)
}

// onOptions answers keep-alive pings to a trunk's domain; like every
// request for an unknown domain, others get nothing.
func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, ok, err := s.cache.Trunk(ctx, req.Recipient.Host); err != nil || !ok {
		return
	}
	respond(tx, req, 200, "OK", nil)
}

func respond(tx sip.ServerTransaction, req *sip.Request, status int, reason string, hdrs []sip.Header) {
	res := sip.NewResponseFromRequest(req, status, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}
