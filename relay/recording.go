package relay

import (
	"encoding/binary"
	"net/netip"

	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/record"
)

// recTap says which recording channel a relay port feeds.
type recTap struct {
	rec *record.Recording
	ch  int
}

// newRecording makes (but does not attach) a recording of c, whose tags
// are what they will be once the command that asked for it is applied.
// Caller holds c.mu.
func (r *Relay) newRecording(c *call, fromTag, toTag string, isAnswer bool, channels string, trim bool) (*record.Recording, error) {
	var tags [2]string
	for i, s := range c.sides {
		if s != nil {
			tags[i] = s.Tag
		}
	}
	if owner, ownerTag, otherTag, err := c.parties(fromTag, toTag, isAnswer); err == nil {
		tags[owner] = ownerTag
		if tags[1-owner] == "" {
			tags[1-owner] = otherTag
		}
	}
	return record.New(record.Options{Dir: r.cfg.RecordingDir, CallID: c.id, Tags: tags, Channels: channels, Trim: trim}, monoNow())
}

// attachRecording points c's media at rec. Caller holds c.mu.
func (r *Relay) attachRecording(c *call, rec *record.Recording, channels string, trim bool) {
	c.rec = rec
	c.recLostBase = r.recLost(c)
	r.m.recordings(1)
	for _, st := range c.streams {
		r.installStream(c, st)
	}
	r.log.Info().Str("call_id", c.id).Str("channels", channels).Bool("trim", trim).Msg("recording started")
}

// startRecording begins recording c (no-op when it already records).
// Caller holds c.mu.
func (r *Relay) startRecording(c *call, channels string, trim bool) error {
	if c.rec != nil {
		return nil
	}
	var tags [2]string
	for i, s := range c.sides {
		if s != nil {
			tags[i] = s.Tag
		}
	}
	rec, err := record.New(record.Options{Dir: r.cfg.RecordingDir, CallID: c.id, Tags: tags, Channels: channels, Trim: trim}, monoNow())
	if err != nil {
		return err
	}
	r.attachRecording(c, rec, channels, trim)
	return nil
}

// finishHook, when set (by tests), runs before a stopped recording's
// files are written.
var finishHook func()

// stopRecording ends c's recording and returns what it is going to write;
// the files are written by a goroutine of their own, never under the
// call's lock or on the NG worker. Caller holds c.mu.
func (r *Relay) stopRecording(c *call) (record.Result, error) {
	rec := c.rec
	if rec == nil {
		return record.Result{}, errNotRecording
	}
	lost := r.recLost(c) - c.recLostBase
	c.rec = nil
	for _, st := range c.streams {
		r.installStream(c, st)
	}
	r.m.recordings(-1)
	res, err := rec.Stop(lost)
	if err != nil {
		rec.Abort()
		r.m.recordingFailed()
		r.log.Error().Err(err).Str("call_id", c.id).Msg("recording lost")
		return res, err
	}
	r.finishing.Add(1)
	id, log := c.id, r.log
	go func() {
		defer r.finishing.Done()
		if h := finishHook; h != nil {
			h()
		}
		if err := rec.Finish(); err != nil {
			r.m.recordingFailed()
			log.Error().Err(err).Str("call_id", id).Msg("writing recording")
			return
		}
		log.Info().Str("call_id", id).Strs("files", res.Files).Float64("duration", res.DurationSec).Uint64("copies_lost", lost).Msg("recording written")
	}()
	return res, nil
}

// recLost sums the fast path's undelivered copies over c's RTP ports.
func (r *Relay) recLost(c *call) uint64 {
	if r.fp == nil {
		return 0
	}
	var n uint64
	for _, st := range c.streams {
		for _, e := range st.ep {
			if e == nil {
				continue
			}
			if ls, err := r.fp.LegStats(e.rtp.udp.local); err == nil {
				n += ls.RecLost
			}
		}
	}
	return n
}

// recordingOf is a finished recording as NG replies report it.
func recordingOf(res record.Result) ng.Recording {
	return ng.Recording{
		Files:       res.Files,
		Metadata:    res.Sidecar,
		DurationMs:  int64(res.DurationSec * 1000),
		PacketsLost: int64(res.PacketsLost),
		CopiesLost:  int64(res.CopiesLost),
		Channels:    res.Channels,
	}
}

// startStopRecording handles "start recording" and "stop recording".
func (r *Relay) startStopRecording(req ng.Dict, start bool) ng.Dict {
	var id string
	var sr ng.StartRecording
	var err error
	if start {
		sr, err = ng.DecodeStartRecording(req)
		id = sr.CallID
	} else {
		var st ng.StopRecording
		st, err = ng.DecodeStopRecording(req)
		id = st.CallID
	}
	if err != nil {
		return errReply(err)
	}
	c, err := r.knownCall(id)
	if err != nil {
		return errReply(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if start {
		if err := r.startRecording(c, sr.Channels, sr.TrimSilence); err != nil {
			return errReply(err)
		}
		return ng.Dict{"result": "ok"}
	}
	res, err := r.stopRecording(c)
	if err != nil {
		return errReply(err)
	}
	return ng.Dict{"result": "ok", "recording": recordingOf(res).Dict()}
}

// readRecordCopies feeds the fast path's copies to the recordings.
func (r *Relay) readRecordCopies(rd *bpf.RecordReader) {
	defer r.wg.Done()
	var cp bpf.RecordCopy
	var lastLost uint64
	for {
		if err := rd.Read(&cp); err != nil {
			return
		}
		if l := rd.Lost(); l != lastLost {
			r.m.recCopiesLost(l - lastLost)
			lastLost = l
		}
		v, ok := r.taps.Load(cp.Key)
		if !ok {
			continue
		}
		if p := udpPayload(cp.Frame); p != nil {
			t := v.(recTap)
			t.rec.Packet(t.ch, p, int64(cp.NsMono))
		}
	}
}

// udpPayload finds the UDP payload of an Ethernet/IPv4|IPv6/UDP frame.
func udpPayload(f []byte) []byte {
	if len(f) < 14 {
		return nil
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		if len(f) < 14+20 {
			return nil
		}
		ihl := int(f[14]&0x0f) * 4
		if ihl < 20 || len(f) < 14+ihl+8 {
			return nil
		}
		return f[14+ihl+8:]
	case 0x86dd:
		if len(f) < 14+40+8 {
			return nil
		}
		return f[14+40+8:]
	}
	return nil
}

// setTaps points the recorder at e's RTP port, or away from it.
func (r *Relay) setTap(e *endpoint, rec *record.Recording) {
	k := netip.AddrPort(e.rtp.udp.local)
	if rec == nil {
		r.taps.Delete(k)
		return
	}
	r.taps.Store(k, recTap{rec: rec, ch: e.side})
}
