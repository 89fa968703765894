package relay

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/relay/record"
)

// call is one call-id: two sides (offerer and answerer), each with one
// endpoint per media stream. Every field below mu is guarded by it.
type call struct {
	id      string
	num     uint64 // key of the call's record in the pinned calls map
	created time.Time

	mu         sync.Mutex
	lastSignal time.Time
	sides      [2]*side
	streams    []*stream
	timedOut   bool
	timedOutAt time.Time // when the janitor marked it; it is deleted TimeoutLinger later
	deleted    bool
	endReason  string // why the call ended, for its last log line ("" = NG delete)
	record     bool

	rec         *record.Recording // while recording
	recLostBase uint64            // fast-path copies lost before it started
}

// side is one party of the call, named by its SIP tag.
type side struct {
	Tag          string     `json:"tag"`
	Iface        string     `json:"iface"` // logical interface facing this party
	Asymmetric   bool       `json:"asym,omitempty"`
	Strict       bool       `json:"strict,omitempty"`
	ReceivedFrom netip.Addr `json:"rf,omitzero"`    // where its signalling came from
	AcceptMux    bool       `json:"amux,omitempty"` // its rtcp-mux offer is to be accepted
	Created      time.Time  `json:"created"`
}

// stream is one m= line: the two endpoints the relay has for it.
type stream struct {
	Index int    `json:"i"`
	Type  string `json:"type"`
	Proto string `json:"proto"`
	ep    [2]*endpoint
}

// endpoint is the relay's end of one stream facing one party: two local
// sockets (RTP, RTCP) and what is known of the party's media address.
type endpoint struct {
	st   *stream
	side int
	c    *call

	iface *Interface
	local netip.AddrPort // RTP; RTCP is local port + 1
	rtp   *sock
	rtcp  *sock

	// From the party's SDP.
	sdp      netip.AddrPort
	sdpRTCP  netip.AddrPort
	mux      bool // the party sends/receives RTCP on the RTP port
	disabled bool // port 0
	isRTP    bool // RTP profile (learning can check the header)
	pts      [2]uint64
	rate     uint32   // RTP clock of its first payload type (loss/jitter); 0 = unknown
	ssrcs    []uint32 // the SSRCs its SDP announces (a=ssrc); none = any

	// SDES-SRTP, when the party's leg is encrypted: its key decrypts what
	// it sends, the relay's key encrypts what it receives.
	proto   string // the party's own transport protocol
	srtp    bool
	keyIn   keying   // the party's
	keyOut  keying   // the relay's, toward the party
	offered []keying // the relay's keys offered to the party, one per suite
	dec     *cryptoCtx
	enc     *cryptoCtx

	// Latching.
	latched     netip.AddrPort
	latchedRTCP netip.AddrPort
	ssrc        uint32 // of the first packet latched (RTP, or RTCP's sender)
	learnUntil  int64  // monotonic ns

	// kernel: socketless, the party is on the relay's host and the
	// ports hold bound kernel sockets (localparty.go)
	kernel bool
}

// sock is one bound relay port and what the packet loop needs for it.
type sock struct {
	udp    *udpSock
	ep     *endpoint
	isRTCP bool
	route  atomic.Pointer[route]

	// the fast-path entry last written for this socket (under the call's
	// mu), so that unchanged entries are not written again
	fast    bpf.Session
	fastSet bool
	// set under the call's mu when the call ends (see freezeStats)
	final *finalStats

	// rx serialises the AF_XDP path's handling of this port: packets of
	// one port may arrive on several RX queues (other sources hash
	// elsewhere), read by different goroutines, and handle relies on one
	// reader at a time, as a socket's one poller gives it.
	rx sync.Mutex

	// Counted by the userspace path only; the XDP path has its own.
	packets, bytes, errors, drops atomic.Uint64
	lastNs                        atomic.Int64 // monotonic ns
	quality                       rtpQuality   // of the RTP it accepted
	seen                          sockSeen     // counted in the media metrics (countMedia)
}

