package signalling

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strconv"
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
//   - a source banned for failed authentication gets nothing, whoever it
//     is;
//   - a request to a trunk that exempts its source — the source is in
//     that trunk's IP ACL, or passed digest on that trunk within
//     trustTTL — is not counted toward a flood and is not held by a flood
//     or prefix ban, but like everyone may have one OPTIONS answered per
//     --options-interval (the rest get nothing: Twilio tells customers to
//     ping at most every 10-15 s "to avoid being blocked"). The exemption
//     is per trunk: one tenant's ACL entry exempts nobody on another
//     tenant's trunk;
//   - anyone else is checked by limit.Guard: a scanner's User-Agent, a
//     source or its /24 (/64) under a ban, more than --guard-max-requests
//     per --guard-request-window (which bans it for --guard-ban), too
//     frequent OPTIONS — all get silence, the cheapest answer and the one
//     that tells a scanner nothing;
//   - while draining, a new INVITE gets 503 with Retry-After and OPTIONS
//     that would be answered get 503, so peers move to another edge.
//
// --guard-max-auth-failures failed digest authentications per
// --guard-auth-window ban a source, exempt or not (authFailed, called
// from authenticate; an expired nonce is not a failure). Banned UDP
// sources are dropped before sipgo parses them (preParse) and banned
// TCP/TLS sources are refused at accept (guardedListener), except, for a
// flood or prefix ban, a source that a trunk exempted lately: its
// requests are parsed so that screen can tell which trunk they are for.

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
	carrier := s.fromCarrier(req) || s.screenedEdge(req)
	if !carrier && !s.guardAllows(req, src) {
		return false
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

// guardAllows runs the abuse guard for a request from src that is not a
// carrier's: exempt on the Request-URI's trunk or not.
func (s *Server) guardAllows(req *sip.Request, src netip.Addr) bool {
	method := string(req.Method)
	var v limit.Verdict
	var reason string
	switch {
	case s.abuse.BanOf(src) == limit.BanAuth:
		v, reason = limit.Ignore, limit.ReasonBanned
	case s.exemptOnTrunk(req, src):
		s.exempted.Add(src, s.clock().Add(trustTTL))
		v, reason = s.abuse.CheckExempt(src, method)
	default:
		ua := ""
		if h := req.GetHeader("User-Agent"); h != nil {
			ua = h.Value()
		}
		v, reason = s.abuse.Check(src, method, ua)
	}
	if v == limit.Accept {
		return true
	}
	s.metrics.ignored(reason)
	s.log.Debug().Str("src", src.String()).Str("method", method).Str("reason", reason).Msg("ignored")
	return false
}

// exemptOnTrunk reports whether the trunk of req's Request-URI host
// exempts src from the flood rule: src is in that trunk's IP ACL or
// passed digest on it lately. No trunk (or a store error) exempts nobody.
func (s *Server) exemptOnTrunk(req *sip.Request, src netip.Addr) bool {
	ctx, cancel := s.within(cacheLookupTimeout)
	defer cancel()
	tc, ok, err := s.cache.Trunk(ctx, req.Recipient.Host)
	if err != nil || !ok {
		return false
	}
	if tc.Trunk.HasIPACL && tc.Allowed(src) {
		return true
	}
	return s.trusted.Has(trustKey{src, tc.Trunk.Sid}, s.clock())
}

// dropEarly says whether traffic from addr is dropped before it is
// parsed (UDP) or accepted (TCP/TLS): under an authentication ban, or
// under a flood or prefix ban and not exempted by a trunk lately (for
// those, screen decides per request and trunk).
func (s *Server) dropEarly(addr netip.Addr) bool {
	addr = addr.Unmap()
	switch s.abuse.BanOf(addr) {
	case limit.NotBanned:
		return false
	case limit.BanAuth:
		return true
	}
	return !s.exempted.Has(addr, s.clock())
}

// refuseDraining answers a new call while draining.
func (s *Server) refuseDraining(req *sip.Request, tx sip.ServerTransaction) {
	s.metrics.refused("", 503, reasonDraining)
	hdrs := []sip.Header{s.retryAfter()}
	if isHandover(req) { // the edge that handed it over dials the URI itself
		hdrs = append(hdrs, sip.NewHeader(edgeRefusedHeader, edgeRefusedDraining))
	}
	respond(tx, req, 503, "Service Unavailable", hdrs)
}

// reasonDraining is the refusals metric's reason for calls refused while
// draining.
const reasonDraining = "draining"

// retryAfter asks peers to stay away for as long as the drain may last.
func (s *Server) retryAfter() sip.Header {
	secs := int(s.settings().cfg.DrainTimeout / time.Second)
	return sip.NewHeader("Retry-After", strconv.Itoa(max(secs, 1)))
}

// answerOptions is 200 with what xtrunk speaks.
func (s *Server) answerOptions(req *sip.Request, tx sip.ServerTransaction) {
	respond(tx, req, 200, "OK", []sip.Header{sip.NewHeader("Allow", s.allow), sip.NewHeader("Accept", "application/sdp")})
}

// authFailed counts a failed digest authentication from req's source,
// whoever it is (an IP ACL on some trunk exempts nobody from this); an
// expired nonce is not a failure. Enough of them ban the source.
func (s *Server) authFailed(req *sip.Request, err error) {
	if err == nil || errors.Is(err, auth.ErrStale) {
		return
	}
	if src, ok := sourceAddr(req); ok {
		s.abuse.AuthFailed(src)
	}
}

// onBan is the guard's hook for a banned source: log, count, and pass it
// on (to close the source's TCP/TLS connections, say).
func (s *Server) onBan(a netip.Addr) {
	reason := limit.ReasonFlood
	if s.abuse.BanOf(a) == limit.BanAuth {
		reason = limit.ReasonAuth
	}
	s.metrics.banned(reason)
	s.log.Warn().Str("src", a.String()).Str("reason", reason).Dur("for", s.settings().cfg.GuardBan).Msg("source banned")
	if s.dropEarly(a) {
		// Its open TCP/TLS connections go too: a ban that only stops new
		// ones would leave a connected attacker talking.
		s.closeConnectionsFrom(a)
	}
	if s.banHook != nil {
		s.banHook(a)
	}
}

// onPrefixBan is onBan for a /24 or /64.
func (s *Server) onPrefixBan(p netip.Prefix) {
	s.metrics.banned(limit.ReasonPrefix)
	s.log.Warn().Str("prefix", p.String()).Str("reason", limit.ReasonPrefix).Dur("for", s.settings().cfg.GuardBan).Msg("prefix banned")
	for _, a := range s.conns.sourcesIn(p) {
		if s.dropEarly(a) {
			s.closeConnectionsFrom(a)
		}
	}
	if s.prefixBanHook != nil {
		s.prefixBanHook(p)
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
	ctx, cancel := s.within(cacheLookupTimeout)
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
	if !ok || !s.dropEarly(ua.AddrPort().Addr()) {
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

// trustTTL is how long a source that passed digest authentication on a
// trunk is treated like that trunk's IP-ACL customer by the guard.
const trustTTL = 10 * time.Minute

// maxTrusted bounds the sources trusted after digest, and those a trunk
// exempted lately; full, the least recently refreshed go.
const maxTrusted = 65536

// trustKey is a source trusted on one trunk (by sid).
type trustKey struct {
	addr  netip.Addr
	trunk string
}

// authenticated marks req's source as a customer of tc's trunk: a PBX on
// digest alone that places more than a few calls a second is not a flood
// (the trunk's CPS limit still applies to it). Other trunks do not trust
// it for that.
func (s *Server) authenticated(req *sip.Request, tc *TrunkConfig) {
	if src, ok := sourceAddr(req); ok {
		s.trusted.Add(trustKey{src, tc.Trunk.Sid}, s.clock().Add(trustTTL))
	}
}
