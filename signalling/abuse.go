package signalling

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/signalling/auth"
	"github.com/xtrunk/xtrunk/signalling/limit"
)

// The abuse guard stands between sipgo and every handler (inside guard,
// which answers malformed requests and survives panics). In order:
//
//   - a request within a call in progress (To tag, known Call-ID) goes
//     through untouched: BYE, ACK and re-INVITE work under any ban and
//     while draining;
//   - a carrier source (--carrier-source) is trusted; its OPTIONS are
//     answered 200 whatever the Request-URI, since carriers ping us to
//     route around a dead edge;
//   - a source in any trunk's IP ACL is not banned, but like everyone may
//     have one OPTIONS answered per --options-interval (the rest get
//     nothing: Twilio tells customers to ping at most every 10-15 s "to
//     avoid being blocked");
//   - anyone else is checked by limit.Guard: a scanner's User-Agent, a
//     source under a ban, more than --guard-max-requests per
//     --guard-request-window (which bans it for --guard-ban), too frequent
//     OPTIONS — all get silence, the cheapest answer and the one that
//     tells a scanner nothing;
//   - while draining, a new INVITE gets 503 with Retry-After and OPTIONS
//     that would be answered get 503, so peers move to another edge.
//
// --guard-max-auth-failures failed digest authentications per
// --guard-auth-window also ban a source (authFailed, called from
// authenticate; an expired nonce is not a failure). Banned UDP sources are
// dropped before sipgo parses them (preParse) and banned TCP/TLS sources
// are refused at accept (guardedListener).

// screened wraps a handler with the abuse guard.
func (s *Server) screened(next sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		s.metrics.request(req.Method)
		if s.screen(req, tx) {
			next(req, tx)
		}
	}
}

// screen decides whether req reaches its handler; when not, it has
// answered or chosen silence.
func (s *Server) screen(req *sip.Request, tx sip.ServerTransaction) bool {
	if s.inDialog(req) {
		return true
	}
	src, ok := sourceAddr(req)
	if !ok {
		return false
	}
	carrier := s.fromCarrier(req)
	switch {
	case carrier:
	case s.acls.contains(src), s.trusted.has(src, s.clock()):
		if v, reason := s.abuse.CheckOptions(src, string(req.Method)); v != limit.Accept {
			s.metrics.ignored(reason)
			s.log.Debug().Str("src", src.String()).Str("method", string(req.Method)).Str("reason", reason).Msg("ignored")
			return false
		}
	default:
		ua := ""
		if h := req.GetHeader("User-Agent"); h != nil {
			ua = h.Value()
		}
		v, reason := s.abuse.Check(src, string(req.Method), ua)
		if v != limit.Accept {
			s.metrics.ignored(reason)
			s.log.Debug().Str("src", src.String()).Str("method", string(req.Method)).Str("reason", reason).Msg("ignored")
			if reason == limit.ReasonFlood {
				s.metrics.banned(reason)
				s.log.Warn().Str("src", src.String()).Str("reason", reason).Dur("for", s.cfg.GuardBan).Msg("source banned")
			}
			return false
		}
	}
	switch req.Method {
	case sip.INVITE:
		if s.draining.Load() && !hasToTag(req) {
			s.refuseDraining(req, tx)
			return false
		}
	case sip.OPTIONS:
		draining := s.draining.Load()
		if carrier && !draining {
			s.answerOptions(req, tx)
			return false
		}
		if draining && (carrier || s.isTrunkDomain(req)) {
			respond(tx, req, 503, "Service Unavailable", []sip.Header{s.retryAfter()})
			return false
		}
	}
	return true
}

// refuseDraining answers a new call while draining.
func (s *Server) refuseDraining(req *sip.Request, tx sip.ServerTransaction) {
	s.metrics.refused(503, reasonDraining)
	respond(tx, req, 503, "Service Unavailable", []sip.Header{s.retryAfter()})
}

// reasonDraining is the refusals metric's reason for calls refused while
// draining.
const reasonDraining = "draining"

// retryAfter asks peers to stay away for as long as the drain may last.
func (s *Server) retryAfter() sip.Header {
	secs := int(s.cfg.DrainTimeout / time.Second)
	return sip.NewHeader("Retry-After", strconv.Itoa(max(secs, 1)))
}

