package signalling

import (
	"context"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/signalling/route"
)

// dialFrom dials target from the edge its origination URI names (;edge=,
// edges.go): another, alive edge gets the call handed over; anything else
// leaves from here, the CDR's edge note saying why when ;edge= was not
// honoured. A hand-over's own call (fromEdge) is never handed on.
func (c *call) dialFrom(target dest, offer []byte) (int, string, error) {
	r := c.s.edges
	if target.edge == "" || target.edge == r.self || c.p.fromEdge != "" {
		c.setEdgeNote("")
		return c.dial(target, offer)
	}
	here := r.self
	if here == "" {
		here = "this edge"
	}
	local := func(result, why string) (int, string, error) {
		label := target.edge
		if result == handoverUnknown {
			label = "" // a name nobody registered is the customer's text: not a label
		}
		r.count(label, result)
		c.setEdgeNote(why + ": left from " + here)
		c.log.Warn().Str("edge", target.edge).Str("result", result).Msg("origination URI's edge not used: the call leaves from here")
		return c.dial(target, offer)
	}
	switch {
	case len(r.secret) == 0 || r.self == "":
		return local(handoverOff, "edge hand-over is not configured here (--edge, --edge-secret)")
	case c.p.trunk.Secure:
		// The relay's offer toward the named edge would be the customer
		// leg's SRTP over the trunk's TLS: hand-overs are plain.
		return local(handoverSecure, "Secure trunk not handed over to edge "+target.edge)
	}
	to, why := r.lookup(target.edge)
	switch why {
	case handoverUnknown:
		return local(why, "edge "+target.edge+" is unknown")
	case handoverDead:
		return local(why, "edge "+target.edge+" is dead")
	}
	st, rs, err := c.dialHandover(target, to, offer)
	if why := c.takeEdgeRefused(); err == nil && why != "" {
		return local(handoverRefusedThere, fmt.Sprintf("edge %s refused the hand-over (%d %s, %s)", target.edge, st, rs, why))
	}
	if err != nil {
		if c.ctx.Err() != nil {
			return st, rs, err
		}
		c.log.Warn().Err(err).Str("edge", target.edge).Msg("hand-over unanswered")
		return local(handoverUnreachable, "edge "+target.edge+" did not answer the hand-over")
	}
	r.count(target.edge, handoverSent)
	c.setEdgeNote("handed over to edge " + target.edge)
	return st, rs, nil
}

// dialHandover INVITEs edge to (at its registered address) for target,
// signed with --edge-secret: the called number, the caller and the
// relay's offer as to any target; the origination URI by its sid only
// (the named edge reads it from the store), none of its X- headers.
func (c *call) dialHandover(target, to dest, offer []byte) (int, string, error) {
	to.user = c.p.to
	to.headers = nil
	c.takeEdgeRefused()
	req, ua := c.s.outboundInvite(c, to, c.s.peerOfDest(c.ctx, to))
	a := edgeAuth{from: c.s.edges.self, to: target.edge, ts: time.Now().Unix(), target: target.sid}
	a.mac = a.sign(c.s.edges.secret, req.CallID().Value(), to.user)
	req.AppendHeader(sip.NewHeader(edgeAuthHeader, a.String()))
	return c.dialRequest(req, ua, offer, nil)
}

// edgeRefusedHeader marks a named edge's own refusal of a hand-over
// (authentication, the DID or URI unknown there, draining), as opposed to
// the PBX's answer relayed: the receiving edge then dials the URI itself.
// Its value is one of the edgeRefused* words.
const edgeRefusedHeader = "X-Xtrunk-Edge-Refused"

const (
	edgeRefusedAuth     = "auth"
	edgeRefusedTarget   = "target"
	edgeRefusedDraining = "draining"
)

// noteEdgeRefused keeps a B-leg final response's edge refusal (dial calls
// it on every failure response; only dialFrom, after a hand-over, reads
// it).
func (c *call) noteEdgeRefused(res *sip.Response) {
	h := res.GetHeader(edgeRefusedHeader)
	if h == nil {
		return
	}
	why := "refused"
	switch v := h.Value(); v {
	case edgeRefusedAuth, edgeRefusedTarget, edgeRefusedDraining:
		why = v
	}
	c.mu.Lock()
	c.edgeRefused = why
	c.mu.Unlock()
}

