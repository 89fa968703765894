package signalling

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/auth"
	"github.com/xtrunk/xtrunk/signalling/sipmsg"
)

// silent is the refusal that sends nothing (unknown domain).
var silent = &refusal{}

// trialConcurrency is a trial account's concurrent-call limit per trunk
// (REQUIREMENTS §2.7).
const trialConcurrency = 4

// admit runs the termination checks of REQUIREMENTS §2 in order. The
// concurrency slot it takes on success is the call's to release. A
// refusal once the trunk is known comes with a plan holding only the
// trunk, for the refusal's metric label.
func (s *Server) admit(ctx context.Context, req *sip.Request, log zerolog.Logger) (p *plan, ref *refusal, hdrs []sip.Header) {
	var known *store.Trunk
	defer func() {
		if ref != nil && known != nil {
			p = &plan{trunk: *known}
		}
	}()
	tc, ok, err := s.cache.Trunk(ctx, req.Recipient.Host)
	if err != nil {
		log.Error().Err(err).Msg("trunk lookup failed")
		return nil, &refusal{500, "Server Internal Error"}, nil
	}
	if !ok {
		return nil, silent, nil
	}
	t := tc.Trunk
	known = &t
	if !t.HasIPACL && !t.HasCredentialList {
		// A trunk nobody can authenticate to takes no calls: open
		// termination would be toll fraud waiting to happen.
		return nil, &refusal{403, "Trunk has no IP ACL or credential list"}, nil
	}
	if t.HasIPACL {
		src, err := netip.ParseAddrPort(req.Source())
		if err != nil || !tc.Allowed(src.Addr()) {
			return nil, &refusal{403, "Forbidden"}, nil
		}
	}
	if t.HasCredentialList {
		if ref, hdr := s.authenticate(ctx, req, tc); ref != nil {
			return nil, ref, hdr
		}
	}
	// After authentication: an outsider learns nothing of the account.
	if !tc.Active {
		return nil, &refusal{403, "Account suspended"}, nil
	}
	if ref, hdr := unsupported(req); ref != nil {
		return nil, ref, hdr
	}
	if t.Secure {
		if !strings.EqualFold(req.Transport(), "TLS") {
			return nil, &refusal{403, "Secure trunk requires TLS"}, nil
		}
		if !sdpEncrypted(req.Body()) {
			return nil, &refusal{488, "Secure trunk requires SRTP"}, nil
		}
	}
	if !sipmsg.IsE164(req.Recipient.User) {
		return nil, &refusal{400, "Bad Request"}, nil
	}
	number, _, ok := sipmsg.CallerID(req)
	if !ok {
		return nil, &refusal{403, "Caller ID is not a number"}, nil
	}
	allowed, err := tc.CallerAllowed(ctx, s.st, number)
	if err != nil {
		log.Error().Err(err).Msg("caller ID lookup failed")
		return nil, &refusal{500, "Server Internal Error"}, nil
	}
	if !allowed {
		return nil, &refusal{403, "Caller ID is not a DID or verified caller ID of the account"}, nil
	}
	lv := s.settings()
	concLimit := lv.cfg.DefaultConcurrency
	if tc.Trial {
		verified, err := s.st.IsVerifiedCallerID(ctx, t.AccountSid, req.Recipient.User)
		if err != nil {
			log.Error().Err(err).Msg("verified number lookup failed")
			return nil, &refusal{500, "Server Internal Error"}, nil
		}
		if !verified {
			return nil, &refusal{403, "Trial accounts may only call verified numbers"}, nil
		}
		if concLimit <= 0 || concLimit > trialConcurrency {
			concLimit = trialConcurrency
		}
	}
	mf, err := sipmsg.CheckMaxForwards(req)
	if err != nil {
		return nil, &refusal{483, "Too Many Hops"}, nil
	}
	if !s.cps.Allow(t.Sid, lv.cfg.DefaultCPS) {
		return nil, &refusal{503, "Trunk CPS limit exceeded"}, nil
	}
	if !s.conc.Acquire(t.Sid, concLimit) {
		return nil, &refusal{503, "Trunk concurrency limit exceeded"}, nil
	}
	return &plan{dir: store.DirectionTerminating, trunk: t, from: number, to: req.Recipient.User,
		maxFwd: mf, conc: true, targets: s.healthy(lv.carriers)}, nil, nil
}

// unsupported refuses an INVITE that requires an extension xtrunk does
// not do (100rel and anything else but timer, RFC 4028) with 420 and
// Unsupported.
func unsupported(req *sip.Request) (*refusal, []sip.Header) {
	var bad []string
	for _, h := range req.GetHeaders("Require") {
		for _, opt := range strings.Split(h.Value(), ",") {
			if opt = strings.TrimSpace(opt); opt != "" && !strings.EqualFold(opt, optionTimer) {
				bad = append(bad, opt)
			}
		}
	}
	if len(bad) == 0 {
		return nil, nil
	}
	return &refusal{420, "Bad Extension"}, []sip.Header{sip.NewHeader("Unsupported", strings.Join(bad, ", "))}
}

