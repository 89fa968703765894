package relay

import (
	"errors"
	"net/netip"
)

// The userspace packet path: a poller (poll.go) reads a batch of a socket, admits
// the party's packets (learning where it sends from, authenticating
// SRTP), and forwards them to the other party. The fast path (XDP)
// forwards what the routes installed there cover without reaching here.

// pktBatch is a batch of datagrams received at one relay port, and the
// queue of what is forwarded: a socket's recvmmsg/sendmmsg batch (batch),
// or the packets of one port in a pass over an AF_XDP ring (xdpBatch).
// The packet logic in handle is the same for both.
type pktBatch interface {
	count() int
	// packet i's UDP payload (with room to grow: SRTP encrypts in place)
	// and source
	packet(i int) ([]byte, netip.AddrPort)
	// queue adds p, valid until flush, to send from out to dst; every
	// queued datagram of one flush has the same out
	queue(out *udpSock, p []byte, dst netip.AddrPort)
	// flush sends what was queued and returns how many were refused
	flush() int
}

// handle forwards one batch received on s. It allocates nothing.
func (r *Relay) handle(s *sock, b pktBatch) {
	now := monoNow()
	rt := s.route.Load()
	var cur *udpSock
	var pkts, bytes, drops uint64
	party := false   // a packet of the call's own party arrived
	persist := false // an SRTP context needs the call record written before sending
	for i := range b.count() {
		p, src := b.packet(i)
		var isRTCP bool
		var reason string
		rt, p, isRTCP, reason = r.admit(s, rt, p, src, now, &persist)
		if reason != "" {
			drops++
			r.m.drop(reason)
			continue
		}
		// only the party's packets are media: a scanner spraying the port
		// must not keep a dead call from timing out
		party = true
		if !isRTCP {
			s.quality.update(p, now, rt.rate)
			if rt.rec != nil {
				rt.rec.Packet(rt.recCh, p, now)
			}
		}
		out, dst := rt.out, rt.dst
		if rt.demux && looksRTCP(p) {
			out, dst = rt.rtcpOut, rt.rtcpDst
		}
		if !dst.IsValid() {
			drops++
			r.m.drop(dropNoDestination)
			continue
		}
		if rt.encrypt != nil {
			q, err := rt.encrypt.encrypt(p, isRTCP)
			if err != nil {
				drops++
				r.m.drop(srtpDropReason(err, dropSRTPEncrypt))
				continue
			}
			p = q
			persist = persist || rt.encrypt.dirty()
		}
		if cur != nil && out != cur {
			if persist {
				r.persistNow(s.ep.c)
				persist = false
			}
			s.errors.Add(uint64(b.flush()))
		}
		cur = out
		b.queue(out, p, dst)
		pkts++
		bytes += uint64(len(p))
	}
	if persist {
		// before the packets leave: a restart must find the leases that
		// cover what was encrypted
		r.persistNow(s.ep.c)
	}
	if cur != nil {
		s.errors.Add(uint64(b.flush()))
	}
	if party {
		s.lastNs.Store(now)
	}
	s.packets.Add(pkts)
	s.bytes.Add(bytes)
	s.drops.Add(drops)
	r.m.userspace(pkts, bytes)
}

// admit checks one packet received on s from src under route rt: the
// party's (or one it may learn from), authenticated and decrypted. It
// returns the route for the rest of the batch (latching changes it), the
// packet, whether it is RTCP, and a drop reason when it is not forwarded.
// persist is set when a decrypt context needs the call record written.
func (r *Relay) admit(s *sock, rt *route, p []byte, src netip.AddrPort, now int64, persist *bool) (*route, []byte, bool, string) {
	if len(p) == 0 {
		// an empty datagram carries no media (and has no byte to queue)
		return rt, nil, false, dropNotLearnable
	}
	if rt == nil || rt.drop {
		return rt, nil, false, dropSession
	}
	isRTCP := s.isRTCP || looksRTCP(p)
	learning := !rt.expect.IsValid()
	if !learning && src != rt.expect {
		return rt, nil, false, dropForeignSource
	}
	if learning && !s.learnable(rt.learn, src, p, now) {
		return rt, nil, false, dropNotLearnable
	}
	if learning && r.spoofedLatch(rt.learn, src) {
		return rt, nil, false, dropSpoofed
	}
	if rt.decrypt != nil {
		// SRTP: nothing is latched or forwarded before it authenticates
		q, err := rt.decrypt.decrypt(p, isRTCP)
		if err != nil {
			return rt, nil, false, srtpDropReason(err, dropSRTPAuth)
		}
		p = q
		*persist = *persist || rt.decrypt.dirty()
	}
	if learning {
		rt = r.latch(s, src, p)
		if rt == nil || rt.drop || rt.expect != src {
			return rt, nil, false, dropNotLearnable
		}
	}
	return rt, p, isRTCP, ""
}

// srtpDropReason is the drop label of an SRTP context's refusal; other
// errors are labelled def.
func srtpDropReason(err error, def string) string {
	switch {
	case errors.Is(err, errSSRCLimit):
		return dropSRTPSSRCs
	case errors.Is(err, errIndexUsed):
		return dropSRTPIndex
	case errors.Is(err, errKeyExpired):
		return dropSRTPEncrypt
	}
	return def
}

// latch locks endpoint s.ep (or its RTCP) to src and reinstalls the
// stream's routes; it returns s's new route.
func (r *Relay) latch(s *sock, src netip.AddrPort, p []byte) *route {
	e := s.ep
	c := e.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted {
		return nil
	}
	if s.isRTCP {
		if !e.latchedRTCP.IsValid() {
			e.latchedRTCP = src
			if e.ssrc == 0 && looksRTCP(p) {
				// the sender's SSRC: the RTP socket's candidates must carry it
				e.ssrc = uint32(p[4])<<24 | uint32(p[5])<<16 | uint32(p[6])<<8 | uint32(p[7])
			}
		}
	} else if !e.latched.IsValid() {
		e.latched = src
		if !looksRTCP(p) {
			e.ssrc = ssrcOf(p)
		}
	}
	r.log.Info().Str("call_id", c.id).Str("tag", e.sideOf().Tag).Bool("rtcp", s.isRTCP).
		Stringer("local", s.udp.local).Stringer("source", src).Msg("latched")
	r.m.latched()
	r.bindLocal(e) // a source on the relay's host needs the kernel's sockets
	r.installStream(c, e.st)
	r.persist(c)
	return s.route.Load()
}
