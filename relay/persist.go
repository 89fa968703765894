package relay

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// The XDP dataplane keeps one record per call in a pinned map, so a relay
// that restarts re-adopts its calls from the pins alone: sockets are bound
// again on the same ports and the fast-path entries, which never stopped
// forwarding, are rewritten from the same state.

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
	Proto       string         `json:"proto,omitempty"`
	Rate        uint32         `json:"rate,omitempty"`
	SRTP        bool           `json:"srtp,omitempty"`
	KeyIn       *keying        `json:"kin,omitempty"`
	KeyOut      *keying        `json:"kout,omitempty"`
	Offered     []keying       `json:"koff,omitempty"`
}

// persist stores c's record. Caller holds c.mu.
func (r *Relay) persist(c *call) {
	if r.fp == nil || c.deleted {
		return
	}
	rec := callRecord{ID: c.id, Created: c.created, LastSignal: c.lastSignal, Sides: c.sides, Record: c.record}
	for _, st := range c.streams {
		sr := streamRecord{Index: st.Index, Type: st.Type, Proto: st.Proto}
		for i, e := range st.ep {
			if e == nil {
				continue
			}
			sr.Ep[i] = &endpointRecord{
				Iface: e.iface.Name, Local: e.local, SDP: e.sdp, SDPRTCP: e.sdpRTCP,
				Mux: e.mux, Disabled: e.disabled, NotRTP: !e.isRTP, PTs: e.pts,
				Latched: e.latched, LatchedRTCP: e.latchedRTCP, SSRC: e.ssrc,
				Proto: e.proto, SRTP: e.srtp, Offered: e.offered, Rate: e.rate,
			}
			if e.srtp {
				kin, kout := e.keyIn, e.keyOut
				sr.Ep[i].KeyIn, sr.Ep[i].KeyOut = &kin, &kout
			}
		}
		rec.Streams = append(rec.Streams, sr)
	}
	b, err := json.Marshal(rec)
	if err == nil {
		err = r.fp.SaveCall(c.num, b)
	}
	if err != nil {
		r.log.Error().Err(err).Str("call_id", c.id).Msg("persisting call for restart; a relay restart would lose it")
	}
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
			e := r.startEndpoint(c, st, i, ifc, rtpU, rtcpU)
			e.sdp, e.sdpRTCP, e.mux, e.disabled, e.isRTP, e.pts = er.SDP, er.SDPRTCP, er.Mux, er.Disabled, !er.NotRTP, er.PTs
			e.latched, e.latchedRTCP, e.ssrc = er.Latched, er.LatchedRTCP, er.SSRC
			e.proto, e.offered, e.rate = er.Proto, er.Offered, er.Rate
			if er.SRTP && er.KeyIn != nil && er.KeyOut != nil {
				// the rollover counters are not persisted: a call past its
				// first 65536 packets fails authentication after a restart
				if err := e.setKeys(*er.KeyIn, *er.KeyOut); err != nil {
					r.log.Error().Err(err).Str("call_id", c.id).Msg("srtp keys not re-adopted")
				}
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
