package relay

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/record"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

// ServeNG implements ng.Handler: rtpengine's ping, offer, answer, delete,
// query and list.
func (r *Relay) ServeNG(ctx context.Context, from netip.AddrPort, req ng.Dict) (reply ng.Dict) {
	cmd := strings.ToLower(req.Str("command"))
	start := time.Now()
	defer func() {
		res := reply.Str("result")
		r.m.command(cmd, res, time.Since(start))
		if res == "error" {
			r.log.Info().Str("command", cmd).Str("call_id", req.Str("call-id")).Str("reason", reply.Str("error-reason")).Msg("ng command refused")
		}
	}()
	switch cmd {
	case "ping":
		return ng.Dict{"result": "pong"}
	case "offer":
		return r.offerAnswer(from, req, false)
	case "answer":
		return r.offerAnswer(from, req, true)
	case "delete":
		return r.delete(req)
	case "query":
		return r.query(req)
	case "list":
		return r.list(req)
	case "start recording":
		return r.startStopRecording(req, true)
	case "stop recording":
		return r.startStopRecording(req, false)
	case "":
		return ng.ErrorReply("No command given")
	}
	return ng.ErrorReply("Unrecognized command")
}

// opts are the NG keys and flags offer/answer understand.
type opts struct {
	asymmetric, symmetric bool
	strict                bool
	sipSource             bool // SIP-source-address: use received-from, not the SDP address
	replaceOrigin         bool
	replaceSessConn       bool
	iceRemove             bool
	muxDemux, muxOffer    bool
	muxAccept             bool
	muxReject             bool
	direction             []string
	receivedFrom          netip.Addr
	record                bool
	transport             string
	sdes                  sdesOpts
}

// normFlag makes "Trust Address", "trust-address" and "trust_address" one.
func normFlag(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.NewReplacer(" ", "-", "_", "-").Replace(s)
}

func parseOpts(req ng.Dict) opts {
	var o opts
	for _, f := range req.Strings("flags") {
		switch normFlag(f) {
		case "asymmetric":
			o.asymmetric = true
		case "symmetric":
			o.symmetric = true
		case "strict-source":
			o.strict = true
		case "sip-source-address":
			o.sipSource = true
		case "trust-address", "port-latching", "media-handover":
			// trust-address is the default; port latching (keep the
			// latched port across re-offers) is what latching does here
		case "record-call":
			o.record = true
		}
	}
	for _, f := range req.Strings("replace") {
		switch normFlag(f) {
		case "origin":
			o.replaceOrigin = true
		case "session-connection", "session-conn":
			o.replaceSessConn = true
		}
	}
	if v := normFlag(req.Str("ICE")); v == "remove" {
		o.iceRemove = true
	}
	if v := normFlag(req.Str("ice")); v == "remove" {
		o.iceRemove = true
	}
	for _, f := range req.Strings("rtcp-mux") {
		switch normFlag(f) {
		case "demux":
			o.muxDemux = true
		case "offer":
			o.muxOffer = true
		case "accept":
			o.muxAccept = true
		case "reject":
			o.muxReject = true
		}
	}
	for _, d := range req.Strings("direction") {
		o.direction = append(o.direction, strings.Clone(d))
	}
	if rf := req.Strings("received-from"); len(rf) == 2 {
		if a, err := netip.ParseAddr(rf[1]); err == nil {
			o.receivedFrom = a.Unmap()
		}
	}
	if v := normFlag(req.Str("record-call")); v == "yes" || v == "on" {
		o.record = true
	}
	if v := normFlag(req.Str("record call")); v == "yes" || v == "on" {
		o.record = true
	}
	o.transport = req.Str("transport-protocol")
	o.sdes = parseSDES(req.Strings("SDES"))
	return o
}

func errReply(err error) ng.Dict { return ng.ErrorReply(err.Error()) }

