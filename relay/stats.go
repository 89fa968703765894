package relay

import (
	"net/netip"

	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
)

// sockStats are one socket's counters, both paths added up.
type sockStats struct {
	packets, bytes, errors, drops uint64
	fast, user                    uint64 // packets forwarded by XDP / by userspace
	lastNs                        int64
}

func (r *Relay) sockStats(s *sock) sockStats {
	if s.final != nil {
		return s.final.st
	}
	var ls bpf.LegStats
	if r.fp != nil {
		var err error
		if ls, err = r.fp.LegStats(s.udp.local); err != nil {
			ls = bpf.LegStats{}
		}
	}
	return userAndFast(s, ls)
}

// userAndFast adds s's userspace counters and its fast-path ones, ls.
func userAndFast(s *sock, ls bpf.LegStats) sockStats {
	st := sockStats{
		user:   s.packets.Load(),
		bytes:  s.bytes.Load() + ls.Bytes,
		errors: s.errors.Load(),
		drops:  s.drops.Load() + ls.Drops,
		lastNs: max(s.lastNs.Load(), int64(ls.LastNs)),
		fast:   ls.Packets,
	}
	st.packets = st.user + st.fast
	return st
}

func familyOf(a netip.Addr) string {
	if a.Is6() {
		return "IPv6"
	}
	return "IPv4"
}

// quality merges a socket's fast-path and userspace reception statistics.
func (r *Relay) quality(s *sock) (bpf.Quality, bool) {
	if s.final != nil {
		return s.final.q, s.final.qok
	}
	uq, uok := s.quality.snapshot()
	var fq bpf.Quality
	var fok bool
	if r.fp != nil {
		fq, fok, _ = r.fp.Quality(s.udp.local)
	}
	return mergeQuality(fq, fok, uq, uok)
}

func endpointOf(a netip.AddrPort) ng.Endpoint {
	if !a.IsValid() {
		return ng.Endpoint{}
	}
	return ng.Endpoint{Family: familyOf(a.Addr()), Address: a.Addr().String(), Port: int64(a.Port())}
}

// stats renders a call in rtpengine's query/delete shape: totals, and per
// tag, per media, one RTP and one RTCP stream with the packets received
// from that party. xtrunk adds "fast path" / "userspace" packet counts and
// "drops" per stream and "status" / "timed out" per call; it has no
// per-SSRC quality ("SSRC" at the top) nor a "codec" per media, which
// rtpengine derives from RTCP and its codec handling. Caller holds c.mu.
func (r *Relay) stats(c *call) ng.QueryReply {
	var totRTP, totRTCP sockStats
	q := ng.QueryReply{
		Created:    c.created.Unix(),
		CreatedUs:  int64(c.created.Nanosecond() / 1000),
		LastSignal: c.lastSignal.Unix(),
		Tags:       map[string]ng.Party{},
		Status:     "active",
		TimedOut:   c.timedOut,
	}
	if c.timedOut {
		q.Status = "timed out"
	}
	for i, sd := range c.sides {
		if sd == nil {
			continue
		}
		var medias []ng.Media
		for _, st := range c.streams {
			e := st.ep[i]
			if e == nil {
				continue
			}
			streams := []ng.Stream{r.streamStats(e, e.rtp, sd, &totRTP), r.streamStats(e, e.rtcp, sd, &totRTCP)}
			var mflags []string
			if e.mux {
				mflags = append(mflags, "RTCP-mux")
			}
			medias = append(medias, ng.Media{Index: int64(st.Index), Type: st.Type, Protocol: st.Proto, Streams: streams, Flags: mflags})
		}
		p := ng.Party{Tag: sd.Tag, Created: sd.Created.Unix(), Medias: medias}
		// rtpengine 10 replaced "in dialogue with" by these two lists
		if o := c.sides[1-i]; o != nil && o.Tag != "" {
			p.Subscriptions = []ng.Subscription{{Tag: o.Tag, Type: "offer/answer"}}
		}
		key := sd.Tag
		if key == "" {
			key = "(pending)"
		}
		q.Tags[key] = p
	}
	q.Totals = ng.Totals{
		RTP:  ng.Counts{Packets: int64(totRTP.packets), Bytes: int64(totRTP.bytes), Errors: int64(totRTP.errors)},
		RTCP: ng.Counts{Packets: int64(totRTCP.packets), Bytes: int64(totRTCP.bytes), Errors: int64(totRTCP.errors)},
	}
	return q
}

