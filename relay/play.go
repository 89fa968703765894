package relay

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/wav"
)

// Media playback: rtpengine's "play media" and "stop media" NG commands,
// for G.711 WAV files (package wav). The relay sends the file's samples, in
// 20 ms RTP packets with their own SSRC, sequence numbers and timestamps,
// from its own port of the selected party's audio stream to that party
// (where it latched, else where its SDP said), from userspace: the fast
// path keeps forwarding whatever the other party sends.

// frameSamples is one 20 ms frame of 8 kHz G.711, one byte per sample.
const (
	frameSamples = 160
	frameTime    = 20 * time.Millisecond
)

// player is one playback to one party; Relay.plays maps playKey to it.
type player struct {
	cancel context.CancelFunc
	done   chan struct{}
	frame  atomic.Int64 // the last frame sent, for stop media's last-frame-pos
}

func playKey(callID, tag string) string { return callID + "\x00" + tag }

// playMedia serves "play media": it starts playing the file or blob to
// the party named by from-tag (or to every party with the flag "all"),
// replacing a playback already running there, and replies with the
// media's duration in ms.
func (r *Relay) playMedia(req ng.Dict) ng.Dict {
	p, err := ng.DecodePlayMedia(req)
	if err != nil {
		return errReply(err)
	}
	raw, err := mediaBytes(p)
	if err != nil {
		return errReply(err)
	}
	m, err := wav.Parse(raw)
	if err != nil {
		return errReply(err)
	}
	c, err := r.knownCall(p.CallID)
	if err != nil {
		return errReply(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted {
		return errReply(ErrUnknownCall)
	}
	sides, err := c.selected(p.Party)
	if err != nil {
		return errReply(err)
	}
	started := 0
	for _, sd := range sides {
		e := c.audioEndpoint(sd)
		if e == nil {
			continue
		}
		r.startPlayer(c, e, c.sides[sd].Tag, m, p)
		started++
	}
	if started == 0 {
		return errReply(ErrNoMediaStream)
	}
	ms := int64(len(m.Samples)) / 8 // 8 samples a millisecond
	return ng.Dict{"result": "ok", "duration": ms}
}

// stopMedia serves "stop media": the selected party's playback ends at
// once; the reply says the last frame sent.
func (r *Relay) stopMedia(req ng.Dict) ng.Dict {
	s, err := ng.DecodeStopMedia(req)
	if err != nil {
		return errReply(err)
	}
	c, err := r.knownCall(s.CallID)
	if err != nil {
		return errReply(err)
	}
	c.mu.Lock()
	sides, err := c.selected(s.Party)
	var tags []string
	for _, sd := range sides {
		tags = append(tags, c.sides[sd].Tag)
	}
	c.mu.Unlock()
	if err != nil {
		return errReply(err)
	}
	var last int64
	for _, tag := range tags {
		if v, ok := r.plays.LoadAndDelete(playKey(s.CallID, tag)); ok {
			pl := v.(*player)
			pl.cancel()
			<-pl.done
			last = pl.frame.Load()
		}
	}
	return ng.Dict{"result": "ok", "last-frame-pos": last}
}

// mediaBytes is the source of a "play media": the blob itself or the
// file on the relay's disk (both capped at wav.MaxBytes).
func mediaBytes(p ng.PlayMedia) ([]byte, error) {
	switch {
	case p.Blob != "":
		return []byte(p.Blob), nil
	case p.File != "":
		fi, err := os.Stat(p.File)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMediaSource, err)
		}
		if fi.Size() > wav.MaxBytes {
			return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMediaFormat, fi.Size(), wav.MaxBytes)
		}
		b, err := os.ReadFile(p.File)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMediaSource, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: db-id (the relay has no media database)", ErrMediaSource)
}

// selected are the indexes of the sides a party selection names: by
// from-tag, or all with the flag "all". Label and address selection
// (rtpengine's) are not kept by this relay. c.mu is held.
func (c *call) selected(ps ng.PartySelect) ([]int, error) {
	if ps.All {
		var out []int
		for i, s := range c.sides {
			if s != nil {
				out = append(out, i)
			}
		}
		return out, nil
	}
	if ps.FromTag == "" {
		return nil, fmt.Errorf("%w: from-tag (label and address selection are not supported)", ErrMissingKey)
	}
	i := c.sideByTag(ps.FromTag)
	if i < 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTag, ps.FromTag)
	}
	return []int{i}, nil
}

