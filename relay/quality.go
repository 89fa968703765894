package relay

import (
	"strconv"
	"strings"
	"sync"

	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

// rtpQuality is RFC 3550 reception statistics (A.1 sequence tracking
// without probation, A.8 interarrival jitter) for the packets of one leg
// that the userspace path handled; the XDP program keeps the same for the
// fast path (xtr_quality in bpf/types.h).
type rtpQuality struct {
	mu sync.Mutex
	qstate
}

type qstate struct {
	ssrc     uint32
	rate     uint32
	base     uint32
	max      uint16
	cycles   uint32
	received uint64
	transit  int64
	jitter   uint64 // scaled by 16
}

const (
	maxDropout  = 3000
	maxMisorder = 100
)

// update takes one accepted RTP packet arriving at monotonic time nowNs.
func (q *rtpQuality) update(p []byte, nowNs int64, rate uint32) {
	if rate == 0 || len(p) < 12 || p[0]>>6 != 2 {
		return
	}
	if pt := p[1] & 0x7f; pt >= 64 && pt < 96 {
		return
	}
	seq := uint16(p[2])<<8 | uint16(p[3])
	ts := uint32(p[4])<<24 | uint32(p[5])<<16 | uint32(p[6])<<8 | uint32(p[7])
	ssrc := ssrcOf(p)
	arrival := nowNs / 1000 * int64(rate) / 1000000
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.received == 0 || q.ssrc != ssrc || q.rate != rate {
		q.qstate = qstate{ssrc: ssrc, rate: rate, base: uint32(seq), max: seq, received: 1, transit: arrival - int64(ts)}
		return
	}
	switch delta := seq - q.max; {
	case delta < maxDropout:
		if seq < q.max {
			q.cycles += 1 << 16
		}
		q.max = seq
	case delta <= 65535-maxMisorder:
		q.base, q.max, q.cycles, q.received = uint32(seq), seq, 0, 0
	}
	q.received++
	transit := arrival - int64(ts)
	// modulo 2^32, as RFC 3550 A.8's int arithmetic: the timestamp wraps
	// (it starts anywhere), and a 64-bit difference across the wrap would
	// read as 2^32 of jitter
	d := int64(int32(uint32(transit) - uint32(q.transit)))
	q.transit = transit
	if d < 0 {
		d = -d
	}
	q.jitter += uint64(d) - (q.jitter+8)>>4
}

func (q *rtpQuality) snapshot() (bpf.Quality, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.received == 0 {
		return bpf.Quality{}, false
	}
	ext := q.cycles + uint32(q.max)
	s := bpf.Quality{SSRC: q.ssrc, ClockRate: q.rate, Received: q.received, BaseSeq: q.base, MaxSeqExt: ext,
		Expected: uint64(ext-q.base) + 1, Jitter: q.jitter >> 4}
	s.Lost = int64(s.Expected) - int64(s.Received)
	return s, true
}

// mergeQuality combines the fast path's and userspace's view of one leg:
// a few packets (before latching, or waiting for a neighbour) go through
// userspace, the rest through XDP.
func mergeQuality(fast bpf.Quality, fok bool, user bpf.Quality, uok bool) (bpf.Quality, bool) {
	switch {
	case !fok && !uok:
		return bpf.Quality{}, false
	case !uok:
		return fast, true
	case !fok || fast.SSRC != user.SSRC:
		if fok && fast.Received > user.Received {
			return fast, true
		}
		return user, true
	}
	m := fast
	m.BaseSeq = min(fast.BaseSeq, user.BaseSeq)
	m.MaxSeqExt = max(fast.MaxSeqExt, user.MaxSeqExt)
	m.Received = fast.Received + user.Received
	m.Expected = uint64(m.MaxSeqExt-m.BaseSeq) + 1
	m.Lost = int64(m.Expected) - int64(m.Received)
	if user.Received > fast.Received {
		m.Jitter = user.Jitter
	}
	return m, true
}

// jitterMicros converts RTP clock units to microseconds.
func jitterMicros(q bpf.Quality) int64 {
	if q.ClockRate == 0 {
		return 0
	}
	return int64(q.Jitter * 1000000 / uint64(q.ClockRate))
}

// clockRate is the RTP clock of a stream's first payload type: from its
// rtpmap, else the static table of RFC 3551; 0 when unknown.
func clockRate(m *sdp.Media) uint32 {
	if !m.IsRTP() || len(m.Formats) == 0 {
		return 0
	}
	first := m.Formats[0]
	for _, v := range m.AttrValues("rtpmap") {
		pt, enc, ok := strings.Cut(v, " ")
		if !ok || pt != first {
			continue
		}
		_, rest, ok := strings.Cut(enc, "/")
		if !ok {
			return 0
		}
		rate, _, _ := strings.Cut(rest, "/")
		n, err := strconv.ParseUint(strings.TrimSpace(rate), 10, 32)
		if err != nil {
			return 0
		}
		return uint32(n)
	}
	switch first {
	case "0", "3", "4", "5", "7", "8", "9", "12", "13", "15", "18":
		return 8000
	case "6":
		return 16000
	case "10", "11":
		return 44100
	case "14", "25", "26", "28", "31", "32", "33", "34":
		return 90000
	}
	return 0
}
