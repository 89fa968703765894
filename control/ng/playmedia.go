package ng

import (
	"fmt"
)

// Media playback: rtpengine's "play media" and "stop media", with its
// keys (ng_control_protocol, "play media Message"). The relay does not
// play media yet; the types are here so that the client side and, later,
// the relay read and write the same keys.

// PartySelect selects the call party a command acts on: by FromTag, Label or
// Address (rtpengine's participant selection keys), or every party
// (All, the flag "all").
type PartySelect struct {
	FromTag string // "from-tag"
	ToTag   string // "to-tag"
	Label   string // "label"
	Address string // "address"
	All     bool   // the flag "all"
}

// dict is a request for command cmd to call callID's selected party.
func (s PartySelect) dict(cmd, callID string) Dict {
	d := callDict(cmd, callID, s.FromTag)
	putStr(d, "to-tag", s.ToTag)
	putStr(d, "label", s.Label)
	putStr(d, "address", s.Address)
	if s.All {
		d["flags"] = []any{"all"}
	}
	return d
}

// decodeCallParty reads the call-id and the party selection, both
// required (ErrMissingKey).
func decodeCallParty(req Dict) (string, PartySelect, error) {
	id, from, err := decodeCall(req)
	s := PartySelect{FromTag: from, ToTag: req.Str("to-tag"), Label: req.Str("label"), Address: req.Str("address")}
	if err != nil {
		return id, s, err
	}
	for _, f := range req.Strings("flags") {
		if NormFlag(f) == "all" {
			s.All = true
		}
	}
	if s.FromTag == "" && s.Label == "" && s.Address == "" && !s.All {
		return id, s, fmt.Errorf("%w: from-tag", ErrMissingKey)
	}
	return id, s, nil
}

// PlayMedia is rtpengine's "play media": play a file, a blob or a
// database entry to the selected party.
type PlayMedia struct {
	CallID string
	Party  PartySelect
	// One source: File ("file", a path on the relay), Blob ("blob", the
	// media file's bytes) or DBID ("db-id").
	File string
	Blob string
	DBID int64
	// RepeatTimes ("repeat-times") plays it that many times (0: once);
	// RepeatDuration ("repeat-duration", ms) repeats it for at least
	// that long; StartPos ("start-pos") is the frame to start from.
	RepeatTimes    int64
	RepeatDuration int64
	StartPos       int64
}

// Dict encodes p.
func (p PlayMedia) Dict() Dict {
	out := p.Party.dict("play media", p.CallID)
	putStr(out, "file", p.File)
	putStr(out, "blob", p.Blob)
	for _, kv := range []struct {
		k string
		v int64
	}{{"db-id", p.DBID}, {"repeat-times", p.RepeatTimes}, {"repeat-duration", p.RepeatDuration}, {"start-pos", p.StartPos}} {
		if kv.v != 0 {
			out[kv.k] = kv.v
		}
	}
	return out
}

// DecodePlayMedia reads a "play media" request: a call-id, a party and
// a source are required (ErrMissingKey).
func DecodePlayMedia(req Dict) (PlayMedia, error) {
	id, party, err := decodeCallParty(req)
	p := PlayMedia{CallID: id, Party: party, File: req.Str("file"), Blob: req.Str("blob"),
		DBID: intOf(req, "db-id"), RepeatTimes: intOf(req, "repeat-times"),
		RepeatDuration: intOf(req, "repeat-duration"), StartPos: intOf(req, "start-pos")}
	if err != nil {
		return p, err
	}
	if p.File == "" && p.Blob == "" && p.DBID == 0 {
		return p, fmt.Errorf("%w: file", ErrMissingKey)
	}
	return p, nil
}

// PlayMediaReply is the reply to "play media": the media's length in
// ms ("duration"), when known.
type PlayMediaReply struct {
	Duration int64
}

// DecodePlayMediaReply reads a "play media" reply.
func DecodePlayMediaReply(d Dict) PlayMediaReply {
	return PlayMediaReply{Duration: intOf(d, "duration")}
}

// StopMedia is rtpengine's "stop media": end what "play media" started
// for the same party.
type StopMedia struct {
	CallID string
	Party  PartySelect
}

// Dict encodes s.
func (s StopMedia) Dict() Dict {
	return s.Party.dict("stop media", s.CallID)
}

// DecodeStopMedia reads a "stop media" request.
func DecodeStopMedia(req Dict) (StopMedia, error) {
	id, party, err := decodeCallParty(req)
	return StopMedia{CallID: id, Party: party}, err
}

// StopMediaReply is the reply to "stop media": the last frame played
// ("last-frame-pos").
type StopMediaReply struct {
	LastFramePos int64
}

// DecodeStopMediaReply reads a "stop media" reply.
func DecodeStopMediaReply(d Dict) StopMediaReply {
	return StopMediaReply{LastFramePos: intOf(d, "last-frame-pos")}
}
