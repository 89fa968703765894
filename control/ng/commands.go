package ng

import (
	"fmt"
	"strings"
)

// Typed forms of the commands that name a call without SDP. Each encodes
// to, and decodes from, exactly the keys rtpengine uses, so they stay
// byte-compatible with it both ways; the client builds them instead of
// spelling keys by hand, and the relay reads them in one place.

// Delete is rtpengine's "delete": end a call. With FromTag (and ToTag)
// set, only if they name parties of the call; otherwise the call stays
// and the reply is a warning, or an error when Fatal is set.
type Delete struct {
	CallID  string
	FromTag string
	ToTag   string
	Fatal   bool
}

// Dict encodes d.
func (d Delete) Dict() Dict {
	out := Dict{"command": "delete", "call-id": d.CallID}
	if d.FromTag != "" {
		out["from-tag"] = d.FromTag
	}
	if d.ToTag != "" {
		out["to-tag"] = d.ToTag
	}
	if d.Fatal {
		out["flags"] = []any{"fatal"}
	}
	return out
}

// DecodeDelete reads a "delete" request; a missing call-id is
// ErrMissingKey.
func DecodeDelete(req Dict) (Delete, error) {
	d := Delete{CallID: req.Str("call-id"), FromTag: req.Str("from-tag"), ToTag: req.Str("to-tag")}
	if d.CallID == "" {
		return d, fmt.Errorf("%w: call-id", ErrMissingKey)
	}
	for _, f := range req.Strings("flags") {
		if strings.EqualFold(strings.TrimSpace(f), "fatal") {
			d.Fatal = true
		}
	}
	return d, nil
}

// Query is rtpengine's "query": a call's state and per-party counters.
type Query struct {
	CallID  string
	FromTag string // optional, rtpengine's: whose view
}

// Dict encodes q.
func (q Query) Dict() Dict {
	out := Dict{"command": "query", "call-id": q.CallID}
	if q.FromTag != "" {
		out["from-tag"] = q.FromTag
	}
	return out
}

// DecodeQuery reads a "query" request; a missing call-id is
// ErrMissingKey.
func DecodeQuery(req Dict) (Query, error) {
	q := Query{CallID: req.Str("call-id"), FromTag: req.Str("from-tag")}
	if q.CallID == "" {
		return q, fmt.Errorf("%w: call-id", ErrMissingKey)
	}
	return q, nil
}

// Ping is rtpengine's "ping"; the reply's result is "pong".
type Ping struct{}

// Dict encodes p.
func (Ping) Dict() Dict { return Dict{"command": "ping"} }

// List is rtpengine's "list": up to Limit call IDs (0: the relay's
// default).
type List struct {
	Limit int64
}

// Dict encodes l.
func (l List) Dict() Dict {
	out := Dict{"command": "list"}
	if l.Limit > 0 {
		out["limit"] = l.Limit
	}
	return out
}

// DecodeList reads a "list" request; a limit that is not a positive
// number reads as none.
func DecodeList(req Dict) List {
	n, ok := req.Int("limit")
	if !ok || n <= 0 {
		n = 0
	}
	return List{Limit: n}
}

// StartRecording is rtpengine's "start recording", with xtrunk's
// recording options: Channels ("recording-channels": mono, dual, both)
// and TrimSilence ("recording-trim: trim-silence", or the flag
// "trim-silence").
type StartRecording struct {
	CallID      string
	FromTag     string
	Channels    string
	TrimSilence bool
}

// Dict encodes s.
func (s StartRecording) Dict() Dict {
	out := Dict{"command": "start recording", "call-id": s.CallID}
	putStr(out, "from-tag", s.FromTag)
	putStr(out, "recording-channels", s.Channels)
	if s.TrimSilence {
		out["recording-trim"] = "trim-silence"
	}
	return out
}

// DecodeStartRecording reads a "start recording" request; a missing
// call-id is ErrMissingKey.
func DecodeStartRecording(req Dict) (StartRecording, error) {
	s := StartRecording{CallID: req.Str("call-id"), FromTag: req.Str("from-tag"),
		Channels: strings.ToLower(req.Str("recording-channels"))}
	if s.CallID == "" {
		return s, fmt.Errorf("%w: call-id", ErrMissingKey)
	}
	s.TrimSilence = NormFlag(req.Str("recording-trim")) == "trim-silence"
	for _, f := range req.Strings("flags") {
		if NormFlag(f) == "trim-silence" {
			s.TrimSilence = true
		}
	}
	return s, nil
}

// StopRecording is rtpengine's "stop recording".
type StopRecording struct {
	CallID  string
	FromTag string
}

// Dict encodes s.
func (s StopRecording) Dict() Dict {
	out := Dict{"command": "stop recording", "call-id": s.CallID}
	putStr(out, "from-tag", s.FromTag)
	return out
}

// DecodeStopRecording reads a "stop recording" request; a missing
// call-id is ErrMissingKey.
func DecodeStopRecording(req Dict) (StopRecording, error) {
	s := StopRecording{CallID: req.Str("call-id"), FromTag: req.Str("from-tag")}
	if s.CallID == "" {
		return s, fmt.Errorf("%w: call-id", ErrMissingKey)
	}
	return s, nil
}
