package relay

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

// An offer or answer changes a call in two phases. The plan checks and
// prepares everything that can fail (tags, interfaces, stream counts,
// ports, SDES) and changes nothing of the call; the commit, which cannot
// fail, makes the plan so and rewrites the SDP for the other party. A
// refused command so leaves the call as it was.

// sdpPlan is what one party's SDP will do to the call.
type sdpPlan struct {
	isAnswer           bool
	owner, peer        int    // the SDP's owner's side of the call, and the other
	ownerTag, otherTag string // their tags
	fam                netip.Addr
	ifName             [2]string // each side's interface after the commit
	streams            []streamPlan
}

// streamPlan is what one m= line will do to the call, decided before
// anything changes.
type streamPlan struct {
	st    *stream      // existing, or new (appended at commit)
	ep    [2]*endpoint // the stream's endpoints after the commit
	fresh []*endpoint  // allocated for this command: released if it fails
	srtp  srtpPlan
	keyed bool // srtp was planned (both endpoints exist)
}

// applySDP updates the call from the SDP of one party and returns the SDP
// for the other: plan, then commit. Caller holds c.mu.
func (r *Relay) applySDP(c *call, sess *sdp.Session, p *ng.Params, isAnswer bool) ([]byte, error) {
	pl, err := r.planSDP(c, sess, p, isAnswer)
	if err != nil {
		return nil, err
	}
	r.commitSides(c, pl, p)
	window := monoNow() + int64(r.cfg.LearnWindow)
	for i, m := range sess.Media {
		r.commitStream(c, i, m, pl, p, window)
	}
	r.rewriteSession(c, sess, pl, p)
	return sess.AppendMarshal(nil), nil
}

// planSDP decides what the SDP will do to c, changing nothing of c. The
// ports it allocates are released again when it fails.
func (r *Relay) planSDP(c *call, sess *sdp.Session, p *ng.Params, isAnswer bool) (*sdpPlan, error) {
	owner, ownerTag, otherTag, err := c.parties(p.FromTag, p.ToTag, isAnswer)
	if err != nil {
		return nil, err
	}
	if isAnswer && len(sess.Media) > len(c.streams) {
		return nil, fmt.Errorf("%w: %d m= lines, the offer had %d", ErrAnswerStreams, len(sess.Media), len(c.streams))
	}
	pl := &sdpPlan{isAnswer: isAnswer, owner: owner, peer: 1 - owner, ownerTag: ownerTag, otherTag: otherTag}
	// the SDP's family picks the interface address when a name has both
	if sess.Conn.IsValid() {
		pl.fam = sess.Conn
	} else if len(sess.Media) > 0 {
		pl.fam = sess.Media[0].Conn
	}
	if pl.ifName, err = r.planInterfaces(c, pl, p.Direction); err != nil {
		return nil, err
	}
	pl.streams = make([]streamPlan, len(sess.Media))
	for i, m := range sess.Media {
		if err := r.planStream(c, i, m, pl, p); err != nil {
			for i := range pl.streams {
				for _, e := range pl.streams[i].fresh {
					r.releaseEndpoint(e)
				}
			}
			return nil, err
		}
	}
	return pl, nil
}

// planInterfaces names each side's interface: the one it has, unless
// direction (owner's, then peer's) names another.
func (r *Relay) planInterfaces(c *call, pl *sdpPlan, direction []string) ([2]string, error) {
	var ifName [2]string
	for i, idx := range []int{pl.owner, pl.peer} {
		if c.sides[idx] != nil {
			ifName[idx] = c.sides[idx].Iface
		}
		if ifName[idx] == "" || len(direction) > i {
			name := ""
			if len(direction) > i {
				name = direction[i]
			}
			ifc, err := r.iface(name, pl.fam)
			if err != nil {
				return ifName, err
			}
			ifName[idx] = ifc.Name
		}
	}
	return ifName, nil
}

