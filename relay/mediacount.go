package relay

import "github.com/prometheus/client_golang/prometheus"

// Media counters per interface, direction and path:
//
//	xtrunk_relay_media_packets_total{interface,direction,path}
//	xtrunk_relay_media_bytes_total{interface,direction,path}
//
// interface is the logical interface (customer, carrier), direction "in"
// (received from the party on that interface and forwarded) or "out"
// (sent to the party on that interface), path "xdp" or "userspace". Each
// socket's counters (the userspace path's atomics, the fast path's leg
// statistics) are read by the janitor every second and at the call's
// end, and what grew since the last read is added: the counters are
// monotonic across calls ending, at most a second behind.

// sockSeen is what countMedia last added for a socket. Guarded by the
// call's mu.
type sockSeen struct {
	userPkts, userBytes, fastPkts, fastBytes uint64
}

func newMediaCounters() (pkts, bytes *prometheus.CounterVec) {
	l := []string{"interface", "direction", "path"}
	pkts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_relay_media_packets_total",
		Help: "RTP and RTCP packets forwarded, by logical interface, direction (in: from the party there, out: to it) and path (xdp, userspace)."}, l)
	bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_relay_media_bytes_total",
		Help: "UDP payload bytes forwarded, by logical interface, direction and path."}, l)
	return pkts, bytes
}

// countMedia adds what c's sockets forwarded since the last count and
// returns the last packet seen on any of them, by either path (monotonic
// ns; 0 if none): the janitor's sweep needs both, from one read of each
// socket's fast-path counters. Caller holds c.mu.
func (r *Relay) countMedia(c *call) (lastNs int64) {
	for _, st := range c.streams {
		for i, e := range st.ep {
			if e == nil {
				continue
			}
			out := ""
			if o := st.ep[1-i]; o != nil && o.iface != nil {
				out = o.iface.Name
			}
			for _, s := range []*sock{e.rtp, e.rtcp} {
				lastNs = max(lastNs, r.countSock(s, e.iface.Name, out))
			}
		}
	}
	return lastNs
}

// countSock adds one socket's growth: "in" on in, and "out" on out (the
// other party's interface; "" when it has none yet). It returns the last
// packet the socket saw, by either path (monotonic ns).
func (r *Relay) countSock(s *sock, in, out string) (lastNs int64) {
	now := sockSeen{userPkts: s.packets.Load(), userBytes: s.bytes.Load()}
	lastNs = s.lastNs.Load()
	if s.final != nil {
		// the call is ending: its last read of the fast path
		now.fastPkts, now.fastBytes = s.final.fast.Packets, s.final.fast.Bytes
		lastNs = max(lastNs, int64(s.final.fast.LastNs))
	} else if r.fp != nil {
		if ls, err := r.fp.LegStats(s.udp.local); err == nil {
			now.fastPkts, now.fastBytes = ls.Packets, ls.Bytes
			lastNs = max(lastNs, int64(ls.LastNs))
		}
	}
	prev := s.seen
	s.seen = now
	add := func(path string, pkts, bytes uint64) {
		if pkts == 0 && bytes == 0 {
			return
		}
		r.m.mediaPkts.WithLabelValues(in, "in", path).Add(float64(pkts))
		r.m.mediaBytes.WithLabelValues(in, "in", path).Add(float64(bytes))
		if out != "" {
			r.m.mediaPkts.WithLabelValues(out, "out", path).Add(float64(pkts))
			r.m.mediaBytes.WithLabelValues(out, "out", path).Add(float64(bytes))
		}
	}
	// a counter that went back (a fast-path entry made again) restarts
	// from zero rather than subtracting
	add("userspace", grow(prev.userPkts, now.userPkts), grow(prev.userBytes, now.userBytes))
	add("xdp", grow(prev.fastPkts, now.fastPkts), grow(prev.fastBytes, now.fastBytes))
	return lastNs
}

func grow(prev, now uint64) uint64 {
	if now < prev {
		return now
	}
	return now - prev
}
