package relay

// Per-SSRC packet indexes of an SRTP context: the index pion will use
// for the next packet (so that the relay knows it first), the replay
// window, and the leases and rollover counters a call record keeps so
// that a restarted relay never repeats keystream.

// ssrcState is the relay's view of one SRTP SSRC of a context.
type ssrcState struct {
	ssrc uint32
	// Encrypt side: the index pion will use, computed as pion does
	// (RFC 3711 section 3.3.1), so that it is known before pion uses it.
	index   uint64
	started bool
	leased  bool
	lease   uint64 // the record covers indexes up to here
	// After a restart: indexes at or below floor may have been used by
	// the previous process; pending until the first packet sets where
	// the index goes on (off is added to the sequence numbers sent).
	floor    uint64
	hasFloor bool
	pending  bool
	off      uint16
	// Decrypt side: the index of the highest packet authenticated (index,
	// started, as pion keeps it), which of the replayWindow below it have
	// been seen, and the rollover counter the record holds.
	win [replayWindow / 64]uint64
	roc uint32
}

// replayWindow is how far below the highest index an SRTP packet is still
// accepted, once (RFC 3711 section 3.3.2).
const replayWindow = 128

// replayed says whether a packet of index idx (from guess) was seen or is
// too old to tell.
func (s *ssrcState) replayed(idx uint64) bool {
	if !s.started || idx > s.index {
		return false
	}
	k := s.index - idx
	return k >= replayWindow || s.win[k/64]&(1<<(k%64)) != 0
}

// accept records an authenticated packet: the index moves as pion moves it
// (advance) and the window with it.
func (s *ssrcState) accept(seq uint16, idx uint64, d int32) {
	if !s.started {
		s.advance(seq, d)
		s.win = [replayWindow / 64]uint64{1}
		return
	}
	if d > 0 {
		n := uint64(d)
		switch {
		case n >= replayWindow:
			s.win = [replayWindow / 64]uint64{}
		case n >= 64:
			s.win[1], s.win[0] = s.win[0]<<(n-64), 0
		default:
			s.win[1], s.win[0] = s.win[1]<<n|s.win[0]>>(64-n), s.win[0]<<n
		}
	}
	s.advance(seq, d)
	k := s.index - idx
	s.win[k/64] |= 1 << (k % 64)
}

type rtcpState struct {
	ssrc   uint32
	leased bool
	lease  uint32
}

// guess is the index pion's context gives the next packet with sequence
// number seq (RFC 3711 section 3.3.1; pion/srtp v2 context.go
// nextRolloverCount), and the step advance takes.
func (s *ssrcState) guess(seq uint16) (uint64, int32) {
	if !s.started {
		return s.index&^0xffff | uint64(seq), 0
	}
	const median, size = 1 << 15, 1 << 16
	roc, local, q := uint32(s.index>>16), int32(s.index&0xffff), int32(seq)
	d := q - local
	if s.index > median {
		switch {
		case local < median && q-local > median:
			roc, d = roc-1, q-local-size
		case local >= median && local-median > q:
			roc, d = roc+1, q-local+size
		}
	}
	return uint64(roc)<<16 | uint64(seq), d
}

// advance moves the index as pion does after a packet (updateRolloverCount).
func (s *ssrcState) advance(seq uint16, d int32) {
	if !s.started {
		s.index, s.started = s.index&^0xffff|uint64(seq), true
		return
	}
	if d > 0 {
		s.index += uint64(d)
	}
}

// srtpState is what a call record keeps of one SRTP context, so that a
// restarted relay rebuilds it without repeating keystream: for an encrypt
// context the index leases (where indexes may be used up to), for a
// decrypt context the rollover counters (without which a call past its
// first 65536 packets would fail authentication after a restart).
type srtpState struct {
	RTP  [][2]uint64 `json:"rtp,omitempty"`  // [SSRC, lease] or [SSRC, ROC]
	RTCP [][2]uint64 `json:"rtcp,omitempty"` // [SSRC, SRTCP index lease]
}

// dirty says whether the call record is behind the context.
func (c *cryptoCtx) dirty() bool { return c.moved.Load() != c.saved.Load() }

// stored says the record now holds the state of version v (from state).
func (c *cryptoCtx) stored(v uint64) { c.saved.Store(v) }

// state snapshots what the record must hold, and its version.
func (c *cryptoCtx) state() (*srtpState, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.moved.Load()
	st := &srtpState{}
	for _, s := range c.ssrcs {
		switch {
		case c.isDec:
			st.RTP = append(st.RTP, [2]uint64{uint64(s.ssrc), uint64(s.roc)})
		case s.leased || s.pending:
			st.RTP = append(st.RTP, [2]uint64{uint64(s.ssrc), s.lease})
		}
	}
	for _, s := range c.rssrcs {
		if !c.isDec && s.leased {
			st.RTCP = append(st.RTCP, [2]uint64{uint64(s.ssrc), uint64(s.lease)})
		}
	}
	if st.RTP == nil && st.RTCP == nil {
		return nil, v
	}
	return st, v
}

// restore sets up a fresh context from a record's state.
func (c *cryptoCtx) restore(st *srtpState) {
	if st == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range st.RTP {
		if len(c.ssrcs) >= maxSSRCs {
			break
		}
		ssrc := uint32(v[0])
		if c.isDec {
			c.rtp.SetROC(ssrc, uint32(v[1]))
			c.ssrcs = append(c.ssrcs, ssrcState{ssrc: ssrc, roc: uint32(v[1]), index: v[1] << 16})
			continue
		}
		c.ssrcs = append(c.ssrcs, ssrcState{ssrc: ssrc, lease: v[1], leased: true, floor: v[1], hasFloor: true, pending: true})
	}
	for _, v := range st.RTCP {
		if len(c.rssrcs) >= maxSSRCs || c.isDec {
			break
		}
		ssrc, lease := uint32(v[0]), uint32(min(v[1], 1<<31-1))
		c.rtcp.SetIndex(ssrc, lease) // the next SRTCP index is lease+1
		c.rssrcs = append(c.rssrcs, rtcpState{ssrc: ssrc, lease: lease, leased: true})
	}
}