// planStream plans m, the i-th m= line: its endpoints (allocating the
// missing ones) and its SDES.
func (r *Relay) planStream(c *call, i int, m *sdp.Media, pl *sdpPlan, p *ng.Params) error {
	if err := r.checkSelfTarget(m, p); err != nil {
		return err
	}
	sp := &pl.streams[i]
	if i < len(c.streams) {
		sp.st = c.streams[i]
	} else {
		sp.st = &stream{Index: i + 1, Type: m.Type, Proto: m.Proto}
	}
	sp.ep = sp.st.ep
	owner, peer := pl.owner, pl.peer
	// a rejected stream (port 0, or one the offer rejected) gets no
	// ports: there is nothing to relay
	if m.Port != 0 && !(pl.isAnswer && sp.ep[peer] == nil) {
		for _, idx := range []int{owner, peer} {
			if sp.ep[idx] != nil {
				continue
			}
			ifc, err := r.iface(pl.ifName[idx], m.Conn)
			if err != nil {
				return err
			}
			e, err := r.newEndpoint(c, sp.st, idx, ifc)
			if err != nil {
				return err
			}
			sp.ep[idx] = e
			sp.fresh = append(sp.fresh, e)
		}
	}
	if e, pe := sp.ep[owner], sp.ep[peer]; e != nil && pe != nil {
		var err error
		if sp.srtp, err = planSRTP(e, pe, m, p, pl.isAnswer); err != nil {
			return err
		}
		sp.keyed = true
	}
	return nil
}

// commitSides sets the sides' interfaces and tags, and the owner's
// latching options. It cannot fail.
func (r *Relay) commitSides(c *call, pl *sdpPlan, p *ng.Params) {
	for idx := range c.sides {
		if c.sides[idx] == nil {
			c.sides[idx] = &side{Created: time.Now()}
		}
		c.sides[idx].Iface = pl.ifName[idx]
	}
	os := c.sides[pl.owner]
	os.Tag = pl.ownerTag
	if pl.otherTag != "" && c.sides[pl.peer].Tag == "" {
		c.sides[pl.peer].Tag = pl.otherTag
	}
	if p.Flags.Asymmetric {
		os.Asymmetric = true
	} else if p.Flags.Symmetric {
		os.Asymmetric = false
	}
	if p.Flags.StrictSource {
		os.Strict = true
	}
	if p.ReceivedFrom.IsValid() {
		os.ReceivedFrom = p.ReceivedFrom
	}
}

// commitStream makes the plan of m, the i-th m= line, so and rewrites
// the line for the peer. It cannot fail.
func (r *Relay) commitStream(c *call, i int, m *sdp.Media, pl *sdpPlan, p *ng.Params, window int64) {
	sp := &pl.streams[i]
	st := sp.st
	if i == len(c.streams) {
		c.streams = append(c.streams, st)
	}
	st.Type, st.Proto = m.Type, m.Proto
	st.ep = sp.ep
	e, pe := st.ep[pl.owner], st.ep[pl.peer]
	if e != nil {
		r.updateEndpoint(e, m, p)
	}
	if !sp.keyed {
		rejectMedia(m, pe, p, pl.isAnswer)
		r.installStream(c, st)
		return
	}
	sp.srtp.apply(e, pe)
	e.learnUntil, pe.learnUntil = window, window

	// rewrite for the peer: where it must send is pe's local port
	m.SetPort(int(pe.local.Port()))
	if m.Port == 0 || e.disabled {
		m.SetPort(0)
	}
	adv := pe.iface.Advertised
	m.Conn = adv
	muxOut := commitMux(m, c.sides[pl.owner], c.sides[pl.peer], pe, p, pl.isAnswer)
	if muxOut && !m.RTCPMux {
		m.AddAttr("rtcp-mux", "")
	} else if !muxOut && m.RTCPMux {
		m.RemoveAttrs("rtcp-mux")
	}
	if m.Port != 0 {
		m.SetRTCP(int(pe.local.Port())+1, adv)
	} else {
		m.RemoveAttrs("rtcp")
	}
	// the relay anchors media, so candidates would point past it: ICE
	// attributes go whether or not ICE=remove was asked for
	sdp.RemoveICE(m)
	r.installStream(c, st)
}

