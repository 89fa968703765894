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