// route is what to do with packets arriving at a sock. It is immutable;
// changes swap in a new one.
type route struct {
	drop   bool
	expect netip.AddrPort // latched source; invalid = still learning
	out    *udpSock
	dst    netip.AddrPort
	// rtcp-mux on this side, separate RTCP on the other
	demux   bool
	rtcpOut *udpSock
	rtcpDst netip.AddrPort
	// what an unlatched socket may latch to (nil once latched)
	learn *learnParams
	// SRTP: decrypt what arrives (this party is SRTP), encrypt what is
	// sent (the other party is)
	decrypt, encrypt *cryptoCtx
	rate             uint32 // RTP clock for quality statistics
	// recording: the RTP accepted here feeds channel recCh of rec
	rec   *record.Recording
	recCh int
}

// learnParams are an endpoint's latching rules at the time the route was
// made; the packet loop reads only these, never the endpoint.
type learnParams struct {
	want         netip.AddrPort // the SDP address for this socket (RTP or RTCP)
	sdpIP        netip.Addr
	receivedFrom netip.Addr
	latchedIP    netip.Addr // RTP's latched IP, for the RTCP socket
	until        int64      // monotonic ns
	strict       bool
	isRTP        bool
	mux          bool
	pts          [2]uint64
	// the SSRC a packet must carry: the SDP's a=ssrc list if any, else
	// the one already latched on the endpoint's other socket (0 = any)
	ssrcs []uint32
	ssrc  uint32
}

func (e *endpoint) sideOf() *side { return e.c.sides[e.side] }

func (e *endpoint) other() *endpoint { return e.st.ep[1-e.side] }

// dest is where the relay sends media for this endpoint's party.
func (e *endpoint) dest() netip.AddrPort {
	if s := e.sideOf(); s != nil && !s.Asymmetric && e.latched.IsValid() {
		return e.latched
	}
	return e.sdp
}

func (e *endpoint) destRTCP() netip.AddrPort {
	if e.mux {
		return e.dest()
	}
	if s := e.sideOf(); s != nil && !s.Asymmetric {
		if e.latchedRTCP.IsValid() {
			return e.latchedRTCP
		}
		if e.latched.IsValid() && !e.sdpRTCP.IsValid() {
			return netip.AddrPortFrom(e.latched.Addr(), e.latched.Port()+1)
		}
	}
	return e.sdpRTCP
}

// routes computes the routes of e's two sockets toward o.
func (e *endpoint) routes() (rtp, rtcp *route) {
	o := e.other()
	if o == nil || e.disabled || o.disabled {
		return &route{drop: true}, &route{drop: true}
	}
	rtp = &route{expect: e.latched, out: o.rtp.udp, dst: o.dest(), rate: e.rate, rec: e.c.rec, recCh: e.side}
	if e.mux && !o.mux {
		rtp.demux, rtp.rtcpOut, rtp.rtcpDst = true, o.rtcp.udp, o.destRTCP()
	}
	rtcp = &route{expect: e.latchedRTCP, out: o.rtcp.udp, dst: o.destRTCP()}
	if o.mux {
		rtcp.out, rtcp.dst = o.rtp.udp, o.dest()
	}
	if e.srtp {
		rtp.decrypt, rtcp.decrypt = e.dec, e.dec
	}
	if o.srtp {
		rtp.encrypt, rtcp.encrypt = o.enc, o.enc
	}
	if !e.latched.IsValid() {
		rtp.learn = e.learnParams(false)
	}
	if !e.latchedRTCP.IsValid() {
		rtcp.learn = e.learnParams(true)
	}
	return rtp, rtcp
}

func (e *endpoint) learnParams(rtcp bool) *learnParams {
	lp := &learnParams{want: e.sdp, until: e.learnUntil, isRTP: e.isRTP, mux: e.mux, pts: e.pts, ssrcs: e.ssrcs, ssrc: e.ssrc}
	if rtcp {
		lp.want = e.sdpRTCP
	}
	if e.sdp.IsValid() {
		lp.sdpIP = e.sdp.Addr()
	}
	if e.latched.IsValid() {
		lp.latchedIP = e.latched.Addr()
	}
	if sd := e.sideOf(); sd != nil {
		lp.strict, lp.receivedFrom = sd.Strict, sd.ReceivedFrom
	} else {
		lp.strict = true
	}
	return lp
}