// answerOptions is 200 with what xtrunk speaks.
func (s *Server) answerOptions(req *sip.Request, tx sip.ServerTransaction) {
	respond(tx, req, 200, "OK", []sip.Header{sip.NewHeader("Allow", s.allow), sip.NewHeader("Accept", "application/sdp")})
}

// authFailed counts a failed digest authentication from req's source; an
// expired nonce is not a failure. Enough of them ban the source, unless
// it is exempt.
func (s *Server) authFailed(req *sip.Request, err error) {
	if err == nil || errors.Is(err, auth.ErrStale) {
		return
	}
	src, ok := sourceAddr(req)
	if !ok || s.fromCarrier(req) || s.acls.contains(src) {
		return
	}
	if s.abuse.AuthFailed(src) {
		s.metrics.banned(limit.ReasonAuth)
		s.log.Warn().Str("src", src.String()).Str("reason", limit.ReasonAuth).Dur("for", s.cfg.GuardBan).Msg("source banned")
	}
}

// inDialog reports whether req belongs to a call in progress.
func (s *Server) inDialog(req *sip.Request) bool {
	if !hasToTag(req) {
		return false
	}
	id := req.CallID()
	return id != nil && s.callByID(id.Value()) != nil
}

func hasToTag(req *sip.Request) bool {
	to := req.To()
	return to != nil && to.Params != nil && to.Params.Has("tag")
}

func (s *Server) isTrunkDomain(req *sip.Request) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, ok, err := s.cache.Trunk(ctx, req.Recipient.Host)
	return err == nil && ok
}

// sourceAddr is the request's source address (IPv4 unmapped).
func sourceAddr(req *sip.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// preParse drops a banned source's datagrams before sipgo parses them,
// except responses (to our own requests) and requests whose Call-ID is a
// call in progress. TCP and TLS are screened at accept instead: dropping
// bytes from a stream would desynchronise it.
func (s *Server) preParse(p sip.TransportReadProps, data []byte) ([]byte, error) {
	if p.Transport != "UDP" {
		return data, nil
	}
	ua, ok := p.RemoteAddr.(*net.UDPAddr)
	if !ok || !s.abuse.IsBanned(ua.AddrPort().Addr()) {
		return data, nil
	}
	if bytes.HasPrefix(data, []byte("SIP/2.0 ")) {
		return data, nil
	}
	if id := rawCallID(data); id != "" && s.callByID(id) != nil {
		return data, nil
	}
	s.metrics.ignored(limit.ReasonBanned)
	return nil, nil
}

// rawCallID finds the Call-ID (or its compact form i) in a message's
// header without parsing it; "" if there is none.
func rawCallID(msg []byte) string {
	for len(msg) > 0 {
		line := msg
		i := bytes.IndexByte(msg, '\n')
		if i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return "" // end of the header
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimRight(name, " \t")
		if bytes.EqualFold(name, []byte("Call-ID")) || bytes.EqualFold(name, []byte("i")) {
			value = bytes.TrimSpace(value)
			if bytes.IndexByte(value, '\r') >= 0 {
				return "" // not a Call-ID anyone has
			}
			return string(value)
		}
	}
	return ""
}

// trustTTL is how long a source that passed digest authentication is
// treated like an IP-ACL customer by the guard.
const trustTTL = 10 * time.Minute

// authenticated marks req's source as a customer: a PBX on digest alone
// that places more than a few calls a second is not a flood (the trunk's
// CPS limit still applies to it).
func (s *Server) authenticated(req *sip.Request) {
	if src, ok := sourceAddr(req); ok {
		s.trusted.add(src, s.clock().Add(trustTTL))
	}
}

// trustedSet holds the sources that authenticated recently, until when.
type trustedSet struct {
	mu    sync.Mutex
	until map[netip.Addr]time.Time
}

// maxTrusted bounds the set; when full, expired entries go first and a
// new source waits for room.
const maxTrusted = 65536

func (t *trustedSet) add(a netip.Addr, until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.until == nil {
		t.until = map[netip.Addr]time.Time{}
	}
	if _, ok := t.until[a]; !ok && len(t.until) >= maxTrusted {
		now := until.Add(-trustTTL)
		for k, u := range t.until {
			if u.Before(now) {
				delete(t.until, k)
			}
		}
		if len(t.until) >= maxTrusted {
			return
		}
	}
	t.until[a] = until
}

func (t *trustedSet) has(a netip.Addr, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	u, ok := t.until[a]
	return ok && now.Before(u)
}