// maxStreams caps the m= lines of one SDP, and so the streams (two port
// pairs each) a call can hold: real calls carry one to three (audio,
// video, T.38 or BFCP), and a body with thousands is an attack on the port
// range.
const maxStreams = 16

// offerAnswer handles both commands: the SDP belongs to the from-tag party
// on an offer and to the to-tag party on an answer; the reply's SDP, for
// the other party, names the relay's ports facing that other party.
// Everything that can refuse the command is checked before the call
// changes: a refused offer or answer leaves the call as it was.
func (r *Relay) offerAnswer(from netip.AddrPort, req ng.Dict, isAnswer bool) ng.Dict {
	// decoded strings share the datagram's memory; keep copies of what lives on
	callID, fromTag, toTag := strings.Clone(req.Str("call-id")), strings.Clone(req.Str("from-tag")), strings.Clone(req.Str("to-tag"))
	body := req.Str("sdp")
	switch {
	case callID == "":
		return errReply(fmt.Errorf("%w: call-id", ErrMissingKey))
	case fromTag == "":
		return errReply(fmt.Errorf("%w: from-tag", ErrMissingKey))
	case isAnswer && toTag == "":
		return errReply(fmt.Errorf("%w: to-tag", ErrMissingKey))
	case body == "":
		return errReply(fmt.Errorf("%w: sdp", ErrMissingKey))
	}
	sess, err := sdp.Parse([]byte(body))
	if err != nil {
		return errReply(fmt.Errorf("%w: %w", ErrBadSDP, err))
	}
	if n := len(sess.Media); n > maxStreams {
		return errReply(fmt.Errorf("%w: %d m= lines, at most %d", ErrTooManyStreams, n, maxStreams))
	}
	o := parseOpts(req)
	if !o.receivedFrom.IsValid() && from.IsValid() && o.sipSource {
		o.receivedFrom = from.Addr().Unmap()
	}
	channels, trim := recOptsOf(req)
	if o.record {
		if err := record.CheckChannels(channels); err != nil {
			return errReply(err)
		}
	}

	c, created, err := r.getCall(callID, !isAnswer)
	if err != nil {
		return errReply(err)
	}
	// forget takes r.mu, so it runs after c.mu is released (defers run
	// last-in first-out): the lock order is r.mu before c.mu everywhere
	forget := false
	defer func() {
		if forget {
			r.forget(c)
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted {
		return errReply(ErrUnknownCall)
	}
	var rec *record.Recording
	if o.record && c.rec == nil {
		// made before the SDP is applied, so that a recording that cannot
		// start refuses the command instead of following a changed call
		if rec, err = r.newRecording(c, fromTag, toTag, isAnswer, channels, trim); err != nil {
			if created {
				r.release(c)
				forget = true
			}
			return errReply(err)
		}
	}
	out, err := r.applySDP(c, sess, fromTag, toTag, isAnswer, o)
	if err != nil {
		if rec != nil {
			rec.Abort()
		}
		if created {
			r.release(c)
			forget = true
		}
		return errReply(err)
	}
	c.lastSignal = time.Now()
	c.timedOut = false
	if o.record {
		c.record = true
		if rec != nil {
			r.attachRecording(c, rec, channels, trim)
		}
	}
	r.persist(c)
	return ng.Dict{"result": "ok", "sdp": string(out)}
}

func (r *Relay) getCall(id string, create bool) (*call, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.calls[id]; ok {
		return c, false, nil
	}
	if !create {
		return nil, false, ErrUnknownCall
	}
	c := &call{id: id, num: r.nextNum, created: time.Now()}
	r.nextNum++
	r.calls[id] = c
	r.m.calls(len(r.calls))
	return c, true, nil
}

func (r *Relay) forget(c *call) {
	r.mu.Lock()
	if r.calls[c.id] == c {
		delete(r.calls, c.id)
	}
	r.m.calls(len(r.calls))
	r.mu.Unlock()
}

func (c *call) sideByTag(tag string) int {
	for i, s := range c.sides {
		if s != nil && s.Tag == tag {
			return i
		}
	}
	return -1
}

// parties says which side of c the SDP's owner is, and its tag and the
// other party's. It changes nothing.
func (c *call) parties(fromTag, toTag string, isAnswer bool) (owner int, ownerTag, otherTag string, err error) {
	ownerTag, otherTag = fromTag, toTag
	if isAnswer {
		ownerTag, otherTag = toTag, fromTag
	}
	owner = c.sideByTag(ownerTag)
	if owner >= 0 {
		return owner, ownerTag, otherTag, nil
	}
	other := -1
	if otherTag != "" {
		other = c.sideByTag(otherTag)
	}
	switch {
	case other >= 0:
		owner = 1 - other
	case isAnswer:
		return 0, "", "", fmt.Errorf("%w: %q", ErrUnknownTag, fromTag)
	case c.sides[0] == nil:
		owner = 0
	case c.sides[1] == nil || c.sides[1].Tag == "":
		owner = 1
	default:
		return 0, "", "", fmt.Errorf("%w: %q is not a party of this call", ErrUnknownTag, ownerTag)
	}
	return owner, ownerTag, otherTag, nil
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
// for the other. It first checks and prepares everything that can fail
// (tags, interfaces, stream counts, ports, SDES), changing nothing of the
// call; only then does it commit, which cannot fail. Caller holds c.mu.
func (r *Relay) applySDP(c *call, sess *sdp.Session, fromTag, toTag string, isAnswer bool, o opts) (out []byte, err error) {
	owner, ownerTag, otherTag, err := c.parties(fromTag, toTag, isAnswer)
	if err != nil {
		return nil, err
	}
	peer := 1 - owner
	if isAnswer && len(sess.Media) > len(c.streams) {
		return nil, fmt.Errorf("%w: %d m= lines, the offer had %d", ErrAnswerStreams, len(sess.Media), len(c.streams))
	}

	// the SDP's family picks the interface address when a name has both
	var fam netip.Addr
	if sess.Conn.IsValid() {
		fam = sess.Conn
	} else if len(sess.Media) > 0 {
		fam = sess.Media[0].Conn
	}
	var ifName [2]string
	for i, idx := range []int{owner, peer} {
		if c.sides[idx] != nil {
			ifName[idx] = c.sides[idx].Iface
		}
		if ifName[idx] == "" || len(o.direction) > i {
			name := ""
			if len(o.direction) > i {
				name = o.direction[i]
			}
			ifc, err := r.iface(name, fam)
			if err != nil {
				return nil, err
			}
			ifName[idx] = ifc.Name
		}
	}

	plans := make([]streamPlan, len(sess.Media))
	defer func() {
		if err == nil {
			return
		}
		for i := range plans {
			for _, e := range plans[i].fresh {
				r.releaseEndpoint(e)
			}
		}
	}()
	for i, m := range sess.Media {
		p := &plans[i]
		if i < len(c.streams) {
			p.st = c.streams[i]
		} else {
			p.st = &stream{Index: i + 1, Type: m.Type, Proto: m.Proto}
		}
		p.ep = p.st.ep
		// a rejected stream (port 0, or one the offer rejected) gets no
		// ports: there is nothing to relay
		if m.Port != 0 && !(isAnswer && p.ep[peer] == nil) {
			for _, idx := range []int{owner, peer} {
				if p.ep[idx] != nil {
					continue
				}
				ifc, err := r.iface(ifName[idx], m.Conn)
				if err != nil {
					return nil, err
				}
				e, err := r.newEndpoint(c, p.st, idx, ifc)
				if err != nil {
					return nil, err
				}
				p.ep[idx] = e
				p.fresh = append(p.fresh, e)
			}
		}
		if e, pe := p.ep[owner], p.ep[peer]; e != nil && pe != nil {
			if p.srtp, err = planSRTP(e, pe, m, o, isAnswer); err != nil {
				return nil, err
			}
			p.keyed = true
		}
	}

	// Commit: nothing below fails.
	for idx := range c.sides {
		if c.sides[idx] == nil {
			c.sides[idx] = &side{Created: time.Now()}
		}
		c.sides[idx].Iface = ifName[idx]
	}
	os := c.sides[owner]
	os.Tag = ownerTag
	if otherTag != "" && c.sides[peer].Tag == "" {
		c.sides[peer].Tag = otherTag
	}
	if o.asymmetric {
		os.Asymmetric = true
	} else if o.symmetric {
		os.Asymmetric = false
	}
	if o.strict {
		os.Strict = true
	}
	if o.receivedFrom.IsValid() {
		os.ReceivedFrom = o.receivedFrom
	}

	window := monoNow() + int64(r.cfg.LearnWindow)
	for i, m := range sess.Media {
		p := &plans[i]
		st := p.st
		if i == len(c.streams) {
			c.streams = append(c.streams, st)
		}
		st.Type, st.Proto = m.Type, m.Proto
		st.ep = p.ep
		e, pe := st.ep[owner], st.ep[peer]
		if e != nil {
			r.updateEndpoint(e, m, o)
		}
		if !p.keyed {
			rejectMedia(m, pe, o, isAnswer)
			r.installStream(c, st)
			continue
		}
		p.srtp.apply(e, pe)
		e.learnUntil, pe.learnUntil = window, window

		// rewrite for the peer: where it must send is pe's local port
		m.SetPort(int(pe.local.Port()))
		if m.Port == 0 || e.disabled {
			m.SetPort(0)
		}
		adv := pe.iface.Advertised
		m.Conn = adv
		var muxOut bool
		if isAnswer {
			// the answerer's choice goes back to the offerer, and so does
			// an acceptance the offer asked for (rtcp-mux accept/demux)
			muxOut = (m.RTCPMux && !o.muxReject) || (pe.mux && c.sides[peer].AcceptMux)
			pe.mux = pe.mux && muxOut
		} else {
			muxOut = (m.RTCPMux && !o.muxDemux && !o.muxReject) || o.muxOffer
			os.AcceptMux = m.RTCPMux && (o.muxDemux || o.muxAccept)
		}
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
	sess.RemoveICE()
	if sess.Conn.IsValid() || o.replaceSessConn {
		sess.SetConnection(c.ifaceAdv(r, peer, fam))
	}
	for i, m := range sess.Media {
		if pe := c.streams[i].ep[peer]; pe != nil {
			m.Conn = pe.iface.Advertised
		} else if m.Conn.IsValid() {
			m.Conn = c.ifaceAdv(r, peer, m.Conn)
		}
	}
	if o.replaceOrigin {
		sess.SetOriginAddr(c.ifaceAdv(r, peer, fam))
	}
	return sess.AppendMarshal(nil), nil
}

// rejectMedia rewrites an m= line the relay holds no ports for: port 0,
// and nothing of the owner's (address, RTCP port, keys, ICE) passes to
// the peer. pe is the peer's endpoint, if it has one.
func rejectMedia(m *sdp.Media, pe *endpoint, o opts, isAnswer bool) {
	m.SetPort(0)
	m.RemoveAttrs("rtcp")
	m.RemoveAttrs("crypto")
	sdp.RemoveICE(m)
	proto := m.Proto
	if isAnswer && pe != nil && pe.proto != "" {
		proto = pe.proto // answer in the offerer's own profile...
	}
	if o.transport != "" {
		proto = o.transport // ...unless told otherwise
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
func (r *Relay) updateEndpoint(e *endpoint, m *sdp.Media, o opts) {
	addr := m.Conn
	if sd := e.sideOf(); o.sipSource && sd.ReceivedFrom.IsValid() {
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
		if o.sipSource {
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
}
