package relay

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/relay/xsk"
)

// Parties on the relay's own host, socketless. A PBX, media server or
// test tool in the relay's network namespace (loopback, or one of the
// namespace's own addresses) sends to a relay port over the kernel's
// loopback path: its packets never pass the XDP program of a device, so
// no AF_XDP socket sees them, and a socketless port has no socket for the
// kernel to deliver them to. What the relay sends such a party cannot
// leave through an AF_XDP TX ring either (a local destination has no
// next hop).
//
// So a leg whose party is local gets what a socket relay gives every leg:
// its two ports are bound as kernel sockets (the ports are in
// ip_local_reserved_ports, which keeps them from ephemeral use only; an
// explicit bind is allowed) and read by the relay's poller, and the relay
// sends to that party through them. The rest stays socketless: the other
// party's leg, and whatever reaches the local leg's ports from outside
// (through the XDP program: a remote source is dropped or learned there
// as before), go through XDP and AF_XDP. A call with remote parties only
// binds nothing. Legs so bound: xtrunk_relay_local_legs.
//
// A leg is local when an address of its party — SDP or RTCP — is an
// address of the namespace. The SDP decides at offer/answer (and again at
// a re-INVITE that moves the party, and when a restarted relay adopts the
// call). A leg never latches to a local source its SDP did not name
// (spoof.go): a packet from a local address that arrives on a device is
// forged, and one that arrives over lo reaches only a leg already bound
// because its SDP was local. A party that is local but whose SDP is not is
// not served: its packets never reach the relay.

// isLocal says whether a is an address of the relay's network namespace
// (hostAddrs, spoof.go).
func (x *xdpPath) isLocal(a netip.Addr) bool { return x.r.isLocal(a) }

// localParty is the first of e's party addresses that is local, if any.
func (x *xdpPath) localParty(e *endpoint) netip.AddrPort {
	for _, a := range []netip.AddrPort{e.sdp, e.sdpRTCP, e.latched, e.latchedRTCP} {
		if a.IsValid() && x.isLocal(a.Addr()) {
			return a
		}
	}
	return netip.AddrPort{}
}

// bindLocal binds e's two ports as kernel sockets, read by a poller, when
// its party is on the relay's host (socketless; see above). Once bound
// they stay so until the endpoint is released. A failure is logged and
// counted: the leg is then received from remote sources only, as before.
// Caller holds c.mu.
func (r *Relay) bindLocal(e *endpoint) {
	x := r.xp
	if x == nil || e.kernel || e.rtp == nil || e.c.deleted || len(r.pollers) == 0 {
		return
	}
	party := x.localParty(e)
	if !party.IsValid() {
		return
	}
	ev := r.log.Error().Str("call_id", e.c.id).Stringer("local", e.local).Stringer("party", party)
	rtpK, rtcpK, err := r.binder.bind(e.local.Addr(), int(e.local.Port()))
	if err != nil {
		x.m.localErrors.Inc()
		ev.Err(err).Msg("socketless: a party on the relay's host, but its leg's ports could not be bound; its media to the relay is not received")
		return
	}
	if !e.rtp.udp.attach(rtpK.fd) {
		unix.Close(rtpK.fd)
		unix.Close(rtcpK.fd)
		return // released meanwhile
	}
	if !e.rtcp.udp.attach(rtcpK.fd) {
		unix.Close(rtcpK.fd)
		return
	}
	e.kernel = true
	x.m.localLegs.Inc()
	p := r.pollers[int(r.nextPoll.Add(1))%len(r.pollers)]
	for _, s := range []*sock{e.rtp, e.rtcp} {
		if err := p.add(s); err != nil {
			x.m.localErrors.Inc()
			ev.Err(err).Msg("socketless: a local party's port could not be polled; its media to the relay is not received")
		}
	}
	r.log.Info().Str("call_id", e.c.id).Stringer("local", e.local).Stringer("party", party).
		Msg("socketless: party on the relay's host; its leg's two ports bound as kernel sockets")
}

// unbindLocal accounts for the end of a local leg (its descriptors are
// closed with its ports). Caller holds c.mu.
func (r *Relay) unbindLocal(e *endpoint) {
	if e.kernel && r.xp != nil {
		e.kernel = false
		r.xp.m.localLegs.Dec()
	}
}

// attach gives a socketless port the descriptor of a kernel socket bound
// to its address; false when the port is closed (or has one already).
func (s *udpSock) attach(fd int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.fd >= 0 {
		return false
	}
	s.fd = fd
	return true
}

// sendSock sends p to dst through s's kernel socket, when it has one
// (a local party's port); had is false when it has none.
func (s *udpSock) sendSock(p []byte, dst netip.AddrPort) (had bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 || s.closed {
		return false, nil
	}
	return true, sendto(s.fd, p, dst)
}

// sendBatch sends what a poller's batch (a local party's packets, read on
// its leg's kernel socket) queued from from, a socketless port, through
// the AF_XDP path, and flushes the TX rings written. It returns how many
// were not sent.
func (x *xdpPath) sendBatch(from netip.AddrPort, b *batch) int {
	if b.xscratch == nil {
		b.xscratch = make([]byte, max(xsk.DefaultFrameSize, maxPacket)+ethHeaderLen+ipv6HeaderLen+udpHeaderLen)
	}
	failed := 0
	for i := range b.nout {
		iov := &b.outIovs[i]
		p := unsafe.Slice(iov.Base, iov.Len)
		if x.closed.Load() || !x.send(from, p, sockaddrToAddrPort(&b.outName[i]), 0, b.xscratch, &b.xdirty) {
			failed++
		}
	}
	for _, port := range b.xdirty {
		x.flushPort(port)
	}
	b.xdirty = b.xdirty[:0]
	b.nout = 0
	return failed
}