// audioEndpoint is the relay's endpoint of side's first plain-RTP audio
// stream, nil when there is none. c.mu is held.
func (c *call) audioEndpoint(side int) *endpoint {
	for _, st := range c.streams {
		if st == nil || st.Type != "audio" {
			continue
		}
		e := st.ep[side]
		if e == nil || e.disabled || e.srtp || e.rtp == nil {
			continue
		}
		return e
	}
	return nil
}

// startPlayer replaces the tag's playback with a new one. c.mu is held.
func (r *Relay) startPlayer(c *call, e *endpoint, tag string, m wav.Media, p ng.PlayMedia) {
	key := playKey(c.id, tag)
	ctx, cancel := context.WithCancel(r.ctx)
	pl := &player{cancel: cancel, done: make(chan struct{})}
	if old, ok := r.plays.Swap(key, pl); ok {
		old.(*player).cancel() // it ends on its own; the call's lock is not waited for here
	}
	frames := (int64(len(m.Samples)) + frameSamples - 1) / frameSamples
	times := max(p.RepeatTimes, 1)
	until := time.Duration(p.RepeatDuration) * time.Millisecond
	start := min(max(p.StartPos, 0), frames-1)
	go func() {
		defer close(pl.done)
		defer r.plays.CompareAndDelete(key, pl)
		defer cancel()
		r.play(ctx, c, e, m, pl, frames, times, until, start)
	}()
}

// play sends the frames, paced against the wall clock so that scheduling
// delays do not add up, until the repeats are done, the call is deleted
// or the playback is stopped.
func (r *Relay) play(ctx context.Context, c *call, e *endpoint, m wav.Media, pl *player, frames, times int64, until time.Duration, startPos int64) {
	silence := byte(0xFF) // μ-law zero
	if m.PT == wav.PCMA {
		silence = 0xD5
	}
	seq, ts, ssrc := uint16(rand.Uint32()), rand.Uint32(), rand.Uint32()
	pkt := make([]byte, 12+frameSamples)
	t0 := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i, f, round := int64(0), startPos, int64(0); ; i++ {
		if f >= frames {
			f, round = 0, round+1
			if round >= times && time.Since(t0) >= until {
				return
			}
		}
		timer.Reset(time.Until(t0.Add(time.Duration(i) * frameTime)))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		pkt[0], pkt[1] = 0x80, m.PT
		if i == 0 {
			pkt[1] |= 0x80 // marker: a talkspurt begins
		}
		binary.BigEndian.PutUint16(pkt[2:], seq+uint16(i))
		binary.BigEndian.PutUint32(pkt[4:], ts+uint32(i)*frameSamples)
		binary.BigEndian.PutUint32(pkt[8:], ssrc)
		n := copy(pkt[12:], m.Samples[min(f*frameSamples, int64(len(m.Samples))):])
		for j := 12 + n; j < len(pkt); j++ {
			pkt[j] = silence
		}
		if !r.sendPlayed(c, e, pkt) {
			return
		}
		pl.frame.Store(f)
		f++
	}
}

// sendPlayed sends one packet from e's RTP port to its party; false once
// the call is gone.
func (r *Relay) sendPlayed(c *call, e *endpoint, pkt []byte) bool {
	c.mu.Lock()
	if c.deleted || e.rtp == nil {
		c.mu.Unlock()
		return false
	}
	dst := e.latched
	if !dst.IsValid() {
		dst = e.sdp
	}
	u := e.rtp.udp
	c.mu.Unlock()
	if !dst.IsValid() || u == nil {
		return true // no address yet (or on hold): the frame is skipped, time goes on
	}
	if err := u.writeTo(pkt, dst); err != nil {
		if isClosed(err) {
			return false
		}
		r.log.Debug().Err(err).Str("call_id", c.id).Msg("play media: send failed")
	}
	return true
}
