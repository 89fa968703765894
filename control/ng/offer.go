package ng

import (
	"fmt"
	"net/netip"
	"strings"
)

// Offer is rtpengine's "offer": the SDP of the from-tag party, to be
// rewritten for the other party. Answer is its "answer", the SDP of the
// to-tag party. Both carry the same options; only the keys they require
// differ.
type Offer struct{ Params }

// Answer is rtpengine's "answer"; see [Offer].
type Answer struct{ Params }

// Params are the keys of an offer or answer, typed. Each field encodes
// to, and decodes from, exactly the key rtpengine reads for it
// (https://rtpengine.readthedocs.io/en/latest/ng_control_protocol.html);
// keys and list entries this package does not know are kept in Other and
// the lists' Other fields, as sent, so that a decoded request encodes
// back to what rtpengine would read the same way.
type Params struct {
	CallID    string // "call-id"
	FromTag   string // "from-tag"
	ToTag     string // "to-tag"
	ViaBranch string // "via-branch"
	SDP       string // "sdp"

	Flags   Flags   // "flags"
	Replace Replace // "replace"
	RTCPMux RTCPMux // "rtcp-mux"
	SDES    SDES    // "SDES"
	// ICE is the "ICE" option, normalised ("remove", "force", ...);
	// the relay anchors media and removes ICE whatever it says.
	ICE string
	// Direction names the logical interfaces the SDP comes in on and
	// leaves by, in that order ("direction").
	Direction []string
	// ReceivedFrom is where the signalling came from ("received-from":
	// [family, address]); with Flags.SIPSourceAddress it replaces the
	// SDP's address.
	ReceivedFrom netip.Addr
	// TransportProtocol is the profile of the SDP written for the other
	// party ("transport-protocol": RTP/AVP, RTP/SAVP, ...).
	TransportProtocol string
	// RecordCall is "record call" (yes/no); the flag "record-call" also
	// sets it.
	RecordCall Toggle
	// RecordingChannels ("recording-channels": mono, dual, both) and
	// TrimSilence ("recording-trim: trim-silence", or the flag
	// "trim-silence") shape a recording this command starts.
	RecordingChannels string
	TrimSilence       bool

	// Other holds the keys this package does not know, as sent; they
	// share the request's memory.
	Other Dict
}

// Toggle is an option that is on, off, or not given.
type Toggle int8

// Toggle values.
const (
	Unset Toggle = iota
	On
	Off
)

// Flags are the entries of the "flags" list the relay acts on.
type Flags struct {
	Symmetric        bool // "symmetric": latch onto where the party's media comes from
	Asymmetric       bool // "asymmetric": send where the SDP says
	StrictSource     bool // "strict-source"
	SIPSourceAddress bool // "SIP-source-address": use received-from, not the SDP's address
	TrustAddress     bool // "trust-address" (the relay's default)
	PortLatching     bool // "port-latching"
	MediaHandover    bool // "media-handover"
	Other            []string
}

// Replace are the entries of the "replace" list.
type Replace struct {
	Origin            bool // "origin": the o= line's address
	SessionConnection bool // "session-connection" (or "session-conn"): the session's c= line
	Other             []string
}

// RTCPMux are the entries of the "rtcp-mux" list.
type RTCPMux struct {
	Demux, Offer, Accept, Reject bool
	Other                        []string
}

// SDES are the entries of the "SDES" list: "off", "no-SUITE",
// "only-SUITE". Suite names are upper case.
type SDES struct {
	Off   bool
	No    []string
	Only  []string
	Other []string
}

// offerKeys are the keys Params decodes; everything else goes to Other.
var offerKeys = map[string]bool{
	"command": true, "call-id": true, "from-tag": true, "to-tag": true, "via-branch": true, "sdp": true,
	"flags": true, "replace": true, "rtcp-mux": true, "SDES": true, "ICE": true, "ice": true,
	"direction": true, "received-from": true, "transport-protocol": true,
	"record call": true, "record-call": true, "recording-channels": true, "recording-trim": true,
}

// NormFlag makes "Trust Address", "trust-address" and "trust_address"
// one, as rtpengine does for flags and option values.
func NormFlag(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return flagReplacer.Replace(s)
}

var flagReplacer = strings.NewReplacer(" ", "-", "_", "-")

// Dict encodes o.
func (o Offer) Dict() Dict { return o.dict("offer") }

