package relay

import (
	"github.com/xtrunk/xtrunk/control/ng"
)

// knownCall is the call named id, or ErrUnknownCall.
func (r *Relay) knownCall(id string) (*call, error) {
	r.mu.Lock()
	c, ok := r.calls[id]
	r.mu.Unlock()
	if !ok {
		return nil, ErrUnknownCall
	}
	return c, nil
}

// delete ends a call and replies with its final statistics.
func (r *Relay) delete(req ng.Dict) ng.Dict {
	d, err := ng.DecodeDelete(req)
	if err != nil {
		return errReply(err)
	}
	id := d.CallID
	r.mu.Lock()
	c, ok := r.calls[id]
	if ok && !c.hasTags(d.FromTag, d.ToTag) {
		r.mu.Unlock()
		// rtpengine's answer when the tags name no party of the call: the
		// call stays as it was; an error only with the "fatal" flag.
		if d.Fatal {
			return ng.ErrorReply(errTagsMismatch)
		}
		return ng.Dict{"result": "ok", "warning": errTagsMismatch}
	}
	if ok {
		delete(r.calls, id)
	}
	r.m.calls(len(r.calls))
	r.mu.Unlock()
	if !ok {
		return errReply(ErrUnknownCall)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r.freezeStats(c)
	q := r.stats(c)
	if c.rec != nil {
		if res, err := r.stopRecording(c); err == nil {
			rec := recordingOf(res)
			q.Recording = &rec
		} else {
			q.Recording = &ng.Recording{Error: err.Error()}
		}
	}
	r.legQualities(c)
	r.release(c)
	return reply(q.Dict())
}

// reply is a successful command's reply: d with result "ok".
func reply(d ng.Dict) ng.Dict {
	d["result"] = "ok"
	return d
}

// errTagsMismatch is rtpengine's wording, word for word, for a delete
// whose from-tag or to-tag is not one of the call's parties.
const errTagsMismatch = "Call-ID not found or tags didn't match"

// hasTags reports whether a delete naming fromTag and toTag (either may be
// empty: not given) is for c: every tag given must be one of its parties'.
// A delete is signalling's last word on a call, so one whose tags only
// share the Call-ID (another dialog that reused it) must not end it. The
// caller holds r.mu (taken before c.mu).
func (c *call) hasTags(fromTag, toTag string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	party := func(tag string) bool {
		for _, sd := range c.sides {
			if sd != nil && sd.Tag == tag {
				return true
			}
		}
		return false
	}
	return (fromTag == "" || party(fromTag)) && (toTag == "" || party(toTag))
}

// legQualities adds an ending call's per-leg quality to the metrics.
// Caller holds c.mu.
func (r *Relay) legQualities(c *call) {
	for _, st := range c.streams {
		for _, e := range st.ep {
			if e == nil {
				continue
			}
			if q, ok := r.quality(e.rtp); ok {
				r.m.legQuality(q.Lost, q.Expected, float64(jitterMicros(q))/1e6)
			}
		}
	}
}

func (r *Relay) query(req ng.Dict) ng.Dict {
	q, err := ng.DecodeQuery(req)
	if err != nil {
		return errReply(err)
	}
	c, err := r.knownCall(q.CallID)
	if err != nil {
		return errReply(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return reply(r.stats(c).Dict())
}

// listBudget bounds the call IDs one list reply carries, in encoded
// bytes: the reply is one datagram, and "timed out" may repeat every ID,
// so twice the budget plus the framing stays under ng's 65,507. A relay
// with more calls than fit answers with as many as fit (at least one
// call, so a count of zero always means none) rather than with an error.
const listBudget = 30 << 10

func (r *Relay) list(req ng.Dict) ng.Dict {
	limit := ng.DecodeList(req).Limit
	if limit == 0 {
		limit = 32
	}
	r.mu.Lock()
	var out ng.ListReply
	calls := make([]*call, 0, min(int64(len(r.calls)), limit))
	used := 0
	for id, c := range r.calls {
		cost := len(id) + 8 // bencode: length prefix, colon
		if int64(len(out.Calls)) >= limit || used+cost > listBudget && len(out.Calls) > 0 {
			break
		}
		used += cost
		out.Calls = append(out.Calls, id)
		calls = append(calls, c)
	}
	r.mu.Unlock()
	for _, c := range calls {
		c.mu.Lock()
		if c.timedOut {
			// xtrunk extension: which of the listed calls have no media
			out.TimedOut = append(out.TimedOut, c.id)
		}
		c.mu.Unlock()
	}
	return reply(out.Dict())
}
