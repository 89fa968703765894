package signalling

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// guard wraps every request handler. sipgo hands a handler any request
// that has a Via and a CSeq, so a datagram without Call-ID, From or To
// would reach code that takes them for granted: such a request gets 400
// here, and so does one whose CSeq names another method or that has more
// than one Content-Length (RFC 4475 mismatch01, mcl01); an ACK, which has
// no response, is dropped. A panic while handling one request is logged
// and answered 500 instead of ending the process and every call in it
// (REQUIREMENTS §6: bad input never crashes anything).
func (s *Server) guard(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error().Str("panic", fmt.Sprint(r)).Str("request", req.StartLine()).
					Str("src", req.Source()).Bytes("stack", debug.Stack()).Msg("request handler panicked")
				if !req.IsAck() {
					func() {
						defer func() { _ = recover() }()
						respond(tx, req, 500, "Server Internal Error", nil)
					}()
				}
			}
		}()
		if req.CallID() == nil || req.From() == nil || req.To() == nil || req.CSeq() == nil ||
			!strings.EqualFold(string(req.CSeq().MethodName), string(req.Method)) ||
			len(req.GetHeaders("Content-Length")) > 1 {
			if !req.IsAck() {
				respond(tx, req, 400, "Bad Request", nil)
			}
			return
		}
		h(req, tx)
	}
}

// onOther answers a method no handler takes: 405 with Allow on a trunk's
// domain; like every request for an unknown domain, others get nothing
// (sipgo's default would answer 405 to anyone).
func (s *Server) onOther(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() {
		return
	}
	ctx, cancel := s.within(cacheLookupTimeout)
	defer cancel()
	if _, ok, err := s.cache.Trunk(ctx, req.Recipient.Host); err != nil || !ok {
		return
	}
	respond(tx, req, 405, "Method Not Allowed", []sip.Header{sip.NewHeader("Allow", s.allow)})
}