// commitMux decides whether the line for the peer offers or accepts
// rtcp-mux, recording what the offerer asked for (os is the SDP owner's
// side, ps the peer's, pe the peer's endpoint).
func commitMux(m *sdp.Media, os, ps *side, pe *endpoint, p *ng.Params, isAnswer bool) bool {
	mux := p.RTCPMux
	if isAnswer {
		// the answerer's choice goes back to the offerer, and so does
		// an acceptance the offer asked for (rtcp-mux accept/demux)
		out := (m.RTCPMux && !mux.Reject) || (pe.mux && ps.AcceptMux)
		pe.mux = pe.mux && out
		return out
	}
	os.AcceptMux = m.RTCPMux && (mux.Demux || mux.Accept)
	return (m.RTCPMux && !mux.Demux && !mux.Reject) || mux.Offer
}

// rewriteSession rewrites the session-level lines for the peer.
func (r *Relay) rewriteSession(c *call, sess *sdp.Session, pl *sdpPlan, p *ng.Params) {
	peer := pl.peer
	sess.RemoveICE()
	if sess.Conn.IsValid() || p.Replace.SessionConnection {
		sess.SetConnection(c.ifaceAdv(r, peer, pl.fam))
	}
	for i, m := range sess.Media {
		if pe := c.streams[i].ep[peer]; pe != nil {
			m.Conn = pe.iface.Advertised
		} else if m.Conn.IsValid() {
			m.Conn = c.ifaceAdv(r, peer, m.Conn)
		}
	}
	if p.Replace.Origin {
		sess.SetOriginAddr(c.ifaceAdv(r, peer, pl.fam))
	}
}

// rejectMedia rewrites an m= line the relay holds no ports for: port 0,
// and nothing of the owner's (address, RTCP port, keys, ICE) passes to
// the peer. pe is the peer's endpoint, if it has one.
func rejectMedia(m *sdp.Media, pe *endpoint, p *ng.Params, isAnswer bool) {
	m.SetPort(0)
	m.RemoveAttrs("rtcp")
	m.RemoveAttrs("crypto")
	sdp.RemoveICE(m)
	proto := m.Proto
	if isAnswer && pe != nil && pe.proto != "" {
		proto = pe.proto // answer in the offerer's own profile...
	}
	if p.TransportProtocol != "" {
		proto = p.TransportProtocol // ...unless told otherwise
	}
	if proto != m.Proto {
		m.SetProto(proto)
	}
}

func (c *call) ifaceAdv(r *Relay, idx int, fam netip.Addr) netip.Addr {
	ifc, err := r.iface(c.sides[idx].Iface, fam)
	if err != nil {
		return netip.Addr{}
	}
	return ifc.Advertised
}

// updateEndpoint takes what the party's SDP says about its media.
func (r *Relay) updateEndpoint(e *endpoint, m *sdp.Media, p *ng.Params) {
	sipSource := p.Flags.SIPSourceAddress
	addr := m.Conn
	if sd := e.sideOf(); sipSource && sd.ReceivedFrom.IsValid() {
		addr = sd.ReceivedFrom
	}
	newSDP := netip.AddrPortFrom(addr.Unmap(), uint16(m.Port))
	if m.Port == 0 || !addr.IsValid() || addr.IsUnspecified() {
		newSDP = netip.AddrPort{}
	}
	if e.sdp.IsValid() && newSDP != e.sdp {
		// the party moved: what was learned no longer holds
		e.latched, e.latchedRTCP, e.ssrc = netip.AddrPort{}, netip.AddrPort{}, 0
	}
	e.sdp = newSDP
	e.disabled = m.Port == 0
	e.mux = m.RTCPMux
	e.isRTP = m.IsRTP()
	if newSDP.IsValid() {
		ra := m.RTCPAddr
		if sipSource {
			ra = addr
		}
		if !ra.IsValid() {
			ra = addr
		}
		e.sdpRTCP = netip.AddrPortFrom(ra.Unmap(), uint16(m.RTCPPort))
	} else {
		e.sdpRTCP = netip.AddrPort{}
	}
	setPTs(&e.pts, m.PayloadTypes())
	e.ssrcs = m.SSRCs(maxSSRCs)
	e.rate = clockRate(m)
	// a rejected SDP family mismatch is not fatal: the relay translates
	r.bindLocal(e)
}