// authenticate checks Proxy-Authorization; without valid credentials it
// returns a 407 with a fresh challenge (stale=true for an expired nonce),
// or 403 for credentials whose uri= is not the Request-URI.
func (s *Server) authenticate(ctx context.Context, req *sip.Request, tc *TrunkConfig) (*refusal, []sip.Header) {
	h := req.GetHeader("Proxy-Authorization")
	stale := false
	if h != nil {
		lookup := func(user string) (auth.Secret, bool) { return tc.Secret(ctx, s.st, user) }
		_, err := s.verifier.Verify(auth.Request{Method: string(req.Method), URI: req.Recipient.String(), Header: h.Value()}, lookup)
		if err == nil {
			s.authenticated(req, tc)
			return nil, nil
		}
		s.authFailed(req, err)
		if errors.Is(err, auth.ErrMalformed) {
			return &refusal{400, "Bad Request"}, nil
		}
		if errors.Is(err, auth.ErrURIMismatch) {
			// credentials made for another Request-URI: a rewritten
			// request, not a client that needs a new challenge
			return &refusal{403, "Digest URI does not match Request-URI"}, nil
		}
		stale = errors.Is(err, auth.ErrStale)
	}
	ch := sip.NewHeader("Proxy-Authenticate", s.verifier.Challenge(auth.MD5, stale))
	return &refusal{407, "Proxy Authentication Required"}, []sip.Header{ch}
}

// onInvite admits a new call (origination from a carrier source,
// termination otherwise) or hands a re-INVITE to its call.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	callID := req.CallID().Value()
	log := s.log.With().Str("call_id", callID).Logger()
	if to := req.To(); to != nil && to.Params != nil && to.Params.Has("tag") {
		s.onReinvite(req, tx)
		return
	}
	ctx, cancel := s.within(cacheLookupTimeout)
	var p *plan
	var ref *refusal
	var hdrs []sip.Header
	switch {
	case isHandover(req): // from another edge, or claiming to be
		p, ref, hdrs = s.admitHandover(ctx, req, log)
	case s.fromCarrier(req):
		p, ref, hdrs = s.admitOrigination(ctx, req, log)
	default:
		p, ref, hdrs = s.admit(ctx, req, log)
	}
	cancel()
	var st *sessionTimers
	if ref == nil {
		// RFC 4028: 422 below --session-min-se, on an admitted call only
		if st, ref, hdrs = s.sessionTimersOf(req); ref != nil && p.conc {
			s.conc.Release(p.trunk.Sid)
		}
	}
	if ref != nil {
		if ref == silent {
			log.Debug().Str("host", req.Recipient.Host).Msg("unknown domain: ignored")
			return
		}
		log.Info().Int("status", ref.status).Str("reason", ref.reason).Str("src", req.Source()).Msg("call refused")
		trunk := ""
		if p != nil {
			trunk = p.trunk.Sid
		}
		s.metrics.refused(trunk, ref.status, ref.reason)
		respond(tx, req, ref.status, ref.reason, hdrs)
		return
	}
	c, err := s.newCall(req, tx, p, st, log)
	if err != nil {
		if p.conc {
			s.conc.Release(p.trunk.Sid)
		}
		if errors.Is(err, ErrShuttingDown) {
			s.metrics.refused(p.trunk.Sid, 503, reasonDraining)
			respond(tx, req, 503, "Service Unavailable", nil)
			return
		}
		if errors.Is(err, ErrCallIDInUse) {
			// Another dialog's Call-ID (another tenant's, or a merged
			// request, RFC 3261 §8.2.2.2): the live call stays untouched.
			log.Warn().Str("src", req.Source()).Str("trunk", p.trunk.Sid).Msg("INVITE reuses a live call's Call-ID")
			s.metrics.refused(p.trunk.Sid, 482, "Call-ID in use")
			respond(tx, req, 482, "Loop Detected", nil)
			return
		}
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
	ctx, cancel := s.within(cacheLookupTimeout)
	defer cancel()
	if _, ok, err := s.cache.Trunk(ctx, req.Recipient.Host); err != nil || !ok {
		return
	}
	respond(tx, req, 403, "Forbidden", nil)
}

// onOptions answers keep-alive pings to a trunk's domain; like every
// request for an unknown domain, others get nothing.
func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	ctx, cancel := s.within(cacheLookupTimeout)
	defer cancel()
	if _, ok, err := s.cache.Trunk(ctx, req.Recipient.Host); err != nil || !ok {
		return
	}
	if ref, hdr := unsupported(req); ref != nil {
		respond(tx, req, ref.status, ref.reason, hdr) // RFC 4475 bext01
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
