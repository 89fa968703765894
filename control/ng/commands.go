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
	out := callDict("delete", d.CallID, d.FromTag)
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
	id, from, err := decodeCall(req)
	d := Delete{CallID: id, FromTag: from, ToTag: req.Str("to-tag")}
	if err != nil {
		return d, err
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
func (q Query) Dict() Dict { return callDict("query", q.CallID, q.FromTag) }

// DecodeQuery reads a "query" request; a missing call-id is
// ErrMissingKey.
func DecodeQuery(req Dict) (Query, error) {
	id, from, err := decodeCall(req)
	return Query{CallID: id, FromTag: from}, err
}

// callDict is a request for command cmd naming a call, and the party
// whose view when fromTag is set.
func callDict(cmd, callID, fromTag string) Dict {
	out := Dict{"command": cmd, "call-id": callID}
	putStr(out, "from-tag", fromTag)
	return out
}

// decodeCall reads the call-id (required: ErrMissingKey) and from-tag
// of a request.
func decodeCall(req Dict) (callID, fromTag string, err error) {
	callID, fromTag = req.Str("call-id"), req.Str("from-tag")
	if callID == "" {
		err = fmt.Errorf("%w: call-id", ErrMissingKey)
	}
	return callID, fromTag, err
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
	out := callDict("start recording", s.CallID, s.FromTag)
	putStr(out, "recording-channels", s.Channels)
	if s.TrimSilence {
		out["recording-trim"] = "trim-silence"
	}
	return out
}

// DecodeStartRecording reads a "start recording" request; a missing
// call-id is ErrMissingKey.
func DecodeStartRecording(req Dict) (StartRecording, error) {
	id, from, err := decodeCall(req)
	s := StartRecording{CallID: id, FromTag: from, Channels: strings.ToLower(req.Str("recording-channels"))}
	if err != nil {
		return s, err
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
func (s StopRecording) Dict() Dict { return callDict("stop recording", s.CallID, s.FromTag) }

// DecodeStopRecording reads a "stop recording" request; a missing
// call-id is ErrMissingKey.
func DecodeStopRecording(req Dict) (StopRecording, error) {
	id, from, err := decodeCall(req)
	return StopRecording{CallID: id, FromTag: from}, err
}