// Dict encodes a.
func (a Answer) Dict() Dict { return a.dict("answer") }

// DecodeOffer reads an "offer" request. A missing call-id, from-tag or
// sdp is ErrMissingKey.
func DecodeOffer(req Dict) (Offer, error) {
	p, err := decodeParams(req, false)
	return Offer{p}, err
}

// DecodeAnswer reads an "answer" request; it needs a to-tag too.
func DecodeAnswer(req Dict) (Answer, error) {
	p, err := decodeParams(req, true)
	return Answer{p}, err
}

// decodeParams reads an offer's or answer's keys, checking the required
// ones in the order the relay always reported them. The strings it keeps
// are copies (the request's strings share its datagram), except SDP and
// Other.
func decodeParams(req Dict, isAnswer bool) (Params, error) {
	p := Params{
		CallID:    strings.Clone(req.Str("call-id")),
		FromTag:   strings.Clone(req.Str("from-tag")),
		ToTag:     strings.Clone(req.Str("to-tag")),
		ViaBranch: strings.Clone(req.Str("via-branch")),
		SDP:       req.Str("sdp"),
	}
	switch {
	case p.CallID == "":
		return p, fmt.Errorf("%w: call-id", ErrMissingKey)
	case p.FromTag == "":
		return p, fmt.Errorf("%w: from-tag", ErrMissingKey)
	case isAnswer && p.ToTag == "":
		return p, fmt.Errorf("%w: to-tag", ErrMissingKey)
	case p.SDP == "":
		return p, fmt.Errorf("%w: sdp", ErrMissingKey)
	}
	p.decodeOptions(req)
	return p, nil
}

// decodeOptions reads everything but the identifiers and the SDP.
func (p *Params) decodeOptions(req Dict) {
	p.decodeFlags(req.Strings("flags"))
	p.Replace = decodeReplace(req.Strings("replace"))
	p.RTCPMux = decodeRTCPMux(req.Strings("rtcp-mux"))
	p.SDES = decodeSDES(req.Strings("SDES"))
	for _, k := range []string{"ice", "ICE"} { // "ICE" wins when both are given
		if v := NormFlag(req.Str(k)); v != "" {
			p.ICE = strings.Clone(v)
		}
	}
	for _, d := range req.Strings("direction") {
		p.Direction = append(p.Direction, strings.Clone(d))
	}
	if rf := req.Strings("received-from"); len(rf) == 2 {
		if a, err := netip.ParseAddr(rf[1]); err == nil {
			p.ReceivedFrom = a.Unmap()
		}
	}
	for _, k := range []string{"record-call", "record call"} {
		switch NormFlag(req.Str(k)) {
		case "yes", "on":
			p.RecordCall = On
		case "no", "off":
			if p.RecordCall == Unset {
				p.RecordCall = Off
			}
		}
	}
	p.TransportProtocol = strings.Clone(req.Str("transport-protocol"))
	p.RecordingChannels = strings.Clone(strings.ToLower(req.Str("recording-channels")))
	if NormFlag(req.Str("recording-trim")) == "trim-silence" {
		p.TrimSilence = true
	}
	for k, v := range req {
		if !offerKeys[k] {
			if p.Other == nil {
				p.Other = Dict{}
			}
			p.Other[k] = v
		}
	}
}

// decodeFlags reads the "flags" list; "record-call" and "trim-silence"
// are options of their own.
func (p *Params) decodeFlags(list []string) {
	f := &p.Flags
	var record bool
	f.Other = decodeEntries(list, map[string]*bool{
		"symmetric": &f.Symmetric, "asymmetric": &f.Asymmetric, "strict-source": &f.StrictSource,
		"sip-source-address": &f.SIPSourceAddress, "trust-address": &f.TrustAddress,
		"port-latching": &f.PortLatching, "media-handover": &f.MediaHandover,
		"record-call": &record, "trim-silence": &p.TrimSilence,
	})
	if record {
		p.RecordCall = On
	}
}

func decodeReplace(list []string) Replace {
	var r Replace
	r.Other = decodeEntries(list, map[string]*bool{
		"origin": &r.Origin, "session-connection": &r.SessionConnection, "session-conn": &r.SessionConnection})
	return r
}

