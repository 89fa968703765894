package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/xtrunk/xtrunk/bpf"
)

// The XDP dataplane keeps one record per call in a pinned map, so a relay
// that restarts re-adopts its calls from the pins alone: sockets are bound
// again on the same ports and the fast-path entries, which never stopped
// forwarding, are rewritten from the same state.
//
// SRTP legs keep their keys across a restart (the parties know no other),
// so the record also says where each SRTP context was: the rollover
// counters of what the party sends, and for what the relay sends an index
// lease — how far the process may go without writing the record again. It
// writes it before a packet past the lease leaves, and a restarted relay
// goes on past the lease (moving the sequence numbers it sends forward
// when the sender's are behind it), so no index is ever encrypted twice
// under one key. A new key would need a re-INVITE the relay cannot make;
// refusing to adopt SRTP calls would drop them.

type callRecord struct {
	ID         string         `json:"id"`
	Created    time.Time      `json:"created"`
	LastSignal time.Time      `json:"ls"`
	Sides      [2]*side       `json:"sides"`
	Streams    []streamRecord `json:"streams"`
	Record     bool           `json:"rec,omitempty"`
}

type streamRecord struct {
	Index int                `json:"i"`
	Type  string             `json:"t"`
	Proto string             `json:"p"`
	Ep    [2]*endpointRecord `json:"ep"`
}

type endpointRecord struct {
	Iface       string         `json:"if"`
	Local       netip.AddrPort `json:"l"`
	SDP         netip.AddrPort `json:"s,omitzero"`
	SDPRTCP     netip.AddrPort `json:"sr,omitzero"`
	Mux         bool           `json:"m,omitempty"`
	Disabled    bool           `json:"d,omitempty"`
	NotRTP      bool           `json:"nr,omitempty"`
	PTs         [2]uint64      `json:"pt"`
	Latched     netip.AddrPort `json:"la,omitzero"`
	LatchedRTCP netip.AddrPort `json:"lr,omitzero"`
	SSRC        uint32         `json:"ssrc,omitempty"`
	SSRCs       []uint32       `json:"ssrcs,omitempty"`
	Proto       string         `json:"proto,omitempty"`
	Rate        uint32         `json:"rate,omitempty"`
	SRTP        bool           `json:"srtp,omitempty"`
	KeyIn       *keying        `json:"kin,omitempty"`
	KeyOut      *keying        `json:"kout,omitempty"`
	Offered     []keying       `json:"koff,omitempty"`
	// Where the SRTP contexts were: rollover counters of what the party
	// sent, index leases of what the relay sent (see cryptoCtx).
	DecState *srtpState `json:"kdst,omitempty"`
	EncState *srtpState `json:"kest,omitempty"`
}

// persist stores c's record. Caller holds c.mu.
func (r *Relay) persist(c *call) {
	if r.fp == nil || c.deleted {
		return
	}
	rec := callRecord{ID: c.id, Created: c.created, LastSignal: c.lastSignal, Sides: c.sides, Record: c.record}
	type version struct {
		ctx *cryptoCtx
		v   uint64
	}
	var versions []version
	for _, st := range c.streams {
		sr := streamRecord{Index: st.Index, Type: st.Type, Proto: st.Proto}
		for i, e := range st.ep {
			if e == nil {
				continue
			}
			sr.Ep[i] = &endpointRecord{
				Iface: e.iface.Name, Local: e.local, SDP: e.sdp, SDPRTCP: e.sdpRTCP,
				Mux: e.mux, Disabled: e.disabled, NotRTP: !e.isRTP, PTs: e.pts,
				Latched: e.latched, LatchedRTCP: e.latchedRTCP, SSRC: e.ssrc, SSRCs: e.ssrcs,
				Proto: e.proto, SRTP: e.srtp, Offered: e.offered, Rate: e.rate,
			}
			// keys are kept while the leg is plain too: it may go back to
			// SRTP under the same relay key, which must go on from where
			// its context was
			if e.enc != nil {
				kin, kout := e.keyIn, e.keyOut
				sr.Ep[i].KeyIn, sr.Ep[i].KeyOut = &kin, &kout
				var dv, ev uint64
				sr.Ep[i].DecState, dv = e.dec.state()
				sr.Ep[i].EncState, ev = e.enc.state()
				versions = append(versions, version{e.dec, dv}, version{e.enc, ev})
			}
		}
		rec.Streams = append(rec.Streams, sr)
	}
	b, err := json.Marshal(rec)
	if err == nil {
		err = r.fp.SaveCall(c.num, b)
	}
	// the SRTP contexts are clean once the record holds their state — or
	// once there is no record, which no restart can adopt
	defer func() {
		for _, v := range versions {
			v.ctx.stored(v.v)
		}
	}()
	if err != nil {
		// an older record must not be adopted either: it would restart
		// SRTP behind where this process has been
		_ = r.fp.DeleteCall(c.num)
		r.m.persistFailed(errors.Is(err, bpf.ErrBlobTooLarge))
		r.log.Error().Err(err).Str("call_id", c.id).Int("bytes", len(b)).Int("streams", len(c.streams)).
			Msg("persisting call for restart failed; a relay restart would lose it")
	}
}

