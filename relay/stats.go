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
	st := sockStats{
		user:   s.packets.Load(),
		bytes:  s.bytes.Load(),
		errors: s.errors.Load(),
		drops:  s.drops.Load(),
		lastNs: s.lastNs.Load(),
	}
	if r.fp != nil {
		if ls, err := r.fp.LegStats(s.udp.local); err == nil {
			st.fast = ls.Packets
			st.bytes += ls.Bytes
			st.drops += ls.Drops
			st.lastNs = max(st.lastNs, int64(ls.LastNs))
		}
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
	uq, uok := s.quality.snapshot()
	var fq bpf.Quality
	var fok bool
	if r.fp != nil {
		fq, fok, _ = r.fp.Quality(s.udp.local)
	}
	return mergeQuality(fq, fok, uq, uok)
}

func endpointDict(a netip.AddrPort) ng.Dict {
	if !a.IsValid() {
		return ng.Dict{}
	}
	return ng.Dict{"family": familyOf(a.Addr()), "address": a.Addr().String(), "port": int64(a.Port())}
}

// stats renders a call in rtpengine's query/delete shape: totals, and per
// tag, per media, one RTP and one RTCP stream with the packets received
// from that party. xtrunk adds "fast path" / "userspace" packet counts and
// "drops" per stream and "status" / "timed out" per call; it has no
// per-SSRC quality ("SSRC" at the top) nor a "codec" per media, which
// rtpengine derives from RTCP and its codec handling. Caller holds c.mu.
func (r *Relay) stats(c *call) ng.Dict {
	var totRTP, totRTCP sockStats
	tags := ng.Dict{}
	for i, sd := range c.sides {
		if sd == nil {
			continue
		}
		var medias []any
		for _, st := range c.streams {
			e := st.ep[i]
			if e == nil {
				continue
			}
			var streams []any
			for _, s := range []*sock{e.rtp, e.rtcp} {
				ss := r.sockStats(s)
				ep, adv := e.latched, e.sdp
				flags := []any{"RTP"}
				if s.isRTCP {
					ep, adv = e.latchedRTCP, e.sdpRTCP
					flags = []any{"RTCP"}
					add(&totRTCP, ss)
				} else {
					add(&totRTP, ss)
				}
				if !ep.IsValid() {
					ep = adv
				} else {
					flags = append(flags, "confirmed")
				}
				if adv.IsValid() {
					flags = append(flags, "filled")
				}
				d := ng.Dict{
					"local port":          int64(s.udp.local.Port()),
					"local address":       s.udp.local.Addr().String(),
					"family":              familyOf(s.udp.local.Addr()),
					"endpoint":            endpointDict(ep),
					"advertised endpoint": endpointDict(adv),
					"flags":               flags,
					"stats": ng.Dict{
						"packets":   int64(ss.packets),
						"bytes":     int64(ss.bytes),
						"errors":    int64(ss.errors),
						"drops":     int64(ss.drops),
						"fast path": int64(ss.fast),
						"userspace": int64(ss.user),
					},
				}
				// like rtpengine, a stream that has seen nothing reports
				// when it was made, so the key is always there
				if ss.lastNs != 0 {
					d["last packet"] = monoToTime(ss.lastNs).Unix()
				} else {
					d["last packet"] = sd.Created.Unix()
				}
				if !s.isRTCP && e.ssrc != 0 {
					d["SSRC"] = int64(e.ssrc)
				}
				if !s.isRTCP {
					if q, ok := r.quality(s); ok {
						stats := d["stats"].(ng.Dict)
						stats["expected"] = int64(q.Expected)
						stats["lost"] = q.Lost
						stats["jitter"] = jitterMicros(q) / 1000
						stats["jitter us"] = jitterMicros(q)
						d["SSRC"] = int64(q.SSRC)
					}
				}
				streams = append(streams, d)
			}
			mflags := []any{}
			if e.mux {
				mflags = append(mflags, "RTCP-mux")
			}
			medias = append(medias, ng.Dict{
				"index":    int64(st.Index),
				"type":     st.Type,
				"protocol": st.Proto,
				"streams":  streams,
				"flags":    mflags,
			})
		}
		t := ng.Dict{
			"tag":     sd.Tag,
			"created": sd.Created.Unix(),
			"medias":  medias,
		}
		// rtpengine 10 replaced "in dialogue with" by these two lists
		subs := []any{}
		if o := c.sides[1-i]; o != nil && o.Tag != "" {
			subs = append(subs, ng.Dict{"tag": o.Tag, "type": "offer/answer"})
		}
		t["subscriptions"], t["subscribers"] = subs, subs
		key := sd.Tag
		if key == "" {
			key = "(pending)"
		}
		tags[key] = t
	}
	reply := ng.Dict{
		"created":     c.created.Unix(),
		"created_us":  int64(c.created.Nanosecond() / 1000),
		"last signal": c.lastSignal.Unix(),
		"tags":        tags,
		"totals": ng.Dict{
			"RTP":  ng.Dict{"packets": int64(totRTP.packets), "bytes": int64(totRTP.bytes), "errors": int64(totRTP.errors)},
			"RTCP": ng.Dict{"packets": int64(totRTCP.packets), "bytes": int64(totRTCP.bytes), "errors": int64(totRTCP.errors)},
		},
	}
	if c.timedOut {
		reply["timed out"] = int64(1)
		reply["status"] = "timed out"
	} else {
		reply["status"] = "active"
	}
	return reply
}

func add(t *sockStats, s sockStats) {
	t.packets += s.packets
	t.bytes += s.bytes
	t.errors += s.errors
	t.drops += s.drops
	t.fast += s.fast
	t.user += s.user
}