func decodeRTCPMux(list []string) RTCPMux {
	var m RTCPMux
	m.Other = decodeEntries(list, map[string]*bool{"demux": &m.Demux, "offer": &m.Offer, "accept": &m.Accept, "reject": &m.Reject})
	return m
}

// decodeEntries sets the field each entry of list names (by its
// normalised spelling) and returns the entries no field stands for, as
// sent.
func decodeEntries(list []string, fields map[string]*bool) []string {
	var other []string
	for _, e := range list {
		if f, ok := fields[NormFlag(e)]; ok {
			*f = true
		} else {
			other = append(other, strings.Clone(e))
		}
	}
	return other
}

func decodeSDES(list []string) SDES {
	var s SDES
	for _, v := range list {
		t := strings.TrimSpace(v)
		switch {
		case strings.EqualFold(t, "off"):
			s.Off = true
		case len(t) > 3 && strings.EqualFold(t[:3], "no-"):
			s.No = append(s.No, strings.Clone(strings.ToUpper(t[3:])))
		case len(t) > 5 && strings.EqualFold(t[:5], "only-"):
			s.Only = append(s.Only, strings.Clone(strings.ToUpper(t[5:])))
		default:
			s.Other = append(s.Other, strings.Clone(v))
		}
	}
	return s
}

// dict encodes p as command cmd: the keys rtpengine reads, only those
// given, then Other's (which never override a typed field).
func (p Params) dict(cmd string) Dict {
	out := Dict{}
	for k, v := range p.Other {
		out[k] = v
	}
	out["command"] = cmd
	putStr(out, "call-id", p.CallID)
	putStr(out, "from-tag", p.FromTag)
	putStr(out, "to-tag", p.ToTag)
	putStr(out, "via-branch", p.ViaBranch)
	putStr(out, "sdp", p.SDP)
	putList(out, "flags", p.flagList())
	putList(out, "replace", p.Replace.list())
	putList(out, "rtcp-mux", p.RTCPMux.list())
	putList(out, "SDES", p.SDES.list())
	putStr(out, "ICE", p.ICE)
	putList(out, "direction", p.Direction)
	if p.ReceivedFrom.IsValid() {
		fam := "IP4"
		if p.ReceivedFrom.Is6() {
			fam = "IP6"
		}
		out["received-from"] = []any{fam, p.ReceivedFrom.String()}
	}
	putStr(out, "transport-protocol", p.TransportProtocol)
	switch p.RecordCall {
	case On:
		out["record call"] = "yes"
	case Off:
		out["record call"] = "no"
	}
	putStr(out, "recording-channels", p.RecordingChannels)
	if p.TrimSilence {
		out["recording-trim"] = "trim-silence"
	}
	return out
}

func (p Params) flagList() []string {
	f := p.Flags
	return names(f.Other,
		entry{f.Symmetric, "symmetric"}, entry{f.Asymmetric, "asymmetric"}, entry{f.StrictSource, "strict-source"},
		entry{f.SIPSourceAddress, "SIP-source-address"}, entry{f.TrustAddress, "trust-address"},
		entry{f.PortLatching, "port-latching"}, entry{f.MediaHandover, "media-handover"})
}

func (r Replace) list() []string {
	return names(r.Other, entry{r.Origin, "origin"}, entry{r.SessionConnection, "session-connection"})
}

func (m RTCPMux) list() []string {
	return names(m.Other, entry{m.Demux, "demux"}, entry{m.Offer, "offer"}, entry{m.Accept, "accept"}, entry{m.Reject, "reject"})
}

func (s SDES) list() []string {
	var out []string
	if s.Off {
		out = append(out, "off")
	}
	for _, n := range s.Only {
		out = append(out, "only-"+n)
	}
	for _, n := range s.No {
		out = append(out, "no-"+n)
	}
	return append(out, s.Other...)
}

// entry is one list entry a typed field stands for.
type entry struct {
	on   bool
	name string
}

// names lists the entries that are on, then other (the entries as sent
// that no field stands for).
func names(other []string, es ...entry) []string {
	var out []string
	for _, e := range es {
		if e.on {
			out = append(out, e.name)
		}
	}
	return append(out, other...)
}

func putStr(d Dict, k, v string) {
	if v != "" {
		d[k] = v
	}
}

func putList(d Dict, k string, vs []string) {
	if len(vs) == 0 {
		return
	}
	l := make([]any, len(vs))
	for i, v := range vs {
		l[i] = v
	}
	d[k] = l
}