// fastPathEntry is the XDP view of a route: forward only when latched
// and the destination is known; everything else goes to the socket.
func fastPathEntry(r *route) bpf.Session {
	switch {
	case r.drop:
		return bpf.Session{Action: bpf.ActionDrop}
	case r.decrypt != nil || r.encrypt != nil || !r.expect.IsValid() || !r.dst.IsValid():
		return bpf.Session{Action: bpf.ActionPass}
	}
	s := bpf.Session{
		Action: bpf.ActionForward,
		Expect: r.expect,
		OutSrc: r.out.local,
		OutDst: r.dst,
		// the RTCP socket's route has rate 0: no quality tracking there
		ClockRate: r.rate,
		Record:    r.rec != nil,
	}
	if r.demux {
		s.RTCPDemux = true
		s.RTCPSrcPort = r.rtcpOut.local.Port()
		s.RTCPDst = r.rtcpDst
	}
	return s
}

// learnable decides whether a packet from src arriving at socket s (with
// latching rules lp) may latch it — the RTP Bleed defence: it must look
// like this call's media (RTP version, payload type, SSRC) and come from
// the SDP address or, inside the learning window, from the SDP's or the
// signalling's IP address. Once one of the endpoint's sockets has
// latched, a candidate on the other (RTCP, a different source) must carry
// the same SSRC.
func (s *sock) learnable(lp *learnParams, src netip.AddrPort, p []byte, now int64) bool {
	if lp == nil {
		return false
	}
	var ssrc uint32
	if s.isRTCP || (lp.mux && looksRTCP(p)) {
		if !looksRTCP(p) {
			return false
		}
		ssrc = uint32(p[4])<<24 | uint32(p[5])<<16 | uint32(p[6])<<8 | uint32(p[7]) // the sender's
	} else {
		if lp.isRTP && !looksRTP(p, &lp.pts) {
			return false
		}
		ssrc = ssrcOf(p)
	}
	if lp.isRTP || s.isRTCP {
		switch {
		case len(lp.ssrcs) > 0:
			if !slices.Contains(lp.ssrcs, ssrc) {
				return false
			}
		case lp.ssrc != 0 && ssrc != lp.ssrc:
			return false
		}
	}
	if lp.want.IsValid() && src == lp.want {
		return true
	}
	if now > lp.until || lp.strict {
		return false
	}
	a := src.Addr()
	switch {
	case lp.sdpIP.IsValid() && a == lp.sdpIP:
		return true
	case lp.receivedFrom.IsValid() && a == lp.receivedFrom:
		return true
	case s.isRTCP && lp.latchedIP.IsValid() && a == lp.latchedIP:
		return true
	}
	return false
}

func looksRTP(p []byte, pts *[2]uint64) bool {
	if len(p) < 12 || p[0]>>6 != 2 {
		return false
	}
	pt := p[1] & 0x7f
	if pt >= 64 && pt < 96 { // RTCP range under rtcp-mux (RFC 5761)
		return false
	}
	return pts[pt>>6]&(1<<(pt&63)) != 0
}

func looksRTCP(p []byte) bool {
	return len(p) >= 8 && p[0]>>6 == 2 && p[1] >= 200 && p[1] <= 207
}

func ssrcOf(p []byte) uint32 {
	if len(p) < 12 {
		return 0
	}
	return uint32(p[8])<<24 | uint32(p[9])<<16 | uint32(p[10])<<8 | uint32(p[11])
}

func setPTs(pts *[2]uint64, list []uint8) {
	*pts = [2]uint64{}
	for _, pt := range list {
		if pt < 128 {
			pts[pt>>6] |= 1 << (pt & 63)
		}
	}
}