// persistNow writes c's record from the packet path (an SRTP context
// needs it before what it encrypted leaves).
func (r *Relay) persistNow(c *call) {
	if r.fp == nil {
		return
	}
	c.mu.Lock()
	r.persist(c)
	c.mu.Unlock()
}

// adopt rebuilds calls from the pinned records of a previous process.
func (r *Relay) adopt() error {
	recs, err := r.fp.Calls()
	if err != nil {
		return err
	}
	n := 0
	for num, b := range recs {
		var rec callRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			r.log.Error().Err(err).Uint64("record", num).Msg("unreadable call record dropped")
			_ = r.fp.DeleteCall(num)
			continue
		}
		if err := r.adoptCall(num, rec); err != nil {
			r.log.Error().Err(err).Str("call_id", rec.ID).Msg("call could not be re-adopted")
			continue
		}
		n++
		r.nextNum = max(r.nextNum, num+1)
	}
	if n > 0 {
		r.log.Info().Int("calls", n).Msg("re-adopted calls from pinned maps")
	}
	r.m.calls(len(r.calls))
	return nil
}

func (r *Relay) adoptCall(num uint64, rec callRecord) error {
	c := &call{id: rec.ID, num: num, created: rec.Created, lastSignal: rec.LastSignal, sides: rec.Sides, record: rec.Record}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sr := range rec.Streams {
		st := &stream{Index: sr.Index, Type: sr.Type, Proto: sr.Proto}
		c.streams = append(c.streams, st)
		for i, er := range sr.Ep {
			if er == nil {
				continue
			}
			ifc, err := r.iface(er.Iface, er.Local.Addr())
			if err != nil {
				r.release(c)
				return err
			}
			rtpU, rtcpU, err := r.ports.claim(er.Local.Addr(), int(er.Local.Port()))
			if err != nil {
				r.release(c)
				return fmt.Errorf("rebind %v: %w", er.Local, err)
			}
			e, err := r.startEndpoint(c, st, i, ifc, rtpU, rtcpU)
			if err != nil {
				r.release(c)
				return err
			}
			e.sdp, e.sdpRTCP, e.mux, e.disabled, e.isRTP, e.pts = er.SDP, er.SDPRTCP, er.Mux, er.Disabled, !er.NotRTP, er.PTs
			e.latched, e.latchedRTCP, e.ssrc, e.ssrcs = er.Latched, er.LatchedRTCP, er.SSRC, er.SSRCs
			e.proto, e.offered, e.rate = er.Proto, er.Offered, er.Rate
			r.bindLocal(e)
			if er.KeyIn != nil && er.KeyOut != nil {
				ks, err := e.keysFor(*er.KeyIn, *er.KeyOut)
				if err != nil {
					r.release(c)
					return fmt.Errorf("srtp keys: %w", err)
				}
				// decrypting goes on at the rollover counters it had;
				// encrypting past its index leases, never under an index
				// the previous process may have used
				ks.dec.restore(er.DecState)
				ks.enc.restore(er.EncState)
				e.keyIn, e.keyOut, e.dec, e.enc, e.srtp = ks.in, ks.out, ks.dec, ks.enc, er.SRTP
			}
			st.ep[i] = e
		}
	}
	for _, st := range c.streams {
		r.installStream(c, st)
	}
	r.mu.Lock()
	r.calls[c.id] = c
	r.mu.Unlock()
	return nil
}
