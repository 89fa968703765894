package bpf

// A leg's counters: the fast path's statistics of one relay address:port
// (xtr_legs, at the session's index). The readers below merge a slice of
// views, as they did when legs were per CPU; today there is one.

// leg reads key's counters; nil when key has no session.
func (d *Dataplane) leg(k Key) ([]relayXtrLeg, error) {
	d.portMu.Lock()
	e, ok := d.live[k]
	d.portMu.Unlock()
	if !ok {
		return nil, nil
	}
	var v relayXtrLeg
	if err := d.objs.XtrLegsV3.Lookup(e.idx, &v); err != nil {
		return nil, err
	}
	return []relayXtrLeg{v}, nil
}

// LegStats sums the per-CPU counters of key. A key without counters yet
// reads as zero.
func (d *Dataplane) LegStats(k Key) (LegStats, error) {
	per, err := d.leg(k)
	return legStats(per), err
}

// Quality reads the fast path's RFC 3550 statistics of key, merged over
// CPUs (a flow normally stays on one); ok is false when XDP has seen no RTP
// there.
func (d *Dataplane) Quality(k Key) (q Quality, ok bool, err error) {
	per, err := d.leg(k)
	if err != nil {
		return q, false, err
	}
	q, ok = legQuality(per)
	return q, ok, nil
}

// LegFinal is LegStats and Quality from one read of key's per-CPU
// counters: what a call's end reads of each of its sockets.
func (d *Dataplane) LegFinal(k Key) (s LegStats, q Quality, ok bool, err error) {
	per, err := d.leg(k)
	if err != nil {
		return s, q, false, err
	}
	q, ok = legQuality(per)
	return legStats(per), q, ok, nil
}

func legStats(per []relayXtrLeg) LegStats {
	var s LegStats
	for _, c := range per {
		s.Packets += c.Packets
		s.Bytes += c.Bytes
		s.Drops += c.Drops
		s.RecLost += c.RecLost
		s.LastNs = max(s.LastNs, c.LastNs)
	}
	return s
}

func legQuality(per []relayXtrLeg) (q Quality, ok bool) {
	main := -1
	for i, c := range per {
		if c.Received > 0 && (main < 0 || c.Received > per[main].Received) {
			main = i
		}
	}
	if main < 0 {
		return q, false
	}
	m := per[main]
	base, ext := m.BaseSeq, m.Cycles+m.MaxSeq
	received := uint64(0)
	for _, c := range per {
		if c.Received == 0 || c.Ssrc != m.Ssrc {
			continue
		}
		received += c.Received
		base = min(base, c.BaseSeq)
		ext = max(ext, c.Cycles+c.MaxSeq)
	}
	q = Quality{SSRC: m.Ssrc, ClockRate: m.ClockRate, Received: received, BaseSeq: base, MaxSeqExt: ext,
		Expected: uint64(ext-base) + 1, Jitter: m.Jitter >> 4}
	q.Lost = int64(q.Expected) - int64(q.Received)
	return q, true
}
