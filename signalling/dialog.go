package signalling

import (
	"github.com/emiago/sipgo/sip"
)

// onAck hands the customer's ACK for our 200 to its dialog.
func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	c := s.callByID(req.CallID().Value())
	if c == nil || c.id != req.CallID().Value() {
		return
	}
	_ = c.a.ReadAck(req, tx)
}

// onBye ends a call from either side.
func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	id := req.CallID().Value()
	c := s.callByID(id)
	if c == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	if id == c.id {
		if err := c.a.ReadBye(req, tx); err != nil {
			respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
			return
		}
		c.closeWith(0, "BYE", hangupCaller)
		return
	}
	c.mu.Lock()
	b := c.b
	c.mu.Unlock()
	if b == nil || b.ReadBye(req, tx) != nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	c.closeWith(0, "BYE", hangupCallee)
}
