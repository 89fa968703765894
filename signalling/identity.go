package signalling

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/emiago/sipgo/sip"
)

// newLegID is an identifier the edge makes for a call or a leg: 128
// random bits in hex. The relay session and the call maps are keyed by
// these, never by a Call-ID a peer chose, so that a peer reusing another
// tenant's Call-ID names nothing of that tenant's call.
func newLegID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

func fromTagOf(req *sip.Request) string {
	if f := req.From(); f != nil && f.Params != nil {
		t, _ := f.Params.Get("tag")
		return t
	}
	return ""
}

// dialogOf finds the call an in-dialog request (ACK, BYE, re-INVITE,
// INFO) belongs to, and whether the A-leg sent it. A Call-ID is only the
// first half of the match: a request on the B-leg (whose Call-ID the edge
// made) must carry the B party's tag, one on the A-leg the A party's From
// tag and come from the A party's address (for origination: any carrier
// source). Anything else is nobody's (481), however live its Call-ID.
func (s *Server) dialogOf(req *sip.Request) (*call, bool) {
	id := req.CallID().Value()
	s.mu.Lock()
	a, b := s.byA[id], s.byB[id]
	s.mu.Unlock()
	tag := fromTagOf(req)
	if b != nil {
		b.mu.Lock()
		bTag := b.bTag
		b.mu.Unlock()
		if bTag == "" || tag == bTag {
			return b, false
		}
	}
	if a != nil && tag == a.fromTag && s.sameParty(a, req) {
		return a, true
	}
	return nil, false
}

// sameParty reports whether req comes from the party that sent c's
// INVITE: the same address, or for a carrier's (origination) call any
// carrier source (a carrier's BYE may leave from another of its hosts).
func (s *Server) sameParty(c *call, req *sip.Request) bool {
	if src, ok := sourceAddr(req); ok && src == c.aSrc {
		return true
	}
	return !c.p.customerIsA() && s.fromCarrier(req)
}

// callByID is a call one of whose legs has Call-ID id, for the guard's
// screening only (a live Call-ID lets a datagram reach the handlers, which
// then match it fully with dialogOf).
func (s *Server) callByID(id string) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.byB[id]; c != nil {
		return c
	}
	return s.byA[id]
}