// streamStats renders one of e's sockets (s, of side sd) as a stream,
// adding its counters to tot.
func (r *Relay) streamStats(e *endpoint, s *sock, sd *side, tot *sockStats) ng.Stream {
	ss := r.sockStats(s)
	add(tot, ss)
	ep, adv := e.latched, e.sdp
	flags := []string{"RTP"}
	if s.isRTCP {
		ep, adv = e.latchedRTCP, e.sdpRTCP
		flags = []string{"RTCP"}
	}
	if !ep.IsValid() {
		ep = adv
	} else {
		flags = append(flags, "confirmed")
	}
	if adv.IsValid() {
		flags = append(flags, "filled")
	}
	out := ng.Stream{
		LocalPort:          int64(s.udp.local.Port()),
		LocalAddress:       s.udp.local.Addr().String(),
		Family:             familyOf(s.udp.local.Addr()),
		Endpoint:           endpointOf(ep),
		AdvertisedEndpoint: endpointOf(adv),
		Flags:              flags,
		Stats: ng.StreamStats{
			Counts: ng.Counts{Packets: int64(ss.packets), Bytes: int64(ss.bytes), Errors: int64(ss.errors)},
			Drops:  int64(ss.drops), FastPath: int64(ss.fast), Userspace: int64(ss.user),
		},
	}
	// like rtpengine, a stream that has seen nothing reports when it was
	// made, so the key is always there
	if ss.lastNs != 0 {
		out.LastPacket = monoToTime(ss.lastNs).Unix()
	} else {
		out.LastPacket = sd.Created.Unix()
	}
	if s.isRTCP {
		return out
	}
	out.SSRC = int64(e.ssrc)
	if q, ok := r.quality(s); ok {
		out.Stats.HasQuality = true
		out.Stats.Expected, out.Stats.Lost = int64(q.Expected), q.Lost
		out.Stats.Jitter, out.Stats.JitterUs = jitterMicros(q)/1000, jitterMicros(q)
		out.SSRC = int64(q.SSRC)
	}
	return out
}

func add(t *sockStats, s sockStats) {
	t.packets += s.packets
	t.bytes += s.bytes
	t.errors += s.errors
	t.drops += s.drops
	t.fast += s.fast
	t.user += s.user
}

// finalStats are a socket's counters and quality read once when its call
// ends, for the delete reply, the metrics (media counters and leg
// quality) and the log line alike: one read of the fast path's per-CPU
// map per socket and call, not one for each of them.
type finalStats struct {
	st   sockStats
	fast bpf.LegStats // the fast path's part of st
	q    bpf.Quality
	qok  bool
}

// freezeStats reads the counters of c's sockets for the last time. Caller
// holds c.mu; c is ending.
func (r *Relay) freezeStats(c *call) {
	for _, st := range c.streams {
		for _, e := range st.ep {
			if e == nil {
				continue
			}
			for _, s := range []*sock{e.rtp, e.rtcp} {
				if s.final != nil {
					continue
				}
				s.final = r.finalStats(s)
			}
		}
	}
}

// finalStats reads s's counters and quality, the fast path's in one
// lookup.
func (r *Relay) finalStats(s *sock) *finalStats {
	f := &finalStats{}
	var fq bpf.Quality
	var fok bool
	if r.fp != nil {
		var err error
		if f.fast, fq, fok, err = r.fp.LegFinal(s.udp.local); err != nil {
			f.fast, fok = bpf.LegStats{}, false
		}
	}
	f.st = userAndFast(s, f.fast)
	uq, uok := s.quality.snapshot()
	f.q, f.qok = mergeQuality(fq, fok, uq, uok)
	return f
}
