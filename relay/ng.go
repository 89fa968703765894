package relay

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/record"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

// ServeNG implements ng.Handler: rtpengine's ping, offer, answer, delete,
// query, list, start/stop recording and play/stop media.
func (r *Relay) ServeNG(ctx context.Context, from netip.AddrPort, req ng.Dict) (reply ng.Dict) {
	cmd := strings.ToLower(req.Str("command"))
	start := time.Now()
	defer func() {
		res := reply.Str("result")
		r.m.command(cmd, res, time.Since(start))
		if res == "error" {
			r.log.Info().Str("command", cmd).Str("call_id", req.Str("call-id")).Str("reason", reply.Str("error-reason")).Msg("ng command refused")
		}
	}()
	switch cmd {
	case "ping":
		return ng.Dict{"result": "pong"}
	case "offer":
		o, err := ng.DecodeOffer(req)
		if err != nil {
			return errReply(err)
		}
		return r.offerAnswer(from, o.Params, false)
	case "answer":
		a, err := ng.DecodeAnswer(req)
		if err != nil {
			return errReply(err)
		}
		return r.offerAnswer(from, a.Params, true)
	case "delete":
		return r.delete(req)
	case "query":
		return r.query(req)
	case "list":
		return r.list(req)
	case "start recording":
		return r.startStopRecording(req, true)
	case "stop recording":
		return r.startStopRecording(req, false)
	case "play media":
		return r.playMedia(req)
	case "stop media":
		return r.stopMedia(req)
	case "":
		return ng.ErrorReply("No command given")
	}
	return ng.ErrorReply("Unrecognized command")
}

func errReply(err error) ng.Dict { return ng.ErrorReply(err.Error()) }

// InlineNG says which requests the NG server answers on the goroutine
// that read them (ng.WithInline): call setup and teardown, which take
// tens of microseconds and wait on nothing, where handing each to a
// worker goroutine cost the relay more CPU than the command (a thread
// wake-up per request; one call at a time the relay's CPU per call was
// 1.36× rtpengine's). Commands that read or write files (recording,
// playback) and offers or answers that start a recording go to the
// workers.
func InlineNG(req ng.Dict) bool {
	switch strings.ToLower(req.Str("command")) {
	case "ping", "delete", "query", "list":
		return true
	case "offer", "answer":
		if _, ok := req["record call"]; ok {
			return false
		}
		if _, ok := req["record-call"]; ok {
			return false
		}
		flags, _ := req["flags"].([]any)
		for _, f := range flags {
			if f, _ := f.(string); strings.EqualFold(f, "record-call") {
				return false
			}
		}
		return true
	}
	return false
}

// maxStreams caps the m= lines of one SDP, and so the streams (two port
// pairs each) a call can hold: real calls carry one to three (audio,
// video, T.38 or BFCP), and a body with thousands is an attack on the port
// range.
const maxStreams = 16

// offerAnswer handles both commands: the SDP belongs to the from-tag party
// on an offer and to the to-tag party on an answer; the reply's SDP, for
// the other party, names the relay's ports facing that other party.
// Everything that can refuse the command is checked before the call
// changes: a refused offer or answer leaves the call as it was.
func (r *Relay) offerAnswer(from netip.AddrPort, p ng.Params, isAnswer bool) ng.Dict {
	sess, err := sdp.Parse([]byte(p.SDP))
	if err != nil {
		return errReply(fmt.Errorf("%w: %w", ErrBadSDP, err))
	}
	if n := len(sess.Media); n > maxStreams {
		return errReply(fmt.Errorf("%w: %d m= lines, at most %d", ErrTooManyStreams, n, maxStreams))
	}
	if !p.ReceivedFrom.IsValid() && from.IsValid() && p.Flags.SIPSourceAddress {
		p.ReceivedFrom = from.Addr().Unmap()
	}
	recordCall := p.RecordCall == ng.On
	if recordCall {
		if err := record.CheckChannels(p.RecordingChannels); err != nil {
			return errReply(err)
		}
	}

	c, created, err := r.getCall(p.CallID, !isAnswer)
	if err != nil {
		return errReply(err)
	}
	// forget takes r.mu, so it runs after c.mu is released (defers run
	// last-in first-out): the lock order is r.mu before c.mu everywhere
	forget := false
	defer func() {
		if forget {
			r.forget(c)
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted {
		return errReply(ErrUnknownCall)
	}
	var rec *record.Recording
	if recordCall && c.rec == nil {
		// made before the SDP is applied, so that a recording that cannot
		// start refuses the command instead of following a changed call
		if rec, err = r.newRecording(c, p.FromTag, p.ToTag, isAnswer, p.RecordingChannels, p.TrimSilence); err != nil {
			if created {
				r.release(c)
				forget = true
			}
			return errReply(err)
		}
	}
	out, err := r.applySDP(c, sess, &p, isAnswer)
	if err != nil {
		if rec != nil {
			rec.Abort()
		}
		if created {
			r.release(c)
			forget = true
		}
		return errReply(err)
	}
	c.lastSignal = time.Now()
	c.timedOut = false
	if recordCall {
		c.record = true
		if rec != nil {
			r.attachRecording(c, rec, p.RecordingChannels, p.TrimSilence)
		}
	}
	r.persist(c)
	return ng.Dict{"result": "ok", "sdp": string(out)}
}

func (r *Relay) getCall(id string, create bool) (*call, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.calls[id]; ok {
		return c, false, nil
	}
	if !create {
		return nil, false, ErrUnknownCall
	}
	c := &call{id: id, num: r.nextNum, created: time.Now()}
	r.nextNum++
	r.calls[id] = c
	r.m.calls(len(r.calls))
	return c, true, nil
}

func (r *Relay) forget(c *call) {
	r.mu.Lock()
	if r.calls[c.id] == c {
		delete(r.calls, c.id)
	}
	r.m.calls(len(r.calls))
	r.mu.Unlock()
}

func (c *call) sideByTag(tag string) int {
	for i, s := range c.sides {
		if s != nil && s.Tag == tag {
			return i
		}
	}
	return -1
}

// parties says which side of c the SDP's owner is, and its tag and the
// other party's. It changes nothing.
func (c *call) parties(fromTag, toTag string, isAnswer bool) (owner int, ownerTag, otherTag string, err error) {
	ownerTag, otherTag = fromTag, toTag
	if isAnswer {
		ownerTag, otherTag = toTag, fromTag
	}
	owner = c.sideByTag(ownerTag)
	if owner >= 0 {
		return owner, ownerTag, otherTag, nil
	}
	other := -1
	if otherTag != "" {
		other = c.sideByTag(otherTag)
	}
	switch {
	case other >= 0:
		owner = 1 - other
	case isAnswer:
		return 0, "", "", fmt.Errorf("%w: %q", ErrUnknownTag, fromTag)
	case c.sides[0] == nil:
		owner = 0
	case c.sides[1] == nil || c.sides[1].Tag == "":
		owner = 1
	default:
		return 0, "", "", fmt.Errorf("%w: %q is not a party of this call", ErrUnknownTag, ownerTag)
	}
	return owner, ownerTag, otherTag, nil
}