// takeEdgeRefused returns and clears the last edge refusal.
func (c *call) takeEdgeRefused() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	why := c.edgeRefused
	c.edgeRefused = ""
	return why
}

func (c *call) setEdgeNote(n string) {
	c.mu.Lock()
	c.edgeNote = n
	c.mu.Unlock()
}

func (c *call) edgeNoteValue() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.edgeNote
}

// edgeHandover checks a hand-over INVITE's X-Xtrunk-Edge-Auth against the
// secret, this edge's name, the clock and the INVITE; it marks the MAC
// used when spend is set (one call per INVITE).
func (s *Server) edgeHandover(req *sip.Request, spend bool) (edgeAuth, error) {
	h := req.GetHeader(edgeAuthHeader)
	if h == nil {
		return edgeAuth{}, fmt.Errorf("%w: no %s", ErrEdgeAuth, edgeAuthHeader)
	}
	if len(req.GetHeaders(edgeAuthHeader)) != 1 {
		return edgeAuth{}, fmt.Errorf("%w: more than one %s", ErrEdgeAuth, edgeAuthHeader)
	}
	a, err := parseEdgeAuth(h.Value())
	if err != nil {
		return a, err
	}
	r := s.edges
	now := time.Now()
	if err := a.verify(r.secret, r.self, req.CallID().Value(), req.Recipient.User, now); err != nil {
		return a, err
	}
	key := string(a.mac)
	if r.seen.Has(key, now) {
		return a, fmt.Errorf("%w: replayed", ErrEdgeAuth)
	}
	if spend {
		r.seen.Add(key, now.Add(2*edgeAuthValidity))
	}
	return a, nil
}

// isHandover reports whether req claims to be a hand-over from another
// edge (it carries X-Xtrunk-Edge-Auth, valid or not).
func isHandover(req *sip.Request) bool { return req.GetHeader(edgeAuthHeader) != nil }

// screenedEdge tells screen that an INVITE is an authenticated hand-over:
// exempt from the flood guard, as a carrier's INVITE is (a forged one is
// screened like anyone's, then refused by admitHandover).
func (s *Server) screenedEdge(req *sip.Request) bool {
	if req.Method != sip.INVITE || !isHandover(req) {
		return false
	}
	_, err := s.edgeHandover(req, false)
	return err == nil
}

// admitHandover admits a hand-over INVITE (this is the edge its
// origination URI names): authenticated, or 403 and an authentication
// failure for the abuse guard; then the DID's checks as for a carrier's
// call, and the one origination URI it names as the only target.
func (s *Server) admitHandover(ctx context.Context, req *sip.Request, log zerolog.Logger) (*plan, *refusal, []sip.Header) {
	a, err := s.edgeHandover(req, true)
	if err != nil {
		log.Warn().Err(err).Str("src", req.Source()).Msg("hand-over refused")
		s.edges.count("", handoverRefused)
		s.authFailed(req, err)
		return nil, &refusal{403, "Forbidden"}, []sip.Header{sip.NewHeader(edgeRefusedHeader, edgeRefusedAuth)}
	}
	p, ref, hdrs := s.admitOrigination(ctx, req, log)
	if ref != nil {
		return nil, ref, append(hdrs, sip.NewHeader(edgeRefusedHeader, edgeRefusedTarget))
	}
	for _, t := range p.targets {
		if t.Value.sid == a.target {
			t.Value.edge = ""                   // dialled from here, whatever the URI says now
			p.targets = []route.Target[dest]{t} // a copy: the cache's slice is shared
			p.fromEdge = a.from
			s.edges.count(a.from, handoverAccepted)
			log.Info().Str("from_edge", a.from).Str("target", t.Value.String()).Msg("hand-over accepted")
			return p, nil, nil
		}
	}
	// The URI was disabled or removed since the other edge read it.
	log.Warn().Str("from_edge", a.from).Str("target", a.target).Msg("hand-over for an origination URI this edge does not have")
	return nil, &refusal{480, "Temporarily Unavailable"}, []sip.Header{sip.NewHeader(edgeRefusedHeader, edgeRefusedTarget)}
}
